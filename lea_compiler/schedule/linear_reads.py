"""Linear reads: a layer's noisy digitised reads summed as one Gaussian per output column, where the ADC's
rounding is dither.

A noisy read digitises each column current I + sigma z (sigma in ADC steps, z standard normal) as
q = rint(I + sigma z), saturating at +-adc_max. Where sigma >= `SIGMA_MIN` = 1 step and the current stays
`TAIL` = 6 sigma inside the saturation, q has the mean and variance of I + sigma z + u, u ~ U(-1/2, 1/2)
independent of I and z: the mean to within exp(-2 pi^2 sigma^2) / pi and the variance to within
(4 sigma^2 + 1 / pi^2) exp(-2 pi^2 sigma^2), 1.1e-8 of a step^2 at sigma = 1 (the rounding error's Fourier
series, whose terms carry the characteristic function of sigma z at the multiples of 2 pi,
exp(-2 pi^2 m^2 sigma^2): non-subtractive dither). What is lost is the lattice of q's values; a layer's output
sums tens to thousands of such currents with unequal weights. The reads' noises are independent of each
other, so a vector's output column j, sum over row bands b, copy halves a and N reads of w_aj q / N, has

- mean v @ E: E (rows, cols) is every band's conductance (in ADC steps) weighted by its combine, one matrix of
  the layer's shape, so one product of the ideal forward's size replaces 2 k products of row-band size;
- variance sum_b sum_a w_aj^2 (sigma_abj^2 + 1/12) / N_aj: uniform read noise has one sigma per vector and
  band (sigma_abj = sigma_vb / step_aj), so the variance is (n, bands) @ (bands, cols); a conductance-dependent
  model's sigma_abj^2 = sum_i v_i^2 s_iaj^2 makes it v^2 @ R, a second product of the layer's shape;

and is drawn as a normal of that mean and variance (the Gaussian parts are normal; the rounding terms, sums of
uniforms, are at most 1/13 of each current's variance). What fails the test goes to the ADC, current by current,
as before: a (vector, band) pair whose noise is below one step somewhere (a small or sparse input), or whose
currents come within 6 sigma of the saturation: first bounded without computing them (|I_j| <= |v|_2 |g_j|_2,
Cauchy-Schwarz), and where the bound fails, computed (one product per band of the pairs in doubt, no draws),
as calibrated ADC ranges, 1.25 times the largest current seen, make the bound fail for most pairs. An all-zero
(vector, band) pair reads exactly 0 and adds neither mean nor variance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from lea_compiler.geometry import ranges, region_starts

SIGMA_MIN = 1.0
"""The least read-noise standard deviation, in ADC steps, at which a read's rounding counts as dither (its mean
and variance then within 1.1e-8 of dither's)."""
TAIL = 6.0
"""Standard deviations a current must stay below the ADC's saturation to be read linearly (a normal passes 6
sigma once in 10^9 draws; the per-current draw stops at 4.3 sigma)."""


@dataclass(frozen=True)
class RowBand:
    """A layer's row band as the executor reads it: its rows [r0, r1) of the augmented input and its reads'
    devices, every copy and polarity side by side (`schedule.execute.CrossbarExecutor._bands`)."""

    r0: int
    r1: int
    g: np.ndarray  # (rows, 2 * alpha * cols): G+ of every copy, then G-, over the ADC step of the column;
    # grouped: (G, rows, 2 * alpha * cols / G), group g's columns of every copy and polarity (`_currents`)
    inv_step: np.ndarray  # (2 * alpha * cols,)
    weights: np.ndarray  # (2 * alpha, cols): ADC step x selection / divisor, negated for G-
    reads: int  # the most reads of any of the band's regions
    counts: np.ndarray | None  # (2 * alpha * cols,) float32 reads per column, when the regions' counts differ
    variance: np.ndarray | None = None  # like g: each device's read-noise variance over the column's ADC step^2,
    # with a conductance-dependent read-noise model (`read_sigma_uS`), else None

    def column_reads(self) -> np.ndarray:
        """Reads per column, (2 alpha cols,) float64: `counts`, or `reads` for every column."""
        return np.full(self.inv_step.size, float(self.reads)) if self.counts is None else \
            self.counts.astype(np.float64)


