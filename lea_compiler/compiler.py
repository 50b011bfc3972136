"""The compiler driver: model + chip + options -> Program, through the default pipeline.

`compile_model` is two halves: `prepare` imports the model and runs the passes
that do not depend on the chip (canonicalize; quantize too once the device
levels are known) into a `FrontEnd`, and `compile_prepared` runs the rest for
one chip. A compile for many chips (`lea_compiler.batch`) prepares once and
finishes once per chip, with the same result as `compile_model` byte for byte.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lea_compiler.allocate import MAX_AUTO_K, Allocation, allocate, measure
from lea_compiler.analog_time import program_analog_time
from lea_compiler.analysis import canonical_devices, check_devices, mvm_layer
from lea_compiler.calibration import calibrate
from lea_compiler.chip import Chip, DeviceModel, load_chip
from lea_compiler.datasets import Dataset, load_data
from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.ir import Graph
from lea_compiler.layer_sizes import AUTO, canonical, canonical_name_problem, ensemble_counts, parse_budget
from lea_compiler.onnx_frontend import import_model, read_model
from lea_compiler.options import recorded_options
from lea_compiler.passes.canonicalize import require_mvm
from lea_compiler.passes.lower import lower_to_program
from lea_compiler.passes.quantize import Quantize
from lea_compiler.pipeline import CompileOptions, Pass, PassTiming, default_pipeline, front_passes, run_pipeline
from lea_compiler.program import Program, with_calibration
from lea_compiler.program.checks import is_finite_number


@dataclass(frozen=True)
class CompileResult:
    """A compiled Program with how long each pass took.

    `seconds` is the time of the whole compile; for one compiled from a shared `FrontEnd`,
    the time of this chip's part only (loading the chip, the remaining passes, lowering).
    """

    program: Program
    timings: list[PassTiming]
    seconds: float


@dataclass(frozen=True, eq=False)
class FrontEnd:
    """A model imported and put through the chip-independent leading passes of the pipeline, once.

    `compile_prepared` finishes it for any chip whose `default_pipeline` starts with
    `passes`; the result is the Program `compile_model` makes from the model file and
    that chip, byte for byte. Built by `prepare`.

    Attributes:
        graph: The IR after `passes`.
        passes: The passes run so far (`front_passes(options, device)`).
        timings: Their times.
        options: The compile options.
        model: What the Program records about the model (file name, sha256, inputs, outputs).
        source: The ONNX file's bytes (None for a model given as a Graph).
        calibration: The `calibrate_on` data, or None.
        calibration_label: How the Program names that data.
        seconds: Time spent building this front end.
        devices_needed: Devices the crossbar layers need at the options' k (counted right after canonicalize,
            `lea_compiler.analysis.canonical_devices`); every chip is checked against it before its passes.
        devices_per_copy: Devices one copy of every crossbar layer needs (what a does-not-fit message divides by).
        allocation: With `-k auto`, the counts chosen and what the predictor expects of them.
    """

    graph: Graph
    passes: tuple[Pass, ...]
    timings: tuple[PassTiming, ...]
    options: CompileOptions
    model: dict[str, Any]
    source: bytes | None
    calibration: Dataset | None
    calibration_label: str | None
    seconds: float
    devices_needed: int = 0
    devices_per_copy: int = 0
    allocation: Allocation | None = None

    @property
    def levels_uS(self) -> tuple[float, ...] | None:
        """The device levels the graph is quantized for, or None before quantize."""
        quantize = [p for p in self.passes if isinstance(p, Quantize)]
        return quantize[0].levels_uS if quantize else None

    def serves(self, chip: Chip) -> bool:
        """True if compiling for `chip` starts with exactly the passes this front end ran."""
        return tuple(default_pipeline(chip, self.options)[:len(self.passes)]) == self.passes

    def quantized(self, device: DeviceModel, *, verify: bool = True) -> FrontEnd:
        """A copy of this (unquantized) front end with `quantize` run for chips with this device model.

        Raises:
            CompileError: quantize cannot map the model's weights (the message names the node).
        """
        if self.levels_uS is not None:
            raise ValueError("the front end is already quantized")
        return _advance(self, front_passes(self.options, device), copy=True, verify=verify)


def prepare(
    model: str | os.PathLike[str] | Graph,
    options: CompileOptions | None = None,
    *,
    device: DeviceModel | None = None,
    calibrate_on: str | os.PathLike[str] | None = None,
    verify: bool = True,
    dump_dir: str | os.PathLike[str] | None = None,
    on_pass: Callable[[str, float], None] | None = None,
) -> FrontEnd:
    """Import a model (a file, or a Graph, which is modified) and run the passes that do not need the chip.

    Those are `canonicalize` (and `replicate_network` with the network ensemble), and
    `quantize` too when `device` (the chips' device model) is given. With
    `calibrate_on`, the data is read now and checked against the model.

    Raises:
        InvalidModelError / BadDataError: a bad model (or one with no matrix product) or calibration file.
        CompileError: a pass cannot map the model, or the options are inconsistent.
    """
    return _prepare(_import(model), options or CompileOptions(), device=device, calibrate_on=calibrate_on,
                    verify=verify, dump_dir=dump_dir, on_pass=on_pass, chip=None)


@dataclass(frozen=True)
class _Imported:
    graph: Graph
    model: dict[str, Any]
    source: bytes | None
    seconds: float


def _import(model: str | os.PathLike[str] | Graph) -> _Imported:
    start = time.perf_counter()
    info: dict[str, Any] = {}
    source: bytes | None = None
    if isinstance(model, Graph):
        graph = model
        info["file"] = None
        info["sha256"] = None
    else:
        proto, source = read_model(model)
        graph = import_model(proto, source=str(model))
        info["file"] = Path(model).name
        info["sha256"] = hashlib.sha256(source).hexdigest()
    info["name"] = graph.name
    info["inputs"] = [{"name": v.name, "type": v.type_str()} for v in graph.inputs]
    info["outputs"] = [{"name": v.name, "type": v.type_str()} for v in graph.outputs]
    return _Imported(graph, info, source, time.perf_counter() - start)


def _prepare(
    imported: _Imported,
    options: CompileOptions,
    *,
    device: DeviceModel | None,
    calibrate_on: str | os.PathLike[str] | None,
    verify: bool,
    dump_dir: str | os.PathLike[str] | None,
    on_pass: Callable[[str, float], None] | None,
    chip: Chip | None,
) -> FrontEnd:
    """`prepare` of an imported model; with `chip`, the chip is checked to have the devices the model needs
    right after canonicalize, before the passes whose work grows with k (replicate_network, quantize)."""
    start = time.perf_counter()
    graph = imported.graph
    calibration = load_data(calibrate_on, graph) if calibrate_on is not None else None
    label = None
    if calibrate_on is not None:
        assert calibration is not None
        digest = hashlib.sha256(Path(calibrate_on).read_bytes()).hexdigest()
        label = f"{Path(calibrate_on).name}, {len(calibration.x)} samples, sha256 {digest[:16]}"
    passes = front_passes(options, device)
    empty = FrontEnd(graph, (), (), options, imported.model, imported.source, calibration, label,
                     imported.seconds + time.perf_counter() - start)
    front = _advance(empty, passes[:1], copy=False, verify=verify, dump_dir=dump_dir, on_pass=on_pass)
    if options.k == AUTO:  # choose every layer's k now, and compile with the counts chosen
        allocation = _allocate(front, device, chip, on_pass)
        options = dataclasses.replace(options, k=canonical(allocation.counts), budget=None)  # the counts chosen
        passes = front_passes(options, device)
        front = dataclasses.replace(front, options=options, allocation=allocation)
    if options.ensemble == "layer":  # the per-layer counts name layers: check them before any work
        ensemble_counts(options.k, options.beta, [node.name for node in front.graph.nodes_of("MVM")])
    needed = canonical_devices(front.graph, options.k, options.bias == "row")
    per_copy = canonical_devices(front.graph, 1, options.bias == "row")
    if chip is not None:
        check_devices(needed, chip, options.k, per_copy, per_layer=options.ensemble == "layer")
    front = dataclasses.replace(front, devices_needed=needed, devices_per_copy=per_copy)
    front = _advance(front, passes, copy=False, verify=verify, dump_dir=dump_dir, on_pass=on_pass)
    # quantize checks this too; without a device (a compile for many chips) refuse here, not once per chip
    require_mvm(front.graph, "compiling after " + ", ".join(p.name for p in front.passes))
    return front


def _allocate(front: FrontEnd, device: DeviceModel | None, chip: Chip | None,
              on_probe: Callable[[str, float], None] | None) -> Allocation:
    """`-k auto`: every layer's k under the device budget (`lea_compiler.allocate`), for the canonical graph of
    `front` (which this leaves as it is).

    Raises:
        UsageError: no chip or no calibration data to measure on, the network ensemble, or a --beta.
        DoesNotFitError: not even one copy of every layer fits the budget.
    """
    options, calibration, graph = front.options, front.calibration, front.graph
    if chip is None or device is None:
        raise UsageError("-k auto chooses the counts for one chip (its devices and noise): compile for one chip")
    if calibration is None:
        raise UsageError("-k auto needs --calibrate DATA.npz: it measures each layer's effect on the model's answers "
                         "on that data")
    if options.ensemble != "layer" or options.beta is not None:
        raise UsageError("-k auto chooses alpha = beta per layer for the layer ensemble: drop --beta and "
                         "--ensemble network")
    budget = parse_budget(options.budget, chip.device_count)
    if budget > chip.device_count:
        raise UsageError(f"--budget {budget} is more devices than the chip has ({chip.device_count})")
    bias_row = options.bias == "row"
    layers = {node.name: mvm_layer(node).devices(1, bias_row) for node in graph.nodes_of("MVM")}
    unnamed = [name for name in layers if canonical_name_problem(name)]
    if unnamed:
        raise UsageError(f"-k auto: layer {unnamed[0]!r} has a name a count spec cannot hold (no '=', ',' or "
                         "white space); give the counts with -k")
    minimum = sum(layers.values())
    if minimum > budget:
        raise DoesNotFitError(f"-k auto: the budget of {budget} devices holds not even one copy of every layer "
                              f"({minimum} devices)")
    most = {name: min(MAX_AUTO_K, (budget - minimum + cost) // cost) for name, cost in layers.items()}

    def probe(counts: Mapping[str, int]) -> Program:  # the model compiled with these counts (greedy placement)
        probe_options = dataclasses.replace(options, k=canonical(dict(counts)), budget=None, placer="greedy")
        needed = canonical_devices(graph, probe_options.k, bias_row)
        probe_front = dataclasses.replace(front, graph=_copy.deepcopy(graph), options=probe_options,
                                          devices_needed=needed, devices_per_copy=minimum)
        probe_front = _advance(probe_front, front_passes(probe_options, device), copy=False, verify=False)
        return compile_prepared(probe_front, chip, copy=False, verify=False).program

    prediction = measure(probe, graph, calibration.x, most, layers, budget, seed=options.seed, on_probe=on_probe)
    return allocate(prediction, layers, budget, time_limit_s=options.time_limit_s)


def _advance(
    front: FrontEnd,
    passes: Sequence[Pass],
    *,
    copy: bool,
    verify: bool = True,
    dump_dir: str | os.PathLike[str] | None = None,
    on_pass: Callable[[str, float], None] | None = None,
) -> FrontEnd:
    """`front` with the passes of `passes` after its own run on its graph (or on a copy of it)."""
    start = time.perf_counter()
    done = len(front.passes)
    if tuple(passes[:done]) != front.passes:
        raise ValueError("the front end was prepared for other options or device levels")
    graph = _copy.deepcopy(front.graph) if copy else front.graph
    timings = run_pipeline(graph, passes[done:], verify=verify, dump_dir=dump_dir, on_pass=on_pass,
                           done=[p.name for p in front.passes])
    return dataclasses.replace(front, graph=graph, passes=tuple(passes), timings=(*front.timings, *timings),
                               seconds=front.seconds + time.perf_counter() - start)


def compile_prepared(
    front: FrontEnd,
    chip: str | os.PathLike[str] | Chip,
    *,
    copy: bool = True,
    verify: bool = True,
    dump_dir: str | os.PathLike[str] | None = None,
    on_pass: Callable[[str, float], None] | None = None,
) -> CompileResult:
    """Finish compiling a prepared model for one chip (a file or a Chip).

    The front end's graph is copied first, so the same front end can serve many chips;
    with `copy=False` it is used up instead. `front.serves(chip)` must hold (when it does
    not, prepare an unquantized front end: it serves every chip).

    Raises:
        InvalidChipError: a bad chip file.
        CompileError / DoesNotFitError: a pass cannot map the model onto this chip.
    """
    start = time.perf_counter()
    if not isinstance(chip, Chip):
        chip = load_chip(chip)
    check_devices(front.devices_needed, chip, front.options.k, front.devices_per_copy,
                  per_layer=front.options.ensemble == "layer")
    calibration = front.calibration
    passes = default_pipeline(chip, front.options, calibration.x if calibration is not None else None)
    done = _advance(front, passes, copy=copy, verify=verify, dump_dir=dump_dir, on_pass=on_pass)
    program = lower_to_program(done.graph, chip, model=front.model, options=recorded_options(front.options),
                               source_model=front.source)
    if calibration is not None:
        assert front.calibration_label is not None
        ranges = calibrate(program, [calibration], chip)
        program = with_calibration(program, ranges.input_full_scale, ranges.adc_full_scale_uA,
                                   front.calibration_label)
    if front.allocation is not None:
        program = dataclasses.replace(program, extra={**program.extra, "allocation": front.allocation.to_json()})
    return CompileResult(program, list(done.timings), time.perf_counter() - start)


def compile_model(
    model: str | os.PathLike[str] | Graph,
    chip: str | os.PathLike[str] | Chip,
    options: CompileOptions | None = None,
    *,
    dump_dir: str | os.PathLike[str] | None = None,
    calibrate_on: str | os.PathLike[str] | None = None,
    verify: bool = True,
    on_pass: Callable[[str, float], None] | None = None,
) -> CompileResult:
    """Compile an ONNX model (a file or an imported Graph, which is modified) for one chip.

    Raises:
        InvalidModelError / InvalidChipError: bad input files (a model with no matrix product too).
        CompileError: a pass cannot map the model (the message names the pass and node).
        DoesNotFitError: the chip has too few usable devices for the copies asked for.
        BadDataError: the calibration data does not fit the model.

    With `calibrate_on` (an .npz with `x` and `y`), the DAC and ADC ranges are
    set from that data now and stored in the Program, so the board stream and
    the simulator use the same ranges.

    This is `prepare` followed by `compile_prepared`, the two halves a compile
    for many chips (`lea_compiler.batch`) runs apart.
    """
    start = time.perf_counter()
    imported = _import(model)
    if not isinstance(chip, Chip):
        chip = load_chip(chip)
    front = _prepare(imported, options or CompileOptions(), device=chip.device,
                     calibrate_on=calibrate_on, verify=verify, dump_dir=dump_dir, on_pass=on_pass, chip=chip)
    result = compile_prepared(front, chip, copy=False, verify=verify, dump_dir=dump_dir, on_pass=on_pass)
    return dataclasses.replace(result, seconds=time.perf_counter() - start)


def compile_summary(result: CompileResult, output: str | os.PathLike[str]) -> dict[str, Any]:
    """The `leac compile --json` report of a compile whose Program was written to `output` (keys in docs/reports.md)."""
    return {
        "report": "leac-compile",
        "version": 1,
        "program": os.fspath(output),
        **program_summary(result.program),
        "pass_seconds": {t.name: t.seconds for t in result.timings},
        "compile_seconds": result.seconds,
    }


def program_summary(program: Program) -> dict[str, Any]:
    """What a Program records of its compile: the `leac-compile` keys from `model` to `optimality_gap` (the
    layers, devices, placement cost and solver status), which `leac report` prints too. Keys a hand-edited
    Program lacks are None (the checks on loading do not require them)."""
    placement = program.placement
    ensemble = program.options.get("ensemble", "layer")
    return {
        "model": program.model.get("file") or program.model.get("name"),
        "chip": program.chip.display_name,
        "chip_fingerprint": program.chip_fingerprint,
        "k": program.options.get("k"),
        "ensemble": ensemble,
        "beta": None if ensemble == "network" else program.options.get("beta") or program.options.get("k"),
        "encoding": program.options.get("encoding"),
        "placer": placement.get("placer"),
        "calibration": program.extra.get("calibration"),
        **({"allocation": dict(program.extra["allocation"])} if "allocation" in program.extra else {}),
        "layers": [
            {
                "name": layer.name,
                "rows": layer.rows,
                "cols": layer.cols,
                "blocks": len(layer.blocks),
                "alpha": layer.alpha,
                "beta": layer.beta,
                "devices": layer.devices,
                "quantization_relative_rms_error": layer.quantization.get("relative_rms_error"),
                "mapping_error_uS": layer.mapping_error_uS,
                "effective_error_uS": layer.effective_error_uS,
                "compensated_columns": 0 if layer.column_gain is None else int(np.sum(
                    (layer.column_gain != 1) | (layer.column_offset != 0))),
            }
            for layer in program.layers
        ],
        "copies": placement.get("copies"),
        "devices_used": program.devices_used,
        "devices_total": program.chip.device_count,
        "arrays_used": len(program.arrays_used),
        "arrays_total": len(program.chip.arrays),
        "mapping_error_uS": program.mapping_error_uS,
        "effective_error_uS": sum(layer.effective_error_uS for layer in program.layers),
        "solver_status": placement.get("status"),
        "solver_method": placement.get("method"),
        "solver_bound_uS": placement.get("bound_uS"),
        "optimality_gap": placement.get("gap"),
        **_analog_time(program),
        "placement_wall_clock_limited": list(placement.get("wall_clock_limited") or []),
    }


def _analog_time(program: Program) -> dict[str, Any]:
    """The placement objective and the latency proxy of the Program's placement, its bound and gap
    (lea_compiler/analog_time.py): the bound is the better of the one recorded by the placer (latency-aware
    placement, CP-SAT) and the makespan bound every placement obeys."""
    objective = program.options.get("objective", "error")
    analog, bound = program_analog_time(program)
    recorded = program.placement.get("analog_bound_ns")
    if recorded is not None and is_finite_number(recorded):
        bound = max(bound, float(recorded))
    bound = min(bound, analog)
    return {"objective": objective, "analog_time_ns": analog, "analog_time_bound_ns": bound,
            "analog_time_gap": (analog - bound) / analog if analog > 0 else 0.0}
