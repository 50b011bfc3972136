"""Simulator backend: runs a Program on a simulated chip and reports accuracy, cycles and energy.

What runs is the Program's schedule (`lea_compiler.schedule`): the records a board file holds (or the records
of a given board file), so what is simulated is what the board runs. This module adds the devices, and runs
the graph in the interpreter with each crossbar layer's records executed (`schedule.execute`).

Devices: `backends.crossbar` (`CrossbarLayer`): what each device reads once programmed on the simulated chip
(write noise, stuck devices, drift, read noise).

Periphery: the DAC, the reads, the ADC over each block's range, the beta average, the partial sums, the
scale and the bias, with the input and ADC ranges of the schedule (calibrated at compile time, or the
per-vector input rule and worst-case ADC ranges; never fitted on the data simulated): `schedule.execute`.

Cost model (one inference; `CostModel`): see docs/simulator.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lea_compiler import interpreter
from lea_compiler.backends.board_match import check_program_match
from lea_compiler.backends.cost import (
    CostModel,
    DigitalCounter,
    EventCounts,
    estimate_cost,
    programming_cost,
    timing_json,
)
from lea_compiler.backends.crossbar import CrossbarLayer
from lea_compiler.backends.digital_reference import DigitalReference
from lea_compiler.calibration import Calibration, calibrate
from lea_compiler.chip import PULSE, Chip
from lea_compiler.chip.variability import parse_duration
from lea_compiler.chunks import samples_per_chunk
from lea_compiler.datasets import MAX_DATA_BYTES, Dataset, check_labels, load_data, model_labels, top1
from lea_compiler.errors import BadDataError, InvalidInputError, UsageError
from lea_compiler.interpreter import Kernel
from lea_compiler.irdrop import check_regions
from lea_compiler.program import Program
from lea_compiler.schedule.execute import NoiseSpan
from lea_compiler.schedule.lower import column_scale_and_bias, is_crossbar
from lea_compiler.schedule.normal_draws import gaussian
from lea_compiler.schedule.plan import Schedule, schedule_of

log = logging.getLogger(__name__)

__all__ = ["MAX_DATA_BYTES", "Calibration", "CostModel", "CrossbarLayer", "Dataset", "DigitalReference",
           "EventCounts", "NoiseSpan", "Report", "Trials", "calibrate", "estimate_cost", "gaussian", "load_data",
           "run_on_chip", "simulate", "simulate_trials", "software_predictions", "top1"]


SOFTWARE_CHUNK_SAMPLES = 2048
"""Most samples per onnxruntime run of the software baseline (fewer when `chunks.CHUNK_BYTES` says so)."""


# -------------------------------------------------------------------- simulate
@dataclass(frozen=True)
class DataReport:
    name: str
    samples: int
    accuracy: float
    software_accuracy: float | None
    agreement: float | None


@dataclass(frozen=True)
class Trials:
    """Accuracy over independent programming draws of one chip: trial i simulates with seed `seeds[i]`."""

    seeds: tuple[int, ...]
    accuracy: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        values = np.asarray(self.accuracy, dtype=np.float64)
        return {"count": len(self.seeds), "seeds": list(self.seeds), "accuracy": list(self.accuracy),
                "mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
                "max": float(values.max())}


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
    input_full_scale: dict[str, float | None]
    calibration: str
    seconds: float
    trials: Trials | None = None  # with `simulate_trials`: every draw's accuracy
    program_failed: int | None = None  # pulse model: devices whose simulated write-verify ended out of tolerance
    after_s: float | None = None  # seconds after programming that drift was simulated (`after`); None: none

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
            **timing_json(c),
            "energy_pJ_per_inference": c.energy_pJ_per_inference,
            "energy_breakdown_pJ": c.energy_breakdown_pJ,
            "energy_by_layer_pJ": c.energy_by_layer_pJ,
            "device_energy": c.device_energy,
            "program_pulses": c.program_pulses,
            "program_time_s": c.program_time_s,
            "program_energy_uJ": c.program_energy_uJ,
            "program_failed": self.program_failed,
            "chip": self.chip,
            "compiled_for_chip": self.compiled_for_chip,
            "ideal": self.ideal,
            "seed": self.seed,
            "input_full_scale": self.input_full_scale,
            "calibration": self.calibration,
            "seconds": self.seconds,
            **({"trials": self.trials.to_json()} if self.trials is not None else {}),
            **({"after_s": self.after_s} if self.after_s is not None else {}),
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
    board: Schedule | None = None,
    after: float | str = 0.0,
    schedule: Schedule | None = None,
    reference: DigitalReference | None = None,
) -> Report:
    """Run the Program on a simulated chip over each data set and report.

    What runs is the Program's schedule (`lea_compiler.schedule`): the records a board file holds, executed.
    `board` is the schedule of a board file emitted from this Program (`board_schedule`): the simulator then
    runs the file's programming and crossbar records instead of lowering the Program again, and the report is
    the same: a file whose records are not what the Program lowers to is refused (`board_match.check_program_match`).
    The Program still gives the digital nodes (the file's are checked to be the same), the chip, the reference
    the layer errors are measured against and the software baseline.

    Input and ADC ranges are the schedule's: calibrated at compile time, or the per-vector input rule and
    the worst-case ADC ranges (`lea_compiler.schedule.lower`); never fitted on the data simulated.

    `threads` worker threads share each crossbar layer's chunks of samples;
    the report does not depend on it (each chunk seeds its own read noise).
    Samples go in noise blocks of `batch_size` (each layer draws one seed per
    block), and a block through the network in chunks small enough for
    `chunks.CHUNK_BYTES` (`chunks.samples_per_chunk`), as onnxruntime's baseline does: memory is bounded by
    a chunk, not by the data, and the chunks draw the noise of their block (`NoiseSpan`).
    `software` is onnxruntime's top-1 prediction per sample of each data set
    when the caller has it already (`software_predictions`: a batch of Programs
    compiled from one model computes it once); by default it is computed here. `schedule` likewise is the
    Program's own schedule (`schedule_of(program)`, not a board file's: that is `board`) when the caller has
    lowered it already (`simulate_trials` lowers once for all its draws); by default the Program is lowered here.
    `reference`, the digital reference of the layer errors (`DigitalReference`), likewise: one made for this
    Program and these data sets keeps its outputs for every draw that is given it; by default it is run here.
    `after` is the time since programming (seconds, or a duration such as "1h", `variability.parse_duration`):
    every programmed device has drifted as the chip's `device.drift` says (docs/chip-format.md); 0, the
    default, simulates the devices as programmed, and a chip without a drift model takes only 0.

    Before anything runs, every data set's labels are checked against the
    classes the top-1 output can give (`datasets.check_labels`): labels the
    model never predicts make the accuracy meaningless, so they are refused.

    Raises:
        InvalidInputError: the simulated chip lacks arrays the Program uses or has other array sizes, or the
            board schedule is not this Program's.
        BadDataError: the data does not fit the model, or has labels the model never predicts.
        UsageError: `threads` below 1, a negative `seed`, no output named `output`, a bad `after` (not a
            duration, or given for a chip without a drift model or with `ideal`), a read region too large for
            the IR-drop solve of a chip whose lines have resistance (`irdrop.check_regions`), or `schedule` given
            with `board`, or a board file's schedule or another Program's given as `schedule`, or a `reference`
            made for another Program or other data sets.
    """
    after_s = _after_seconds(after, chip or program.chip, ideal)
    if threads < 1:
        raise UsageError(f"threads must be at least 1, got {threads}")
    if seed < 0:
        raise UsageError(f"the seed must be a non-negative integer, got {seed}")
    if software is not None and len(software) != len(datasets):
        raise UsageError(f"software predictions for {len(software)} data sets, but {len(datasets)} data sets")
    if schedule is not None:
        _check_own_schedule(program, schedule, board)
    if reference is not None:
        reference.check(program, datasets)
    labels = model_labels(program.graph, output)
    for data in datasets:
        check_labels(data, labels)
    start = time.perf_counter()
    sim_chip = chip or program.chip
    _check_chip(program, sim_chip)
    if program.as_programmed and sim_chip.fingerprint() != _programmed_on(program):
        raise UsageError("the Program was programmed on a chip (leac program) whose devices hold what they were "
                         f"left with: simulate it on that chip (fingerprint {_programmed_on(program)[:12]}; "
                         f"{'--chip gave' if chip is not None else 'without --chip it runs on'} "
                         f"{sim_chip.fingerprint()[:12]}), or program this chip")
    if program.as_programmed and ideal:
        raise UsageError("--ideal simulates the Program as compiled on ideal devices; an as-programmed Program "
                         "holds a programmed chip: simulate the Program leac compile wrote")
    if program.as_programmed and board is not None:
        raise UsageError("a board file programs the chip again, so it cannot run with an as-programmed Program; "
                         "give the Program it was emitted from, or simulate the as-programmed Program itself")
    # the Program was checked when it was loaded or compiled; the simulator never checked it again
    if board is not None:
        schedule = board
    elif schedule is None:
        schedule = schedule_of(program, check=False)
    if board is not None:
        check_program_match(program, board)
    if not ideal:  # before any programming: refuse regions too large for the IR-drop solve, log its cost
        shapes = schedule.derived("read shapes", lambda: tuple(
            shape for plan in schedule.layers.values()  # type: ignore[union-attr]
            for shape in zip(*(field.tolist() for field in plan.read_fields("rows", "cols")), strict=True)))
        check_regions(shapes, sim_chip.periphery.lines, "simulate")
    rng = np.random.default_rng(seed)
    write = None
    if schedule.origin is not None and "tolerance_uS" in schedule.origin:  # a board file: its write-verify settings
        write = (float(schedule.origin["tolerance_uS"]), int(schedule.origin["max_pulses"]))
    layers = {name: CrossbarLayer(plan, schedule, sim_chip, rng, ideal=ideal, exact_read_noise=exact_read_noise,
                                  write=write, after_s=after_s)
              for name, plan in schedule.layers.items()}
    if log.isEnabledFor(logging.INFO):  # (the devices are counted block by block)
        log.info("seed %d: programmed %d crossbar layers (%d devices)%s: %.3f s", seed, len(layers),
                 program.devices_used, ", ideal devices" if ideal else "", time.perf_counter() - start)
    simulated_writes = (not ideal and not program.as_programmed and sim_chip.device.programming.model == PULSE)
    if ideal:  # the stuck-device compensation is for the compiled chip's defects, which ideal devices lack
        for name, layer in layers.items():
            scale, bias = column_scale_and_bias(program.graph.node(name), program.layer(name), compensated=False)
            layer.executor.scale = np.asarray(scale, dtype=np.float64)
            layer.executor.bias = bias
    input_full_scale = {name: plan.scale.x_fs for name, plan in schedule.layers.items()}
    calibrated = all(value is not None for value in input_full_scale.values())
    calibration_source = (f"compile time ({program.extra.get('calibration')})" if calibrated
                          else "none: each input vector scaled by its own maximum, worst-case ADC ranges")
    counts = EventCounts()

    spans: dict[str, NoiseSpan] = {}

    def make_kernel(name: str, layer: CrossbarLayer) -> Kernel:
        return lambda node, inputs: [layer.forward(inputs[0], rng, counts, threads,  # type: ignore[arg-type]
                                                   noise=spans[name])]

    kernels = {name: make_kernel(name, layer) for name, layer in layers.items()}

    def block_seeds() -> dict[str, int]:  # each layer's read-noise seed for a noise block, in graph order
        return {name: int(rng.integers(1 << 62)) if name in layers and layers[name].executor.noisy else 0
                for name in mvm_values}

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
    if reference is None:
        reference = DigitalReference(program, datasets, budget=0)
    for index, data in enumerate(datasets):
        began = time.perf_counter()
        predictions = []
        for chunk, chunk_spans in noise_chunks(len(data.x), batch_size, per_chunk, block_seeds):
            spans.update(chunk_spans)
            batch = {feed: data.x[chunk]}
            sim_out = interpreter.run(program.graph, batch, kernels=kernels, keep=list(mvm_values.values()),
                                      listeners=[listener])
            ref_out = reference.outputs(index, chunk)
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
        log.info("seed %d: %s: %d samples simulated, accuracy %.1f%%: %.3f s", seed, data.name, len(data.x),
                 100 * reports[-1].accuracy, time.perf_counter() - began)
    if samples_total:
        for field_name in ("reads", "adc_conversions", "dac_conversions", "device_reads", "digital_ops",
                           "analog_ns"):
            setattr(counts, field_name, getattr(counts, field_name) / samples_total)
        counts.device_read_pJ = {name: value / samples_total for name, value in counts.device_read_pJ.items()}
    layer_error = {name: math.sqrt(squared[name] / reference_sq[name]) if reference_sq[name] > 0 else 0.0
                   for name in mvm_values}
    cost = estimate_cost(program, sim_chip, schedule,
                         device_read_pJ={name: counts.device_read_pJ.get(name, 0.0) for name in layers}
                         if samples_total else None, layer_costs={name: layer.cost for name, layer in layers.items()})
    program_failed = None
    done = program.extra.get("programming") if program.as_programmed else None
    if isinstance(done, dict) and isinstance(done.get("cost"), dict):  # what programming the chip cost
        spent = done["cost"]
        cost = dataclasses.replace(cost, program_pulses=int(spent["pulses"]), program_time_s=float(spent["time_s"]),
                                   program_energy_uJ=float(spent["energy_uJ"]))
        program_failed = int(spent["failed"])
    if simulated_writes:  # the programming cost as simulated, not the nominal count
        pulses = sum(layer.programmed.pulses for layer in layers.values())
        reads = sum(layer.programmed.verify_reads for layer in layers.values())
        time_s, energy_uJ = programming_cost(pulses, reads * sim_chip.device.programming.readback_reads,
                                             sim_chip.periphery)
        cost = dataclasses.replace(cost, program_pulses=pulses, program_time_s=time_s, program_energy_uJ=energy_uJ)
        program_failed = sum(layer.programmed.failed for layer in layers.values())
    return Report(
        data=tuple(reports),
        layer_error=layer_error,
        cost=cost,
        program_failed=program_failed,
        after_s=after_s if after_s > 0 else None,
        counted=counts,
        devices_used=program.devices_used,
        devices_total=sim_chip.device_count,
        arrays_used=len(program.arrays_used),
        arrays_total=len(sim_chip.arrays),
        chip=sim_chip.display_name,
        compiled_for_chip=sim_chip.fingerprint() == program.chip_fingerprint,
        ideal=ideal,
        seed=seed,
        input_full_scale=input_full_scale,
        calibration=calibration_source,
        seconds=time.perf_counter() - start,
    )


def noise_chunks(samples: int, batch_size: int, per_chunk: int, seeds: Callable[[], dict[str, int]]
                 ) -> Iterator[tuple[slice, dict[str, NoiseSpan]]]:
    """The samples in noise blocks of `batch_size` (each layer's read-noise seed drawn by `seeds` once per block,
    in order) and each block in memory chunks of at most `per_chunk` (`lea_compiler.chunks`): every chunk's
    slice and each layer's `NoiseSpan` for it, so a chunk gets the noise its block gets run whole."""
    for lo in range(0, samples, batch_size):
        block = min(batch_size, samples - lo)
        bases = seeds()
        for first in range(lo, lo + block, per_chunk):
            yield (slice(first, min(first + per_chunk, lo + block)),
                   {name: NoiseSpan(base, block, first - lo) for name, base in bases.items()})


