"""Simulator backend: runs a Program on a simulated chip and reports accuracy, cycles and energy.

It reads only the Program (and optionally another chip file), so what it
simulates is what would be programmed. The functional model:

Devices. A healthy device programmed to level l reads l + N(0, sigma_w)
(`device.write_noise_uS`, drawn once: programming happens once). A device
that is stuck on the simulated chip reads its stuck conductance whatever was
programmed. A device the Program skipped (stuck when compiled) that is
healthy on the simulated chip (another `--chip`) rests at the lowest level.
Every read adds uniform noise U(-r, r) per device (`device.read_noise_uS`).
The column current is I_j = sum_i V_i G_ij, so the read noise reaches the
current as sum_i V_i n_ij: by default it is drawn as a Gaussian with exactly
that variance, r^2/3 sum_i V_i^2 (one draw per sample and column instead of
one per device, from a 65,536-quantile table of N(0, 1); `exact_read_noise=True`
draws every device's uniform noise).
`ideal=True` turns defects and noise off: every device reads its target.
A `joint` layer's copies differ from each other and from the target by
design (passes/encode.py), so with `ideal` each of its devices reads the
level the Program programs, and a device it skipped reads the stuck
conductance of the chip compiled for, which the other copies were encoded
around: the weights the Program represents (`program.represented_matrix`).

Periphery, per crossbar layer (a `leac.MVM` node y = x W + b):
1. DAC: the input (with a constant 1 appended for a bias row) is scaled by the
   layer's full-scale input x_fs and quantised to `dac_bits` (signed):
   V = v_read * Q(clip(x / x_fs, -1, 1)). x_fs comes from the Program when it
   was calibrated at compile time (`leac compile --calibrate`), else it is
   calibrated as max |x| of the layer's input over the data simulated (at
   least 1 with a bias row); see `lea_compiler.calibration`.
2. Each copy half of each block is read (its rows get their input slice);
   each column current is quantised by the ADC to `adc_bits` (signed) over
   +-I_fs and saturates beyond. I_fs is calibrated per block as 1.25 x the
   largest column current the block's target conductances carry for the
   data's inputs (a stuck-high device may push a column past it: it clips,
   as a real ADC would).
3. Digital: G+ minus G- per copy; the mean over the beta copies the Program
   selected for each column; row blocks' partial sums added; divided by
   v_read / x_fs and by the column's scale (weight units); times the column's
   stuck-device gain and plus its offset when the Program has them
   (`passes/compensate.py`; not with `ideal`); the bias added when it is
   digital. Every other op runs in the interpreter's kernels.

Cost model (one inference; `CostModel`): see docs/simulator.md.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from lea_compiler import interpreter
from lea_compiler.backends.cost import (
    CostModel,
    DigitalCounter,
    EventCounts,
    digital_add,
    estimate_cost,
    layer_cost,
)
from lea_compiler.calibration import Calibration, calibrate
from lea_compiler.chip import Chip
from lea_compiler.chunks import samples_per_chunk
from lea_compiler.datasets import MAX_DATA_BYTES, Dataset, check_labels, load_data, model_labels, top1
from lea_compiler.errors import BadDataError, InvalidInputError, UsageError
from lea_compiler.interpreter import Array, Kernel
from lea_compiler.ir import Node
from lea_compiler.program import Layer, Program
from lea_compiler.reference import checked_session, run_session

__all__ = ["MAX_DATA_BYTES", "Calibration", "CostModel", "CrossbarLayer", "Dataset", "EventCounts", "Report",
           "calibrate", "estimate_cost", "load_data", "simulate", "software_predictions", "top1"]



# ------------------------------------------------------------- crossbar layers
def _gaussian_table() -> np.ndarray:
    from statistics import NormalDist

    quantiles = (np.arange(1 << 16) + 0.5) / (1 << 16)
    inverse = np.vectorize(NormalDist().inv_cdf)
    return inverse(quantiles).astype(np.float32)


_GAUSSIAN = _gaussian_table()


def gaussian(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 samples drawn as the 65,536 equiprobable quantiles of N(0, 1).

    Five times faster than `standard_normal` (16 raw random bits per sample
    and one lookup), which dominated the simulator's time; the tails stop at
    4.3 sigma, which changes nothing for read noise that is a bounded sum of
    uniform terms anyway.
    """
    count = math.prod(shape)
    bits = rng.bit_generator.random_raw(-(-count // 4)).astype("<u8", copy=False).view("<u2")[:count]
    return np.take(_GAUSSIAN, bits).reshape(shape)


SOFTWARE_CHUNK_SAMPLES = 2048
"""Most samples per onnxruntime run of the software baseline (fewer when `chunks.CHUNK_BYTES` says so)."""

_CHUNK_CURRENTS = 1 << 17
"""Column currents per chunk of samples (float32: 512 KiB, so a chunk's elementwise passes stay in cache)."""


@dataclass(frozen=True)
class NoiseSpan:
    """Where a call of `CrossbarLayer.forward` lies in its noise block: the read noise of a block of samples
    is drawn from `base` in the layer's cache-sized chunks of the whole block, so a block run in several
    calls (memory chunks, `lea_compiler.chunks`) gets exactly the noise it gets when run in one."""

    base: int  # the block's seed for this layer
    block_samples: int  # samples in the whole block
    offset: int  # the first sample of this call, within the block


@dataclass(frozen=True)
class _RowBlock:
    r0: int
    r1: int
    g: np.ndarray  # (rows, 2 * alpha * cols): G+ of every copy, then G-, over the ADC step of the column
    inv_step: np.ndarray  # (2 * alpha * cols,)
    weights: np.ndarray  # (2 * alpha, cols): ADC step x selection / beta, negated for G-


class CrossbarLayer:
    """One Program layer on the simulated chip: its devices' conductances, and its forward pass."""

    def __init__(
        self,
        layer: Layer,
        node: Node,
        chip: Chip,
        rng: np.random.Generator,
        *,
        ideal: bool,
        exact_read_noise: bool,
        compiled_chip: Chip | None = None,
    ) -> None:
        self.layer = layer
        self.compiled_chip = compiled_chip or chip  # whose stuck devices an ideal joint layer reads
        self.node = node
        self.chip = chip
        self.ideal = ideal
        self.exact_read_noise = exact_read_noise
        self.levels = np.asarray(layer.levels_uS, dtype=np.float64)
        device = chip.device
        self.read_noise = 0.0 if ideal else device.read_noise_uS
        bias = node.input(2)
        self.digital_bias = None if layer.bias_row or bias is None else np.asarray(bias.const, dtype=np.float64)
        # the stuck-device compensation is for the compiled chip's defects, which ideal devices do not have
        self.gain = None if ideal or layer.column_gain is None else np.asarray(layer.column_gain, np.float64)
        self.offset = None if ideal or layer.column_offset is None else np.asarray(layer.column_offset, np.float64)
        self.x_fs = 1.0
        maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.blocks = []  # per block: (block, G+ (alpha, r, c), G- (alpha, r, c), mask (alpha, c))
        for block in layer.blocks:
            halves = []
            for polarity in ("pos", "neg"):
                stack = []
                for copy in block.copies:
                    half = getattr(copy, polarity)
                    target = block.target_pos if polarity == "pos" else block.target_neg
                    stack.append(self._conductance(half, target, maps, rng, device.write_noise_uS))
                halves.append(np.stack(stack))
            self.blocks.append((block, halves[0], halves[1], block.selection.astype(np.float64)))
        v_read = chip.periphery.v_read_V
        self.full_scale = [v_read * b.shape[0] * self.levels[-1] for b in layer.blocks]
        self._prepared: list[_RowBlock] = []
        self._prepared_for: tuple[float, ...] | None = None
        self.cost = layer_cost(layer, chip, digital_add(layer, node))

    def _conductance(self, half: Any, target: np.ndarray, maps: dict[int, tuple[np.ndarray, np.ndarray]],
                     rng: np.random.Generator, sigma: float) -> np.ndarray:
        region = half.region
        rows, cols = half.levels.shape
        if self.ideal:
            if self.layer.encoding != "joint":
                return self.levels[target]
            if region.array not in maps:  # with `ideal`, the maps are the compiled chip's
                maps[region.array] = self.compiled_chip.stuck_map(region.array)
            g = maps[region.array][1][region.row:region.row + rows, region.col:region.col + cols]
            return np.where(half.levels >= 0, self.levels[np.maximum(half.levels, 0)], np.nan_to_num(g))
        if region.array not in maps:
            maps[region.array] = self.chip.stuck_map(region.array)
        state, g = maps[region.array]
        state = state[region.row:region.row + rows, region.col:region.col + cols]
        g = g[region.row:region.row + rows, region.col:region.col + cols]
        programmed = np.where(half.levels >= 0, self.levels[np.maximum(half.levels, 0)], self.levels[0])
        noisy = programmed + rng.normal(0.0, sigma, size=programmed.shape) if sigma > 0 else programmed
        noisy = np.maximum(noisy, 0.0)  # a conductance cannot go negative
        return np.where(state != 0, g, noisy)

    def _row_blocks(self) -> list[_RowBlock]:
        """Per row block: G+ and G- of every copy side by side, divided by the ADC step of their column
        (so a product is in ADC steps), and the weights that turn steps back into the averaged current."""
        key = tuple(self.full_scale)
        if self._prepared_for == key:
            return self._prepared
        layer = self.layer
        adc = (1 << (self.chip.periphery.adc_bits - 1)) - 1
        prepared = []
        for r0, r1 in layer.row_bounds:
            rows = r1 - r0
            g = np.zeros((rows, 2, layer.alpha, layer.cols), np.float64)
            step = np.ones((layer.alpha, layer.cols), np.float64)
            mask = np.zeros((layer.alpha, layer.cols), np.float64)
            for (block, bp, bn, bmask), fs in zip(self.blocks, self.full_scale, strict=True):
                if block.row_start != r0:
                    continue
                cols = slice(block.col_start, block.col_stop)
                g[:, 0, :, cols] = bp.transpose(1, 0, 2)
                g[:, 1, :, cols] = bn.transpose(1, 0, 2)
                step[:, cols] = fs / adc
                mask[:, cols] = bmask / layer.beta
            inv_step = np.concatenate([1.0 / step, 1.0 / step]).reshape(-1)
            weights = np.concatenate([mask * step, -mask * step])  # (2 alpha, cols): G+ adds, G- subtracts
            prepared.append(_RowBlock(r0, r1, (g.reshape(rows, -1) * inv_step).astype(np.float32),
                                      inv_step.astype(np.float32), weights.astype(np.float32)))
        self._prepared, self._prepared_for = prepared, key
        return prepared

    def forward(self, x: Array, rng: np.random.Generator, counts: EventCounts, threads: int = 1, *,
                noise: NoiseSpan | None = None) -> Array:
        """y = x W (+ b) as the crossbars and periphery compute it, for x of shape (..., rows).

        Samples go in chunks small enough for a chunk's column currents to stay
        in cache; per chunk and row block, every copy and polarity is read in
        one float32 matrix product, then read noise, ADC and the beta average
        run vectorised over samples, copies and columns. Each chunk draws its
        read noise from its own generator (seeded from `rng` and the chunk's
        index), so the result does not depend on `threads`. The chunks are those of
        the noise block: all of x (with a seed drawn from `rng`), or the block
        `noise` says x is part of (then a chunk that x covers only in part draws
        its full noise and keeps x's rows of it).
        """
        periphery = self.chip.periphery
        layer = self.layer
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1]).astype(np.float32)
        if layer.bias_row:
            flat = np.hstack([flat, np.ones((flat.shape[0], 1), np.float32)])
        dac = (1 << (periphery.dac_bits - 1)) - 1
        v = np.clip(flat * np.float32(1.0 / self.x_fs), -1.0, 1.0)
        v = np.round(v * np.float32(dac)) * np.float32(periphery.v_read_V / dac)
        out = np.zeros((flat.shape[0], layer.cols), np.float32)
        blocks = self._row_blocks()
        samples = flat.shape[0]
        chunk = max(32, _CHUNK_CURRENTS // (2 * layer.alpha * layer.cols))
        if noise is None:
            base = int(rng.integers(1 << 62)) if self.read_noise > 0 else 0
            total, offset = samples, 0
        else:  # rows of the block: a conv layer reads OH x OW rows per sample
            per_sample = samples // x.shape[0] if x.ndim > 1 and x.shape[0] else 1
            base, total, offset = noise.base, noise.block_samples * per_sample, noise.offset * per_sample

        def run(index: int) -> None:
            c0, c1 = index * chunk, min(total, (index + 1) * chunk)  # the chunk, in rows of the block
            lo, hi = max(c0, offset) - offset, min(c1, offset + samples) - offset  # its rows in x
            noise_rng = np.random.default_rng([base, index]) if self.read_noise > 0 else None
            for rb in blocks:
                vb = v[lo:hi, rb.r0:rb.r1]
                steps = vb @ rb.g  # (n, 2 * alpha * cols) column currents in ADC steps
                if noise_rng is not None:
                    self._add_read_noise(steps, vb, rb, noise_rng, c1 - c0, offset + lo - c0)
                np.rint(steps, out=steps)
                np.clip(steps, -adc_max, adc_max, out=steps)
                out[lo:hi] += np.einsum("sac,ac->sc", steps.reshape(hi - lo, 2 * layer.alpha, layer.cols),
                                        rb.weights)

        adc_max = float((1 << (periphery.adc_bits - 1)) - 1)
        chunks = range(offset // chunk, -(-(offset + samples) // chunk))
        if threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, chunks))
        else:
            for index in chunks:
                run(index)
        y = out.astype(np.float64) / (periphery.v_read_V / self.x_fs) / layer.scale
        if self.gain is not None:
            y = y * self.gain
        if self.offset is not None:
            y = y + self.offset
        if self.digital_bias is not None:
            y = y + self.digital_bias
        self._count(counts, flat.shape[0])
        return y.reshape(*lead, layer.cols).astype(x.dtype)

    def _add_read_noise(self, steps: np.ndarray, v: np.ndarray, rb: _RowBlock, rng: np.random.Generator,
                        chunk_rows: int, skip: int) -> None:
        """Add the read noise of rows skip .. skip + len(v) of a chunk of `chunk_rows` rows (drawn whole)."""
        r = self.read_noise
        n = v.shape[0]
        if self.exact_read_noise:
            full = rng.uniform(-r, r, size=(chunk_rows, v.shape[1], steps.shape[1])).astype(np.float32)
            steps += np.einsum("sr,src->sc", v, full[skip:skip + n]) * rb.inv_step
            return
        sigma = np.sqrt(np.float32(r * r / 3.0) * np.einsum("sr,sr->s", v, v))
        noise = gaussian(rng, (chunk_rows, steps.shape[1]))[skip:skip + n]
        noise *= sigma[:, None]
        noise *= rb.inv_step
        steps += noise

    def _count(self, counts: EventCounts, applications: int) -> None:
        cost = self.cost
        counts.reads += cost.reads * applications
        counts.adc_conversions += cost.adc_conversions * applications
        counts.dac_conversions += cost.dac_conversions * applications
        counts.device_reads += cost.device_reads * applications
        counts.digital_ops += cost.digital_ops * applications
        counts.analog_ns += cost.analog_ns * applications


