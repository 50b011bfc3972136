"""Executing a crossbar layer's schedule: read, convert, combine, accumulate, scale and bias as the records say.

This is the one definition of the crossbar layer's arithmetic at inference (docs/board-format.md gives it for
people; `lower` fixes its parameters). Given the conductance each read's region holds, `CrossbarExecutor`
computes the layer for a batch of input vectors:

1. DAC: the input (with the constant 1 in the bias row) is divided by x_fs and quantised to `dac_bits`
   (signed): V = v_read * Q(clip(x / x_fs, -1, 1)). x_fs is the layer's calibrated full scale (`scale.x_fs`)
   or, without one, each vector's own max(max_i |x_i|, x_fs_min) (an all-zero vector drives 0 V).
2. Each read drives its region's rows with their slice of V; each column current I_j = sum_i V_i G_ij is
   quantised by the ADC to `adc_bits` (signed) over +-`full_scale_uA` of its `convert`, and saturates beyond.
   A read with `reads` = N > 1 reads the region N times with the same V, each read with its own read noise
   and digitised on its own, and takes the mean of the N digitised currents (without read noise the N reads
   are the same, and the result is one read's).
3. `combine`: per block column, the mean over the selected copies of I+ - I-; `accumulate`: the row blocks'
   partial sums added; `scale`: y_j = A_j x_fs / (v_read s_j); `bias`: y_j += b_j.

Read noise, when the caller has it, is added to the column currents before the ADC (`read_noise_uS`, or a
conductance-dependent model's per-device standard deviations, `read_sigma_uS`; see docs/simulator.md), drawn
afresh for each of a region's N reads: one Gaussian per column current (`gaussian`, from each chunk's own SFC64
generator), times the current's sigma, or with `exact_read_noise` every device's own draw. Where a read's
noise is at least an ADC step and far from the saturation, its rounding is dither, and the layer's digitised
currents are summed as one Gaussian per output column instead (`linear_reads`; the (vector, band) pairs that
fail the test go through the ADC as described here). Samples go in cache-sized chunks, and per chunk and row
band every copy and polarity is read in one float32 product (the N reads share it: only the noise differs).
Stacking a layer's row bands into one batched product per chunk was measured and is slower: with chunks of the
same total size each band's conductances are read from memory for a few samples only, and with the bands' chunk
size the arrays leave the cache (docs/simulator.md).

A grouped layer (`groups` = G > 1, `lea_compiler.grouping`) takes its vectors in runs of G, one per group, and
computes each column from its own group's vector only: per chunk and row band, one batched product per group
of the group's vectors with the group's columns (of every copy and polarity), so a run costs what one vector
of an ungrouped layer of the same columns costs, in time and memory, and gives one value per column. Its
chunks are chunks of runs, each current of a run (one per converted column and read) draws its own read noise,
and the ADC, the N reads, `combine`, `accumulate`, `scale` and `bias` work per run on the columns as for any
layer; a vector's DAC range (without a calibrated `x_fs`) is its own, and scales its group's columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np

from lea_compiler.errors import InvalidInputError
from lea_compiler.grouping import group_width, split_columns, vector_runs
from lea_compiler.schedule.linear_reads import BandStack, LinearReads, RowBand, linear_reads
from lea_compiler.schedule.normal_draws import counter_gaussian, gaussian, noise_generator
from lea_compiler.schedule.plan import LayerPlan
from lea_compiler.schedule.read_layout import BandFrame, band_frame, read_layout, row_targets
from lea_compiler.schedule.regions import Regions, check_regions, flat_of, put_regions, row_sums

_CHUNK_CURRENTS = 1 << 17
"""Column currents per chunk of samples (float32: 512 KiB a chunk's array, its elementwise passes in cache).
A chunk's size is part of the result: BLAS may round a product of other row counts differently, and an ADC
rounding flips with it, so a change of it changes reports (not their distribution). 2^18 was 6% faster at
25 x 25 and 7% slower at 128 x 128 (benchmarks/bench_forward_steps.py, results/forward_steps.txt)."""
_DEVICE_NOISE_NUMBERS = 1 << 20
"""Per-device read-noise numbers drawn at once with `exact_read_noise` (8 MiB of float64 draws, 4 MiB as float32;
`CrossbarExecutor._add_device_noise`)."""


@dataclass(frozen=True)
class NoiseSpan:
    """Where a call of `CrossbarExecutor.forward` lies in its noise block: the read noise of a block of samples
    is drawn from `base` in the layer's cache-sized chunks of the whole block, so a block run in several
    calls (memory chunks, `lea_compiler.chunks`) gets exactly the noise it gets when run in one."""

    base: int  # the block's seed for this layer
    block_samples: int  # samples in the whole block
    offset: int  # the first sample of this call, within the block


class CrossbarExecutor:
    """One crossbar layer's records run on given conductances: one (rows, cols) array per read, in order (a list,
    or the simulator's `Regions`, whose one buffer the set-up reads without joining the regions again)."""

    def __init__(self, plan: LayerPlan, conductances: Sequence[np.ndarray], *, dac_bits: int, adc_bits: int,
                 read_noise_uS: float = 0.0, exact_read_noise: bool = False,
                 read_maps: Sequence[np.ndarray] | None = None,
                 read_sigma_uS: Sequence[np.ndarray] | None = None, linear: bool = True) -> None:
        self.plan = plan
        # `Regions` (the simulator's programmed devices) is kept as it is: the set-up reads its flat buffer
        self.conductances: Sequence[np.ndarray] = (conductances if isinstance(conductances, Regions)
                                                   else list(conductances))
        # IR drop hook: the (rows, cols) matrix M of each read with currents I = V @ M (lea_compiler.irdrop); by
        # default the conductances (ideal lines). The read energy stays V^2 G on the conductances.
        self.read_maps: Sequence[np.ndarray] = self.conductances if read_maps is None else list(read_maps)
        self.dac_bits, self.adc_bits = dac_bits, adc_bits
        self.read_noise = read_noise_uS
        # A conductance-dependent read-noise model: per read, each device's standard deviation (uS) of the
        # Gaussian noise one read adds (`lea_compiler.chip.variability`); it replaces the uniform +-read_noise_uS.
        self.read_sigma = None if read_sigma_uS is None else [np.asarray(s, np.float64) for s in read_sigma_uS]
        self._model_noisy = self.read_sigma is not None and any(bool(np.any(s > 0)) for s in self.read_sigma)
        self.exact_read_noise = exact_read_noise
        # noisy reads whose rounding is dither summed as one Gaussian per output (`linear_reads`); False: every
        # current digitised on its own, as the board does (the reference the linear reads are tested against)
        self.linear = linear
        start = plan.start
        self.rows, self.cols, self.inputs, self.alpha = start.rows, start.cols, start.inputs, start.alpha
        self.groups = start.groups
        self.v_read = plan.scale.v_read_V
        self.x_fs: float | None = plan.scale.x_fs  # None: each vector's own (the per-vector rule)
        self.full_scale: list[float] = plan.full_scales.tolist()  # NaN: none
        self.reads = plan.read_fields("reads")[0].tolist()
        self.scale = np.asarray(plan.scale.scale_uS, dtype=np.float64)
        self.bias = None if plan.bias is None else np.asarray(plan.bias.values, dtype=np.float64)
        self._layout = read_layout(plan)
        heights, widths = self._layout.shapes
        for what, arrays in (("conductances", self.conductances), ("read maps", self.read_maps),
                             ("read-noise sigmas", self.read_sigma)):
            if arrays is not None and (arrays is not self.conductances or what == "conductances"):
                check_regions(plan.name, what, arrays, heights, widths)
        self._prepared: list[RowBand] = []
        self._stack: BandStack | None = None  # the prepared bands laid out together
        self._frame: BandFrame | None = None  # the plan's bands without their devices (`read_layout.band_frame`)
        self._prepared_for: tuple[float, ...] | None = None
        self._linear: tuple[LinearReads | None, list[RowBand]] | None = None
        self.row_conductance = self._row_conductance()
        self.read_power = 0.0  # sum over the vectors run of sum_ij V_i^2 G_ij, in V^2 uS (`read_power_of`)

    @property
    def noisy(self) -> bool:
        """True if a read adds noise (uniform, or a conductance-dependent model's)."""
        return self._model_noisy if self.read_sigma is not None else self.read_noise > 0

    def _row_conductance(self) -> np.ndarray:
        """Per row of the layer's augmented input: the conductance its reads put on it, sum_j G_ij over every
        read's region columns, times the read's N reads, (rows,); a grouped layer's (G, rows): a run's vector g
        drives the rows of every read whose block holds group g's columns, and every device on those rows
        conducts into its bit line, the other groups' columns of the region included (they are only not
        converted), so each such read adds its whole region's row sums to group g.

        All reads at once: each region's row sums (`row_sums`), then one `np.bincount` that adds them
        to their rows in read order, as adding read after read does (the same float64 sums, to the bit); where
        each goes is the plan's (`read_layout.row_targets`, made once per plan)."""
        heights, widths = self._layout.shapes
        times, rows, which = row_targets(self.plan)
        sums = row_sums(flat_of(self.conductances), heights, widths)  # each region's row sums, in read order
        sums *= times  # times each read's N reads, as reads * row_sums
        weights = sums if which is None else sums[which]  # grouped: every group that reads a read's block
        total = np.bincount(rows, weights=weights, minlength=self.groups * self.rows).astype(np.float64)
        return total[:self.rows] if self.groups == 1 else total.reshape(self.groups, self.rows)

    def read_power_of(self, v: np.ndarray) -> float:
        """sum over the vectors (or runs) of sum_ij V_i^2 G_ij N_read, in V^2 uS, for the DAC voltages v
        (n, rows), or (n, G, rows) runs: times the read time it is the energy the devices dissipate."""
        return float(np.sum(squares_down(v) * self.row_conductance))

    def _bands(self) -> list[RowBand]:
        """Per row band: G+ and G- of every copy side by side, divided by the ADC step of their column
        (so a product is in ADC steps), and the weights that turn steps back into the combined current.

        All bands at once, not read by read: every read's devices over its ADC step, rounded to float32, are put
        in one buffer of the bands one above the other, the regions of one shape in one assignment (`_in_bands`),
        each band's matrix a part of it; the ADC steps, read counts and weights of every band's columns, and
        where each read lands, depend on the plan and its ADC ranges alone (`read_layout.band_frame`, made once
        per plan: the noise draws of one schedule share them, read only)."""
        key = tuple(self.full_scale)
        if self._prepared_for == key:
            return self._prepared
        alpha, cols = self.alpha, self.cols
        frame = band_frame(self.plan, self.full_scale, self.adc_bits)  # all but the devices: once per plan
        g_all = self._in_bands(self.read_maps, frame.inv_read, frame.row, frame.col, frame.rows, frame.unique)
        variance_all = None if self.read_sigma is None else self._in_bands(
            [np.square(s) for s in self.read_sigma], np.square(frame.inv_read), frame.row, frame.col, frame.rows,
            frame.unique)
        prepared = []
        for b, (r0, r1) in enumerate(zip(frame.r0, frame.r1, strict=True)):
            part = slice(int(frame.first[b]), int(frame.first[b]) + r1 - r0)  # the band's rows: a view of the buffer
            prepared.append(RowBand(
                r0, r1, self._per_group(g_all[part]), frame.inv_step[b], frame.weights[b].reshape(2 * alpha, cols),
                frame.most[b], frame.counts[b] if frame.uneven[b] else None,
                None if variance_all is None else self._per_group(variance_all[part])))
        self._prepared, self._prepared_for, self._frame = prepared, key, frame
        self._stack = BandStack(g_all, variance_all, frame.weights, frame.inv_step, frame.reads)
        return prepared

    def _in_bands(self, arrays: Sequence[np.ndarray], factor: np.ndarray, row: np.ndarray, col: np.ndarray,
                  rows: int, unique: bool) -> np.ndarray:
        """Per-read arrays (the read maps, or the read-noise variances) times each read's `factor`, rounded to
        float32 (the float64 products, as astype rounds them), in the buffer of the row bands one above the
        other, (rows, 2 alpha cols): read i's region from row row[i] and column col[i] on. Where two reads fill
        one device, the last one's value stays (`put_regions`)."""
        layout = self._layout
        heights, widths = layout.shapes
        regions = arrays if isinstance(arrays, Regions) else Regions(flat_of(arrays), heights, widths)
        out = np.zeros((rows, 2 * self.alpha * self.cols), np.float32)
        put_regions(out, row, col, regions, factor, unique)
        return out

    def _chunk_rows(self) -> int:
        """Rows (vectors or runs) per chunk: a band's currents for a chunk fill about `_CHUNK_CURRENTS`, and at
        least 32 (a band's conductances are read from memory once per chunk, so a product needs some rows)."""
        return max(32, _CHUNK_CURRENTS // (2 * self.alpha * self.cols))

    def _per_group(self, g: np.ndarray) -> np.ndarray:
        """A band's (rows, 2 alpha cols) matrix as `_currents` multiplies it: as it is, or grouped,
        (rows, 2 alpha, G, cols / G) -> (G, rows, 2 alpha cols / G), each contiguous."""
        if self.groups == 1:
            return g
        rows = g.shape[0]
        return np.ascontiguousarray(split_columns(g.reshape(rows, 2 * self.alpha, self.cols), self.groups)
                                    .transpose(2, 0, 1, 3).reshape(self.groups, rows, -1))

    def forward(self, x: np.ndarray, rng: np.random.Generator | None = None, threads: int = 1, *,
                noise: NoiseSpan | None = None) -> np.ndarray:
        """y = x W (+ b) as the records compute it, for x of shape (..., inputs), or (..., G, inputs) in a
        grouped layer (each column from its own group's vector); y is (..., cols), float64.

        Each chunk of samples draws its read noise from its own generator (seeded from `rng` and the chunk's
        index), so the result does not depend on `threads`. The chunks are those of the noise block: all of x
        (with a seed drawn from `rng`), or the block `noise` says x is part of (then a chunk that x covers only
        in part draws its full noise and keeps x's rows of it). A chunk's rows are vectors, or runs of G
        vectors in a grouped layer.
        """
        groups = self.groups
        lead = x.shape[:-1] if groups == 1 else x.shape[:-2]
        if groups > 1 and x.shape[-2:-1] != (groups,):
            raise InvalidInputError(f"layer {self.plan.name!r}: its input {x.shape} is not runs of {groups} vectors "
                                    "(one per group) on axis -2")
        given = x.reshape(-1, x.shape[-1])
        if self.rows > self.inputs:  # the bias row's constant 1, in the one copy of x made in float32
            flat = np.empty((given.shape[0], given.shape[1] + 1), np.float32)
            flat[:, :-1] = given
            flat[:, -1] = 1.0
        else:  # x itself when it is float32 already: the DAC step below makes new arrays, x is not written
            flat = np.asarray(given, dtype=np.float32)
        v, gain = self._dac_voltages(flat)
        if groups > 1:  # (runs, G, rows): a chunk's rows are runs
            v = vector_runs(v, groups)
        self.read_power += self.read_power_of(v)
        out = np.zeros((v.shape[0], self.cols), np.float32)
        bands = self._bands()
        samples = v.shape[0]
        chunk = self._chunk_rows()
        noisy = self.noisy and rng is not None
        if noise is None:
            base = int(rng.integers(1 << 62)) if noisy else 0  # type: ignore[union-attr]
            total, offset = samples, 0
        else:  # rows of the block: a conv layer reads OH x OW rows per sample
            per_sample = samples // lead[0] if lead and lead[0] else 1
            base, total, offset = noise.base, noise.block_samples * per_sample, noise.offset * per_sample
        adc_max = float((1 << (self.adc_bits - 1)) - 1)
        linear = self._linear_reads(bands) if noisy and not self.exact_read_noise else None

        def run(index: int) -> None:
            c0, c1 = index * chunk, min(total, (index + 1) * chunk)  # the chunk, in rows of the block
            lo, hi = max(c0, offset) - offset, min(c1, offset + samples) - offset  # its rows in x
            noise_rng = None
            if noisy:  # the exact draws keep numpy's default generator (their tests reproduce it)
                noise_rng = np.random.default_rng([base, index]) if self.exact_read_noise else \
                    noise_generator(base, index)
            if linear is not None and noise_rng is not None:
                out[lo:hi] = self._read_linearly(linear, bands, v[lo:hi], noise_rng, c1 - c0, offset + lo - c0,
                                                 adc_max)
                return
            for band in bands:
                vb = v[lo:hi, ..., band.r0:band.r1]
                out[lo:hi] += self._read_band(band, vb, noise_rng, c1 - c0, offset + lo - c0, adc_max)

        chunks = range(offset // chunk, -(-(offset + samples) // chunk))
        if threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, chunks))
        else:
            for index in chunks:
                run(index)
        with np.errstate(over="ignore", invalid="ignore"):
            if groups > 1 and self.x_fs is None:  # each vector's own full scale scales its group's columns
                wide = split_columns(out.astype(np.float64), groups) * vector_runs(cast(np.ndarray, gain), groups)
                y = wide.reshape(out.shape) / (self.v_read * self.scale)
            else:
                y = out.astype(np.float64) * gain / (self.v_read * self.scale)
            if self.bias is not None:
                y = y + self.bias
        return y.reshape(*lead, self.cols)

    def _dac_voltages(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray | np.float64]:
        """The DAC's voltages for the vectors `flat` (n, rows) float32, and the gain that scales the outputs back
        (per vector (n, 1), or the layer's x_fs): each vector over its full scale (its own max |x|, at least
        `x_fs_min`, or the layer's), clipped to [-1, 1], rounded to the DAC's levels, times v_read. Elementwise
        and per vector, so `_DAC_ROWS` vectors at a time (each piece's passes in cache), the same values."""
        dac = (1 << (self.dac_bits - 1)) - 1
        v = np.empty_like(flat)  # in x's memory order, as the whole-array passes made it (`squares_down` sums it)
        per_vector = self.x_fs is None
        gains = np.zeros((len(flat), 1))  # per vector: its full scale
        fixed = np.float32(1.0 / self.x_fs) if self.x_fs is not None else np.float32(0.0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # an overflow is refused by the caller
            for lo in range(0, len(flat), _DAC_ROWS):
                given, part = flat[lo:lo + _DAC_ROWS], v[lo:lo + _DAC_ROWS]
                if per_vector:
                    inputs = given[:, :self.inputs]  # max |x| as max(max x, -min x): no array of |x| made
                    peak = np.maximum(inputs.max(axis=1), -inputs.min(axis=1)) if self.inputs else \
                        np.zeros(len(given), np.float32)
                    x_fs = np.maximum(peak, np.float32(self.plan.scale.x_fs_min))
                    inverse = np.divide(np.float32(1.0), x_fs, out=np.zeros_like(x_fs), where=x_fs > 0)
                    np.multiply(given, inverse[:, None], out=part)
                    gains[lo:lo + _DAC_ROWS, 0] = x_fs
                else:
                    np.multiply(given, fixed, out=part)
                np.clip(part, -1.0, 1.0, out=part)
                part *= np.float32(dac)  # in place: the same operations as round(v * dac) * (v_read / dac)
                np.round(part, out=part)
                part *= np.float32(self.v_read / dac)
        return v, (gains if per_vector else np.float64(self.x_fs))

    def _linear_reads(self, bands: list[RowBand]) -> LinearReads | None:
        """The layer's `LinearReads` for its bands (made once per ADC ranges), or None where they do not apply:
        `linear` off, a grouped layer, or bands that share rows."""
        if not self.linear or self.groups > 1:
            return None
        if self._linear is None or self._linear[1] is not bands:
            frame = self._frame if bands and bands is self._prepared else None  # the bands its frame made
            stack = None if frame is None else self._stack
            columns = None if frame is None else frame.column_terms
            self._linear = (linear_reads(bands, self.rows, self.cols, self.alpha, self.read_noise, self.adc_bits,
                                         stack, columns), bands)
        return self._linear[0]

    def _read_linearly(self, linear: LinearReads, bands: list[RowBand], v: np.ndarray, rng: np.random.Generator,
                       chunk_rows: int, skip: int, adc_max: float) -> np.ndarray:
        """Vectors v, rows skip .. skip + len(v) of a chunk of `chunk_rows` rows, read: the linear (vector, band)
        pairs (`LinearReads.split`) as one Gaussian per output column, drawn from the chunk's generator for the
        whole chunk, and each other pair through the ADC, current by current, its noise `counter_gaussian` of
        the chunk's key and the current's place in the chunk (band, read, row, column), so that it does not
        depend on which other pairs of the chunk did the same. The combined output, (len(v), cols)."""
        key = int(rng.bit_generator.random_raw())
        z = gaussian(rng, (chunk_rows, self.cols))[skip:skip + len(v)]
        pairs, power = linear.split(v)
        out = linear.read(v, pairs, power, z)
        if pairs.all():
            return out
        width = 2 * self.alpha * self.cols
        most = max(band.reads for band in bands)
        for b, band in enumerate(bands):
            rows = np.flatnonzero(~pairs[:, b])
            if not len(rows):
                continue
            place = (skip + rows).astype(np.uint64)[:, None] * np.uint64(width) + np.arange(width, dtype=np.uint64)

            def draw(index_read: int, place: np.ndarray = place, b: int = b) -> np.ndarray:
                return counter_gaussian(key, place + np.uint64((b * most + index_read) * chunk_rows * width))

            out[rows] += self._read_band(band, v[rows, band.r0:band.r1], rng, chunk_rows, 0, adc_max, draw)
        return out

    def _read_band(self, band: RowBand, v: np.ndarray, rng: np.random.Generator | None, chunk_rows: int,
                   skip: int, adc_max: float, draw: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
        """Rows skip .. skip + len(v) of a chunk of `chunk_rows` rows read through a row band: the column currents
        in ADC steps (one product for every copy and polarity), each read's noise, the ADC's round and clip, the
        mean of the N reads, and `combine`: the band's partial sums, (n, cols). `draw`, when given, gives read
        N's standard normals (n, 2 alpha cols) instead of the chunk's generator."""
        clean = self._currents(v, band.g)  # (n, 2 * alpha * cols) column currents in ADC steps
        reads = band.reads if rng is not None else 1  # without noise every read is the same
        # each current's read-noise sigma in ADC steps: the same for each of the band's reads
        scale = self._noise_scale(band, v) if rng is not None and not self.exact_read_noise else None
        summed = None
        for index_read in range(reads):  # each read: its own noise, then the ADC's round and clip
            steps = clean if index_read == reads - 1 else clean.copy()
            if rng is not None:
                self._add_noise(steps, v, band, rng, chunk_rows, skip, scale,
                                None if draw is None else draw(index_read))
            np.rint(steps, out=steps)
            np.clip(steps, -adc_max, adc_max, out=steps)
            if band.counts is not None and index_read > 0:  # columns read fewer times add nothing
                steps *= band.counts > index_read
            summed = steps if summed is None else np.add(summed, steps, out=summed)
        assert summed is not None
        if reads > 1:  # the mean of the digitised reads
            summed /= band.counts if band.counts is not None else np.float32(reads)
        return np.einsum("sac,ac->sc", summed.reshape(len(v), 2 * self.alpha, self.cols), band.weights)

    def _currents(self, v: np.ndarray, g: np.ndarray) -> np.ndarray:
        """A band's column currents in ADC steps, (n, 2 * alpha * cols), for v (n, band rows) or, grouped,
        v (n, G, band rows) runs, and the band's g (`RowBand.g`): one product per group of its vectors with its
        own columns only. (With v^2 and `RowBand.variance`: each current's read-noise variance, in steps^2.)"""
        if self.groups == 1:
            return v @ g
        n, groups = v.shape[0], self.groups
        per_group = np.matmul(v.transpose(1, 0, 2), g)  # (G, n, 2 alpha cols / G)
        return per_group.reshape(groups, n, 2 * self.alpha, -1).transpose(1, 2, 0, 3).reshape(n, -1)

    def _noise_scale(self, band: RowBand, v: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each current's read-noise standard deviation in ADC steps, as factors whose product broadcasts to
        (n, 2 * alpha * cols): per vector (n, 1) and per column (2 alpha cols,) for uniform noise (two in-place
        multiplies of the noise cost less than making their (n, 2 alpha cols) product), else one array.

        Uniform noise U(-r, r) per device: current j's noise sum_i V_i u_ij has variance r^2 / 3 sum_i V_i^2,
        one sigma per vector (grouped: per run's vector, for its group's columns), over the column's ADC step.
        A conductance-dependent model: device (i, j) adds N(0, sigma_ij^2), so current j's noise is
        N(0, sum_i V_i^2 sigma_ij^2) (a sum of Gaussians), a second product of the band's size."""
        if band.variance is not None:
            return (np.sqrt(self._currents(v * v, band.variance)),)
        third = np.float32(self.read_noise ** 2 / 3.0)
        if self.groups == 1:
            return np.sqrt(third * np.einsum("sr,sr->s", v, v))[:, None], band.inv_step
        sigma = np.sqrt(third * np.einsum("sgr,sgr->sg", v, v))  # (n, G): a run's vectors, each for its group
        per_column = band.inv_step.reshape(2 * self.alpha, self.groups, group_width(self.cols, self.groups))
        return ((sigma[:, None, :, None] * per_column).reshape(len(v), -1),)

    def _add_noise(self, steps: np.ndarray, v: np.ndarray, band: RowBand, rng: np.random.Generator,
                   chunk_rows: int, skip: int, scale: tuple[np.ndarray, ...] | None,
                   standard: np.ndarray | None = None) -> None:
        """Add one read's noise to the currents (n, 2 alpha cols) of rows skip .. skip + n of a chunk of
        `chunk_rows` rows, the chunk's noise drawn whole: one table-drawn Gaussian per current (or `standard`'s)
        times its sigma (`scale`), or with `exact_read_noise` every device's own draw (`_add_device_noise`)."""
        if not self.exact_read_noise:
            assert scale is not None
            noise = gaussian(rng, (chunk_rows, steps.shape[1]))[skip:skip + len(v)] if standard is None else standard
            for factor in scale:
                noise *= factor
            steps += noise
            return
        if band.variance is None:
            r = self.read_noise
            self._add_device_noise(steps, v, chunk_rows, skip, lambda shape: rng.uniform(-r, r, size=shape), None,
                                   band.inv_step)
            return
        sigma = np.sqrt(band.variance)  # (rows, 2 alpha cols), grouped (G, rows, 2 alpha cols / G)
        if self.groups > 1:  # as the per-device noise is laid out: (rows, 2 alpha, G, cols / G)
            sigma = sigma.reshape(self.groups, v.shape[-1], 2 * self.alpha, -1).transpose(1, 2, 0, 3)
        self._add_device_noise(steps, v, chunk_rows, skip, lambda shape: rng.standard_normal(size=shape),
                               sigma.reshape(v.shape[-1], -1), None)

    def _add_device_noise(self, steps: np.ndarray, v: np.ndarray, chunk_rows: int, skip: int,
                          draw: Callable[[tuple[int, int, int]], np.ndarray], sigma: np.ndarray | None,
                          column_scale: np.ndarray | None) -> None:
        """`exact_read_noise`: add to the currents of rows skip .. skip + len(v) of a chunk of `chunk_rows`
        rows every device's own noise, sum_i V_i n_ij (times `column_scale` per current), n_ij = `draw`'s
        numbers (times `sigma`, (band rows, currents), when given).

        The chunk's noise is (chunk_rows, band rows, currents) numbers drawn in C order, as one draw would give
        them, but in blocks of at most `_DEVICE_NOISE_NUMBERS` (whole chunk rows, or one chunk row's band rows
        in parts): memory is one block, not the chunk (a 4096-row band of 4096 columns was 8.6 GB per chunk).
        Every block is drawn, even where it misses v's rows, so the generator's stream is the chunk's."""
        n, rows, currents = v.shape[0], v.shape[-1], steps.shape[1]
        per_row = rows * currents
        samples = max(1, _DEVICE_NOISE_NUMBERS // per_row)
        band_rows = rows if per_row <= _DEVICE_NOISE_NUMBERS else max(1, _DEVICE_NOISE_NUMBERS // currents)
        grouped = self.groups > 1
        width = group_width(self.cols, self.groups)
        for s0 in range(0, chunk_rows, samples):
            s1 = min(chunk_rows, s0 + samples)
            for r0 in range(0, rows, band_rows):
                r1 = min(rows, r0 + band_rows)
                block = draw((s1 - s0, r1 - r0, currents)).astype(np.float32)
                lo, hi = max(s0, skip), min(s1, skip + n)
                if lo >= hi:
                    continue
                part = block[lo - s0:hi - s0]
                if sigma is not None:
                    part *= sigma[r0:r1]
                vb = v[lo - skip:hi - skip, ..., r0:r1]
                if grouped:
                    per_device = part.reshape(hi - lo, r1 - r0, 2 * self.alpha, self.groups, width)
                    added = np.einsum("sgr,srago->sago", vb, per_device).reshape(hi - lo, -1)
                else:
                    added = np.einsum("sr,src->sc", vb, part)
                if column_scale is not None:
                    added *= column_scale
                steps[lo - skip:hi - skip] += added


_DAC_ROWS = 256
"""Vectors the DAC step (`CrossbarExecutor._dac_voltages`) converts at a time: 784 KiB of float32 at 784 inputs,
its five passes in cache rather than in memory."""

_SQUARE_ROWS = 512
"""Rows of float64 squares `squares_down` makes at a time (4 MiB at 1,000 columns: in cache, not the whole
(n, rows) float64 array of the vectors' squares)."""


def squares_down(v: np.ndarray) -> np.ndarray:
    """np.square(v, dtype=np.float64).sum(axis=0), to the bit, without the float64 array of v's size: the squares
    made `_SQUARE_ROWS` rows at a time, each piece's sum carried into the next piece's first row, so every
    column is summed in the same order (row after row, as numpy reduces axis 0 of a C-ordered array). A v in
    another memory order (a transposed input's) is summed whole, as numpy sums it (pairwise along memory)."""
    if not v.flags.c_contiguous:
        return np.square(v, dtype=np.float64).sum(axis=0)
    total: np.ndarray | None = None
    piece = np.empty((min(_SQUARE_ROWS, len(v)), *v.shape[1:]), dtype=np.float64)
    for lo in range(0, len(v), _SQUARE_ROWS):
        part = piece[:min(_SQUARE_ROWS, len(v) - lo)]
        np.square(v[lo:lo + _SQUARE_ROWS], out=part, dtype=np.float64)
        if total is not None:
            part[0] += total
        total = part.sum(axis=0)
    return total if total is not None else np.zeros(v.shape[1:], dtype=np.float64)