def run_on_chip(program: Program, x: np.ndarray, layers: Collection[str], *, seed: int = 0,
                batch_size: int = 2048) -> dict[str, np.ndarray]:
    """The graph's outputs for the inputs `x` with only the crossbar layers `layers` on the Program's chip (their
    devices programmed and read as `simulate` does) and every other layer exact: what those layers' copies, as
    placed, do to the outputs (`-k auto` measures its layers this way).

    Each layer draws its noise from its own generator, seeded by `seed` and the layer's place in the graph, so
    two Programs that differ in one layer's copies give the other layers the same noise (the difference the
    copies make shows without the noise of the rest).

    Raises:
        UsageError: a name in `layers` is not a crossbar layer of the Program, an as-programmed Program (its
            devices were programmed already), or `batch_size` below 1.
    """
    if program.as_programmed:
        raise UsageError("run_on_chip programs the Program's devices; an as-programmed Program was programmed "
                         "already: give the Program leac compile wrote")
    if batch_size < 1:
        raise UsageError(f"batch_size must be at least 1, got {batch_size}")
    schedule = schedule_of(program, check=False)
    unknown = sorted(set(layers) - set(schedule.layers))
    if unknown:
        raise UsageError(f"no crossbar layer {unknown[0]!r} in the Program; its layers are "
                         f"{', '.join(schedule.layers)}")
    generators = {name: np.random.default_rng([seed, index]) for index, name in enumerate(schedule.layers)
                  if name in layers}
    on_chip = {name: CrossbarLayer(schedule.layers[name], schedule, program.chip, rng, ideal=False,
                                   exact_read_noise=False) for name, rng in generators.items()}
    counts = EventCounts()
    spans: dict[str, NoiseSpan] = {}

    def make_kernel(name: str, layer: CrossbarLayer) -> Kernel:
        return lambda node, inputs: [layer.forward(inputs[0], generators[name], counts,  # type: ignore[arg-type]
                                                   noise=spans[name])]

    kernels = {name: make_kernel(name, layer) for name, layer in on_chip.items()}
    feed = program.graph.inputs[0].name
    per_chunk = samples_per_chunk(program.graph, batch_size)
    parts: dict[str, list[np.ndarray]] = defaultdict(list)

    def block_seeds() -> dict[str, int]:
        return {name: int(rng.integers(1 << 62)) for name, rng in generators.items()}

    for chunk, chunk_spans in noise_chunks(len(x), batch_size, per_chunk, block_seeds):
        spans.update(chunk_spans)
        out = interpreter.run(program.graph, {feed: x[chunk]}, kernels=kernels)
        for value in program.graph.outputs:
            parts[value.name].append(out[value.name])
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _after_seconds(after: float | str, chip: Chip, ideal: bool) -> float:
    """`simulate`'s `after` in seconds (`parse_duration`), checked against the simulated chip and `ideal`.

    Raises:
        UsageError: not a duration, or a time after programming for a chip without a drift model or with `ideal`.
    """
    try:
        after_s = parse_duration(after)
    except ValueError as exc:
        raise UsageError(f"after (time since programming): {exc}") from None
    if after_s > 0 and chip.device.drift is None:
        raise UsageError(f"after (time since programming) is {after_s:g} s, but the simulated chip has no drift "
                         "model (device.drift in its chip file, docs/chip-format.md)")
    if after_s > 0 and ideal:
        raise UsageError("after (time since programming) simulates drift, which ideal devices do not have; "
                         "leave out one of the two")
    return after_s