# -------------------------------------------------------------------- simulate
@dataclass(frozen=True)
class DataReport:
    name: str
    samples: int
    accuracy: float
    software_accuracy: float | None
    agreement: float | None


@dataclass(frozen=True)
class Report:
    """What `leac simulate` reports (see `to_json` for the stable keys)."""

    data: tuple[DataReport, ...]
    layer_error: dict[str, float]
    cost: CostModel
    counted: EventCounts
    devices_used: int
    devices_total: int
    arrays_used: int
    arrays_total: int
    chip: str | None
    compiled_for_chip: bool
    ideal: bool
    seed: int
    input_full_scale: dict[str, float]
    calibration: str
    seconds: float

    @property
    def accuracy(self) -> float:
        return float(np.mean([d.accuracy for d in self.data]))

    @property
    def software_accuracy(self) -> float | None:
        values = [d.software_accuracy for d in self.data]
        return None if any(v is None for v in values) else float(np.mean(values))  # type: ignore[arg-type]

    @property
    def agreement(self) -> float | None:
        values = [d.agreement for d in self.data]
        return None if any(v is None for v in values) else float(np.mean(values))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        c = self.cost
        return {
            "report": "leac-simulate",
            "version": 1,
            "accuracy": self.accuracy,
            "software_accuracy": self.software_accuracy,
            "agreement": self.agreement,
            "data": [d.__dict__ for d in self.data],
            "layer_output_error": self.layer_error,
            "devices_used": self.devices_used,
            "devices_total": self.devices_total,
            "utilisation": self.devices_used / self.devices_total,
            "arrays_used": self.arrays_used,
            "arrays_total": self.arrays_total,
            "cycles_per_inference": c.cycles_per_inference,
            "latency_ns": c.latency_ns,
            "throughput_per_s": c.throughput_per_s,
            "energy_pJ_per_inference": c.energy_pJ_per_inference,
            "energy_breakdown_pJ": c.energy_breakdown_pJ,
            "program_pulses": c.program_pulses,
            "program_time_s": c.program_time_s,
            "program_energy_uJ": c.program_energy_uJ,
            "chip": self.chip,
            "compiled_for_chip": self.compiled_for_chip,
            "ideal": self.ideal,
            "seed": self.seed,
            "input_full_scale": self.input_full_scale,
            "calibration": self.calibration,
            "seconds": self.seconds,
        }