@dataclass(frozen=True, eq=False)
class LinearReads:
    """A layer's row bands as one linear map and the variance of its reads (see the module's docstring)."""

    r0: np.ndarray  # (B,) each band's first row
    r1: np.ndarray  # (B,) each band's row after its last
    effective: np.ndarray  # (rows, cols) float32: E, a vector's mean output (in combined current) is v @ E
    rounding: np.ndarray  # (B, cols) float32: sum_a w^2 / (12 N), the rounding's variance per read pair
    noise_per_band: np.ndarray | None  # (B, cols): sum_a (w / step)^2 / N; uniform noise: times r^2/3 |v_b|^2
    noise_per_row: np.ndarray | None  # (rows, cols) float32: R, a conductance-dependent model's variance is
    # v^2 @ R
    norm2: np.ndarray  # (B,) the largest |g_j|_2 of the band's converted columns, in ADC steps per volt
    inv_step_range: np.ndarray  # (B, 2) least and largest 1 / step of the converted columns (uniform noise)
    variance_rows: np.ndarray | None  # (rows, 2) per row: least and largest device variance (steps^2) over
    # the converted columns of its band (a conductance-dependent model)
    third: float  # r^2 / 3: uniform noise U(-r, r)'s variance per device, uS^2
    adc_max: float
    bands: tuple[RowBand, ...]  # the bands themselves (not copies), for the currents of pairs in doubt
    converted: tuple[np.ndarray, ...]  # per band, (2 alpha cols,) bool: the columns a combine uses

    def split(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For DAC voltages v (n, rows): which (vector, band) pairs read linearly, (n, B) bool, and each pair's
        |v_b|^2, (n, B) float64. An all-zero pair reads linearly: its output is exactly 0, with no variance."""
        squares = np.square(v)  # float32: a decision and a variance, summed over a band's rows
        power = self._band_sums(squares).astype(np.float64)
        bound = np.sqrt(power) * self.norm2
        if self.noise_per_row is None:
            sigma = np.sqrt(self.third * power)
            low, high = sigma * self.inv_step_range[:, 0], sigma * self.inv_step_range[:, 1]
        else:
            assert self.variance_rows is not None
            low = np.sqrt(self._band_sums(squares * self.variance_rows[:, 0]))
            high = np.sqrt(self._band_sums(squares * self.variance_rows[:, 1]))
        noisy = low >= SIGMA_MIN
        inside = bound + TAIL * high < self.adc_max + 0.5
        linear = (noisy & inside) | (power == 0)
        doubt = noisy & ~inside & (power > 0)
        for b in np.flatnonzero(doubt.any(axis=0)).tolist():
            rows = np.flatnonzero(doubt[:, b])
            linear[rows[self._inside(b, v[rows], power[rows, b])], b] = True
        return linear, power

    def _inside(self, b: int, v: np.ndarray, power: np.ndarray) -> np.ndarray:
        """For vectors v (n, rows) whose band b's bound reaches the saturation: whether every converted current
        of the band, computed, stays 6 sigma inside it, (n,) bool."""
        band, converted = self.bands[b], self.converted[b]
        vb = v[:, band.r0:band.r1]
        currents = np.abs((vb @ band.g)[:, converted])  # every column's product: no copy of the band's devices
        if self.noise_per_row is None:
            sigma = np.sqrt(self.third * power)[:, None] * band.inv_step[converted]
        else:
            assert band.variance is not None
            sigma = np.sqrt(np.square(vb) @ band.variance[:, converted])
        currents += TAIL * sigma
        return currents.max(axis=1, initial=0.0) < self.adc_max + 0.5

    def _band_sums(self, values: np.ndarray) -> np.ndarray:
        """The sums over each band's rows of values (n, rows): (n, B)."""
        if self._tiled:  # the bands are the rows one after the other: no gaps to skip
            return np.add.reduceat(values, self.r0, axis=1)
        padded = np.concatenate([values, np.zeros((len(values), 1), values.dtype)], axis=1)
        return np.add.reduceat(padded, self._edges, axis=1)[:, ::2]

    def rows_of(self, linear: np.ndarray) -> np.ndarray:
        """The (n, rows) mask of the rows each vector reads linearly (a row in no band: False)."""
        mask = np.zeros((len(linear), self.effective.shape[0]), dtype=bool)
        for b, (r0, r1) in enumerate(zip(self.r0.tolist(), self.r1.tolist(), strict=True)):
            mask[:, r0:r1] |= linear[:, b:b + 1]
        return mask

    def read(self, v: np.ndarray, linear: np.ndarray, power: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The combined output (n, cols) float32, in the units of `combine`'s sum, of the linear pairs of
        vectors v (n, rows) (`split`: which, and their |v_b|^2): v @ E over those pairs plus z (n, cols,
        standard normal) times the standard deviation of their reads' noise and rounding."""
        noisy = linear & (power > 0)
        # rows in no band are zeroed too: a NaN there would reach every output through E's zero rows
        v_linear = v if linear.all() and self._tiled else np.where(self.rows_of(linear), v, np.float32(0))
        out = v_linear @ self.effective
        # the variances in float32: a standard deviation to 1e-7, from products of the layer's size or less
        if self.noise_per_row is None:
            terms = np.concatenate([self.third * power * noisy, noisy], axis=1).astype(np.float32)
            variance = terms @ self._variance_terms
        else:
            variance = np.square(v_linear) @ self.noise_per_row + noisy.astype(np.float32) @ self.rounding
        np.sqrt(variance, out=variance)
        variance *= z
        out += variance
        return out

    @functools.cached_property
    def _tiled(self) -> bool:
        return bool(self.r0[0] == 0 and np.array_equal(self.r0[1:], self.r1[:-1])
                    and self.r1[-1] == self.effective.shape[0])

    @functools.cached_property
    def _edges(self) -> np.ndarray:
        return np.stack([self.r0, self.r1], axis=1).reshape(-1)

    @functools.cached_property
    def _variance_terms(self) -> np.ndarray:
        assert self.noise_per_band is not None
        return np.concatenate([self.noise_per_band, self.rounding]).astype(np.float32)


@dataclass(frozen=True, eq=False)
class BandStack:
    """A layer's row bands one above the other, as the executor's set-up lays them out (`CrossbarExecutor._bands`):
    band b's `RowBand.g` (and `variance`) is rows first[b] .. first[b] + its height of `g` (`variance`), band after
    band, and its columns' weights, 1 / steps and reads are row b of the others. `linear_reads` works on runs of
    bands of one height at once (one product for the run, not one per band)."""

    g: np.ndarray  # (the bands' rows, 2 alpha cols) float32
    variance: np.ndarray | None  # like g, with a conductance-dependent read-noise model
    weights: np.ndarray  # (B, 2 alpha, cols) float32: `RowBand.weights`
    inv_step: np.ndarray  # (B, 2 alpha cols) float32: `RowBand.inv_step`
    reads: np.ndarray  # (B, 2 alpha cols) float64: `RowBand.column_reads`

    @classmethod
    def of(cls, bands: Sequence[RowBand]) -> BandStack:
        """The stack of bands made one by one (copies of their arrays)."""
        variance = None if bands[0].variance is None else \
            np.concatenate([cast(np.ndarray, b.variance) for b in bands])
        return cls(np.concatenate([b.g for b in bands]), variance, np.stack([b.weights for b in bands]),
                   np.stack([b.inv_step for b in bands]), np.stack([b.column_reads() for b in bands]))


def linear_reads(bands: Sequence[RowBand], rows: int, cols: int, alpha: int, read_noise_uS: float,
                 adc_bits: int, stack: BandStack | None = None,
                 columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> LinearReads | None:
    """The linear map and noise terms of a layer's bands (`schedule.execute.CrossbarExecutor._bands`): their
    conductances over the ADC step, weights (step x selection / divisor, negated for G-), reads per column and
    device variances, for uniform read noise U(-r, r) of `read_noise_uS` or, where the bands carry variances,
    a conductance-dependent model. None if two bands share rows (every read then goes to the ADC). `stack`: the
    bands laid out together (`BandStack`), if the caller has them so; else they are stacked here. `columns`: the
    stack's `column_terms`, if the caller has them (they depend on the bands' columns only, not their devices)."""
    count = len(bands)
    r0 = np.array([b.r0 for b in bands], dtype=np.int64)
    r1 = np.array([b.r1 for b in bands], dtype=np.int64)
    if count == 0 or not (np.all(r0[1:] >= r1[:-1]) and np.all(r1 > r0)):
        return None
    stack = BandStack.of(bands) if stack is None else stack
    weights = stack.weights.astype(np.float32)
    rounding, per_band, inv_step_range = column_terms(weights, stack.inv_step, stack.reads) if columns is None \
        else columns
    # what depends on the devices, for each run of bands of one height at once, in float32 (sums of 2 alpha terms;
    # of a band's rows for norms): the same sums, band by band, as one band's products make them
    effective = np.zeros((rows, cols), np.float32)
    norm2 = np.zeros(count)
    model = stack.variance is not None
    per_row = np.zeros((rows, cols), np.float32) if model else None
    variance_rows = np.zeros((rows, 2)) if model else None
    converted = (weights != 0).reshape(count, -1)
    heights = r1 - r0
    first = region_starts(heights, 1)  # each band's first row in the stack (`BandStack`)
    for lo, hi in _runs(heights):
        n, height = hi - lo, int(heights[lo])
        g = stack.g[first[lo]:first[lo] + n * height].reshape(n, height, 2 * alpha, cols)
        at = ranges(r0[lo:hi], heights[lo:hi])  # the run's rows of the layer
        effective[at] = np.einsum("brac,bac->brc", g, weights[lo:hi]).reshape(-1, cols)
        flat = g.reshape(n, height, -1)
        used = converted[lo:hi]
        norms = np.where(used, np.einsum("brw,brw->bw", flat, flat), -np.inf).max(axis=1)
        norm2[lo:hi] = np.sqrt(np.where(used.any(axis=1), norms.astype(np.float64), 0.0))
        if per_row is not None and variance_rows is not None:
            assert stack.variance is not None
            reads = stack.reads[lo:hi].astype(np.float32).reshape(n, 2 * alpha, cols)
            device = stack.variance[first[lo]:first[lo] + n * height].reshape(n, height, 2 * alpha, cols)
            per_row[at] = np.einsum("brac,bac->brc", device, np.square(weights[lo:hi]) / reads).reshape(-1, cols)
            chosen, devices = used[:, None, :], device.reshape(n, height, -1)
            low = np.where(chosen, devices, np.inf).min(axis=2)
            high = np.where(chosen, devices, -np.inf).max(axis=2)
            some = used.any(axis=1)[:, None]
            variance_rows[at] = np.stack([np.where(some, low, 0.0), np.where(some, high, 0.0)], axis=2).reshape(-1, 2)
    return LinearReads(r0, r1, effective, rounding.astype(np.float32), None if model else per_band, per_row,
                       norm2, inv_step_range, variance_rows, read_noise_uS ** 2 / 3.0,
                       float((1 << (adc_bits - 1)) - 1), tuple(bands), tuple(converted))


def _runs(heights: np.ndarray) -> list[tuple[int, int]]:
    """The runs lo .. hi of consecutive bands of one height."""
    edges = np.flatnonzero(np.diff(heights)) + 1
    bounds = [0, *edges.tolist(), len(heights)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


_BANDS_AT_ONCE = 64
"""Bands whose column terms are computed together: (64, 2 alpha, cols) float64 arrays, a fraction of the
bands' conductances whatever the layer."""


def column_terms(weights: np.ndarray, inv_step: np.ndarray, reads: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_column_terms` of every band of a `BandStack`'s weights, 1 / steps and reads, `_BANDS_AT_ONCE` bands at a
    time: the rounding's variance and the uniform noise's factor (B, cols), and the 1 / step range (B, 2)."""
    weights = weights.astype(np.float32, copy=False)
    parts = [_column_terms(weights[i:i + _BANDS_AT_ONCE], inv_step[i:i + _BANDS_AT_ONCE], reads[i:i + _BANDS_AT_ONCE])
             for i in range(0, len(weights), _BANDS_AT_ONCE)] or [_column_terms(weights, inv_step, reads)]
    rounding, per_band, inv_step_range = (np.concatenate(found) for found in zip(*parts, strict=True))
    return rounding, per_band, inv_step_range


def _column_terms(weights: np.ndarray, inv_step: np.ndarray, reads: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What depends on the bands' columns only (weights (B, 2 alpha, cols), 1 / steps and reads (B, 2 alpha cols):
    `BandStack`'s), for each band: the rounding's variance sum_a w^2 / (12 N) and the uniform noise's factor
    sum_a (w / step)^2 / N, (B, cols) each, and the least and largest 1 / step of its converted columns, (B, 2)
    (1 and 1 for a band that converts none)."""
    shape = weights.shape
    weights = weights.astype(np.float64)
    reads = reads.reshape(shape)
    inv_step = inv_step.astype(np.float64)
    converted = (weights != 0).reshape(len(weights), -1)
    some = converted.any(axis=1)
    step_range = np.ones((len(weights), 2))
    step_range[some, 0] = np.where(converted, inv_step, np.inf).min(axis=1)[some]
    step_range[some, 1] = np.where(converted, inv_step, -np.inf).max(axis=1)[some]
    return (np.sum(weights ** 2 / (12.0 * reads), axis=1),
            np.sum((weights * inv_step.reshape(shape)) ** 2 / reads, axis=1), step_range)