def simulate_trials(program: Program, datasets: Sequence[Dataset], *, trials: int, seed: int = 0,
                    **options: Any) -> Report:
    """Simulate `trials` independent draws of the write and read noise (seeds seed, seed + 1, ...) and return
    the first draw's report with every draw's accuracy in `trials` (none for one draw): one seed says little
    about a noisy chip. Its `seconds` are the whole call's: every draw's, the lowering's and the baseline's.

    onnxruntime's baseline runs once, and so do lowering the Program (`schedule`) and the digital reference of
    the layer errors (`reference`, within its `REFERENCE_BYTES`). A board file's schedule (`board`) is checked
    against the Program first, before the baseline runs. `options` are `simulate`'s keywords.

    Raises:
        UsageError: `trials` below 1, and what `simulate` raises.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise UsageError(f"trials must be an integer >= 1, got {trials!r}")
    start = time.perf_counter()
    # a usage error before onnxruntime's baseline runs (`simulate` checks it again, for its own callers)
    _after_seconds(options.get("after", 0.0), options.get("chip") or program.chip, options.get("ideal", False))
    if options.get("board") is not None and not program.as_programmed:  # (`simulate` refuses that pair itself)
        check_program_match(program, options["board"])  # a board file of another Program, before the baseline runs
    if options.get("software") is None and program.source_model is not None:
        options["software"] = software_predictions(program, datasets, options.get("output"))
    if options.get("board") is None and options.get("schedule") is None:  # one lowering serves every draw
        options["schedule"] = schedule_of(program, check=False)
    if options.get("reference") is None and trials > 1:
        options["reference"] = DigitalReference(program, datasets)
    reports = [simulate(program, datasets, seed=seed + i, **options) for i in range(trials)]
    seconds = time.perf_counter() - start
    if trials == 1:
        return dataclasses.replace(reports[0], seconds=seconds)
    return dataclasses.replace(reports[0], seconds=seconds, trials=Trials(tuple(seed + i for i in range(trials)),
                                                                          tuple(r.accuracy for r in reports)))


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
    # here, not at the top: onnx and onnxruntime take ~1.2 s to import, and only the baseline needs them
    from lea_compiler.reference import checked_session, run_session

    began = time.perf_counter()
    session = checked_session(program.source_model, "the Program's embedded model.onnx")
    feed = program.graph.inputs[0].name
    per_chunk = samples_per_chunk(program.graph, SOFTWARE_CHUNK_SAMPLES)
    predictions = [np.concatenate([top1(run_session(session, {feed: data.x[lo:lo + per_chunk]}), output)
                                   for lo in range(0, len(data.x), per_chunk)]) for data in datasets]
    log.info("software baseline (onnxruntime on the embedded model): %.3f s", time.perf_counter() - began)
    return predictions


def stored_calibration(program: Program) -> Calibration | None:
    """The DAC/ADC ranges fixed at compile time (`leac compile --calibrate`), if the Program has them."""
    if any(layer.input_full_scale is None or any(b.adc_full_scale_uA is None for b in layer.blocks)
           for layer in program.layers):
        return None
    return Calibration(
        {layer.name: float(layer.input_full_scale) for layer in program.layers},  # type: ignore[arg-type]
        {layer.name: [float(b.adc_full_scale_uA) for b in layer.blocks] for layer in program.layers},  # type: ignore[arg-type]
    )


def _check_own_schedule(program: Program, schedule: Schedule, board: Schedule | None) -> None:
    """Refuse a `schedule` that is not the Program's own: given with a board file's, a board file's itself (it
    has an origin), or lowered from another Program object (`Schedule.lowered_from`: the same file loaded twice
    is two Programs), or with other crossbar layers than the Program's."""
    if board is not None:
        raise UsageError("give the Program's own schedule or a board file's, not both")
    if schedule.origin is not None:
        raise UsageError("this schedule is a board file's: give it as board, whose file is checked against the "
                         "Program")
    source = schedule.lowered_from
    if source is not None and source is not program:
        raise UsageError("this schedule was lowered from another Program (give schedule_of(program) of the "
                         "Program simulated)")
    crossbar = [node.name for node in program.graph.nodes if is_crossbar(node)]
    if list(schedule.layers) != crossbar:
        raise UsageError(f"the schedule's crossbar layers {list(schedule.layers)} are not the Program's {crossbar}: "
                         "it was lowered from another Program")


def _programmed_on(program: Program) -> str:
    """The fingerprint of the chip an as-programmed Program was programmed on (`leac program --chip`)."""
    settings = program.extra.get("programming")
    chip = settings.get("chip") if isinstance(settings, dict) else None
    fingerprint = chip.get("fingerprint") if isinstance(chip, dict) else None
    return fingerprint if isinstance(fingerprint, str) else program.chip_fingerprint


def _check_chip(program: Program, chip: Chip) -> None:
    """Refuse a simulated chip without an array of the same size for every array the Program uses (the Program's
    own chip has them: nothing to look at)."""
    if chip is program.chip:
        return
    for array_id in program.arrays_used:
        compiled = program.chip.array(array_id)
        try:
            available = chip.array(array_id)
        except UsageError:
            available = None
        if available is None or (available.rows, available.cols) != (compiled.rows, compiled.cols):
            raise InvalidInputError(
                f"the simulated chip has no array {array_id} of {compiled.rows} x {compiled.cols}, "
                "which the Program uses"
            )