def simulate(
    program: Program,
    datasets: Sequence[Dataset],
    *,
    chip: Chip | None = None,
    seed: int = 0,
    ideal: bool = False,
    exact_read_noise: bool = False,
    output: str | None = None,
    batch_size: int = 2048,
    threads: int = 1,
    software: Sequence[np.ndarray] | None = None,
) -> Report:
    """Run the Program on a simulated chip over each data set and report.

    `threads` worker threads share each crossbar layer's chunks of samples;
    the report does not depend on it (each chunk seeds its own read noise).
    Samples go in noise blocks of `batch_size` (each layer draws one seed per
    block), and a block through the network in chunks small enough for
    `chunks.CHUNK_BYTES` (`chunks.samples_per_chunk`), as the calibration and
    onnxruntime's baseline do: memory is bounded by a chunk, not by the data,
    and the chunks draw the noise of their block (`NoiseSpan`).
    `software` is onnxruntime's top-1 prediction per sample of each data set
    when the caller has it already (`software_predictions`: a batch of Programs
    compiled from one model computes it once); by default it is computed here.

    Before anything runs, every data set's labels are checked against the
    classes the top-1 output can give (`datasets.check_labels`): labels the
    model never predicts make the accuracy meaningless, so they are refused.

    Raises:
        InvalidInputError: the simulated chip lacks arrays the Program uses or has other array sizes.
        BadDataError: the data does not fit the model, or has labels the model never predicts.
        UsageError: `threads` below 1, a negative `seed`, or no output named `output`.
    """
    if threads < 1:
        raise UsageError(f"threads must be at least 1, got {threads}")
    if seed < 0:
        raise UsageError(f"the seed must be a non-negative integer, got {seed}")
    if software is not None and len(software) != len(datasets):
        raise UsageError(f"software predictions for {len(software)} data sets, but {len(datasets)} data sets")
    labels = model_labels(program.graph, output)
    for data in datasets:
        check_labels(data, labels)
    start = time.perf_counter()
    sim_chip = chip or program.chip
    _check_chip(program, sim_chip)
    rng = np.random.default_rng(seed)
    layers = {
        layer.name: CrossbarLayer(layer, program.graph.node(layer.name), sim_chip, rng, ideal=ideal,
                                  exact_read_noise=exact_read_noise, compiled_chip=program.chip)
        for layer in program.layers
    }
    calibration = stored_calibration(program)
    calibration_source = f"compile time ({program.extra.get('calibration')})"
    if calibration is None:
        calibration = calibrate(program, datasets, sim_chip)
        calibration_source = "the simulated data"
    for name, layer in layers.items():
        layer.x_fs = calibration.input_full_scale[name]
        layer.full_scale = calibration.adc_full_scale_uA[name]
    counts = EventCounts()

    spans: dict[str, NoiseSpan] = {}

    def make_kernel(name: str, layer: CrossbarLayer) -> Kernel:
        return lambda node, inputs: [layer.forward(inputs[0], rng, counts, threads,  # type: ignore[arg-type]
                                                   noise=spans[name])]

    kernels = {name: make_kernel(name, layer) for name, layer in layers.items()}
    listener = DigitalCounter(counts)
    mvm_values = {node.name: node.outputs[0].name for node in program.graph.nodes_of("MVM")}
    feed = program.graph.inputs[0].name
    reports: list[DataReport] = []
    squared: defaultdict[str, float] = defaultdict(float)
    reference_sq: defaultdict[str, float] = defaultdict(float)
    samples_total = 0
    if software is None and program.source_model is not None:
        software = software_predictions(program, datasets, output)
    per_chunk = samples_per_chunk(program.graph, batch_size)
    for index, data in enumerate(datasets):
        predictions = []
        for lo in range(0, len(data.x), batch_size):  # a noise block: each layer draws its seed for it, in order
            block = min(batch_size, len(data.x) - lo)
            bases = {name: int(rng.integers(1 << 62)) if name in layers and layers[name].read_noise > 0 else 0
                     for name in mvm_values}
            for start in range(lo, lo + block, per_chunk):  # memory chunks (`lea_compiler.chunks`)
                spans.update((name, NoiseSpan(base, block, start - lo)) for name, base in bases.items())
                batch = {feed: data.x[start:min(start + per_chunk, lo + block)]}
                sim_out = interpreter.run(program.graph, batch, kernels=kernels, keep=list(mvm_values.values()),
                                          listeners=[listener])
                ref_out = interpreter.run(program.graph, batch, keep=list(mvm_values.values()))
                for name, value in mvm_values.items():
                    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
                        squared[name] += float(np.sum((sim_out[value].astype(np.float64) - ref_out[value]) ** 2))
                        reference_sq[name] += float(np.sum(ref_out[value].astype(np.float64) ** 2))
                    if not (math.isfinite(squared[name]) and math.isfinite(reference_sq[name])):
                        raise BadDataError(f"{data.name}: the data drives the output of layer {name!r} to infinity "
                                           "or NaN (float32 overflow), so its error cannot be measured; scale the "
                                           "data down")
                outputs = {v.name: sim_out[v.name] for v in program.graph.outputs}
                predictions.append(top1(outputs, output))
                del sim_out, ref_out, outputs
        predicted = np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
        samples_total += len(data.x)
        software_accuracy, agreement = None, None
        if software is not None:
            software_accuracy = float(np.mean(software[index] == data.y))
            agreement = float(np.mean(software[index] == predicted))
        reports.append(DataReport(data.name, len(data.x), float(np.mean(predicted == data.y)), software_accuracy,
                                  agreement))
    if samples_total:
        for field_name in ("reads", "adc_conversions", "dac_conversions", "device_reads", "digital_ops",
                           "analog_ns"):
            setattr(counts, field_name, getattr(counts, field_name) / samples_total)
    layer_error = {name: math.sqrt(squared[name] / reference_sq[name]) if reference_sq[name] > 0 else 0.0
                   for name in mvm_values}
    return Report(
        data=tuple(reports),
        layer_error=layer_error,
        cost=estimate_cost(program, sim_chip),
        counted=counts,
        devices_used=program.devices_used,
        devices_total=sim_chip.device_count,
        arrays_used=len(program.arrays_used),
        arrays_total=len(sim_chip.arrays),
        chip=sim_chip.display_name,
        compiled_for_chip=sim_chip.fingerprint() == program.chip_fingerprint,
        ideal=ideal,
        seed=seed,
        input_full_scale=calibration.input_full_scale,
        calibration=calibration_source,
        seconds=time.perf_counter() - start,
    )


def software_predictions(program: Program, datasets: Sequence[Dataset], output: str | None = None
                         ) -> list[np.ndarray] | None:
    """onnxruntime's top-1 prediction for every sample of each data set, on the original model the Program
    embeds (None if it embeds none): the software baseline of the report's `software_accuracy` and `agreement`.

    The embedded model is checked by the front end first (`reference.checked_session`): a Program can embed
    any model, and onnxruntime must not run one that leac would refuse to compile.

    Raises:
        InvalidModelError: leac's front end refuses the embedded model, or onnxruntime cannot run it on the data.
        UsageError: the model has no output `output`.
    """
    if program.source_model is None:
        return None
    session = checked_session(program.source_model, "the Program's embedded model.onnx")
    feed = program.graph.inputs[0].name
    per_chunk = samples_per_chunk(program.graph, SOFTWARE_CHUNK_SAMPLES)
    return [np.concatenate([top1(run_session(session, {feed: data.x[lo:lo + per_chunk]}), output)
                            for lo in range(0, len(data.x), per_chunk)]) for data in datasets]


def stored_calibration(program: Program) -> Calibration | None:
    """The DAC/ADC ranges fixed at compile time (`leac compile --calibrate`), if the Program has them."""
    if any(layer.input_full_scale is None or any(b.adc_full_scale_uA is None for b in layer.blocks)
           for layer in program.layers):
        return None
    return Calibration(
        {layer.name: float(layer.input_full_scale) for layer in program.layers},  # type: ignore[arg-type]
        {layer.name: [float(b.adc_full_scale_uA) for b in layer.blocks] for layer in program.layers},  # type: ignore[arg-type]
    )


def _check_chip(program: Program, chip: Chip) -> None:
    compiled = {a.id: (a.rows, a.cols) for a in program.chip.arrays}
    available = {a.id: (a.rows, a.cols) for a in chip.arrays}
    for array_id in program.arrays_used:
        if available.get(array_id) != compiled[array_id]:
            raise InvalidInputError(
                f"the simulated chip has no array {array_id} of {compiled[array_id][0]} x {compiled[array_id][1]}, "
                "which the Program uses"
            )
