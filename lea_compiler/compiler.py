"""The compiler driver: model + chip + options -> Program, through the default pipeline."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lea_compiler.calibration import calibrate
from lea_compiler.chip import Chip, load_chip
from lea_compiler.datasets import load_data
from lea_compiler.ir import Graph
from lea_compiler.onnx_frontend import load_model
from lea_compiler.pipeline import CompileOptions, PassTiming, default_pipeline, run_pipeline
from lea_compiler.program import Program, lower_to_program, with_calibration


@dataclass(frozen=True)
class CompileResult:
    """A compiled Program with how long each pass took."""

    program: Program
    timings: list[PassTiming]
    seconds: float


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
        InvalidModelError / InvalidChipError: bad input files.
        CompileError: a pass cannot map the model (the message names the pass and node).
        DoesNotFitError: the chip has too few usable devices for the copies asked for.
        BadDataError: the calibration data does not fit the model.

    With `calibrate_on` (an .npz with `x` and `y`), the DAC and ADC ranges are
    set from that data now and stored in the Program, so the board stream and
    the simulator use the same ranges.
    """
    start = time.perf_counter()
    options = options or CompileOptions()
    info: dict[str, Any] = {}
    source: bytes | None = None
    if isinstance(model, Graph):
        graph = model
        info["file"] = None
        info["sha256"] = None
    else:
        graph = load_model(model)
        source = Path(model).read_bytes()
        info["file"] = Path(model).name
        info["sha256"] = hashlib.sha256(source).hexdigest()
    info["name"] = graph.name
    info["inputs"] = [{"name": v.name, "type": v.type_str()} for v in graph.inputs]
    info["outputs"] = [{"name": v.name, "type": v.type_str()} for v in graph.outputs]
    if not isinstance(chip, Chip):
        chip = load_chip(chip)
    calibration = load_data(calibrate_on, graph) if calibrate_on is not None else None
    timings = run_pipeline(
        graph, default_pipeline(chip, options, calibration.x if calibration is not None else None),
        verify=verify, dump_dir=dump_dir, on_pass=on_pass,
    )
    program = lower_to_program(graph, chip, model=info, options=dataclasses.asdict(options), source_model=source)
    if calibrate_on is not None:
        assert calibration is not None
        ranges = calibrate(program, [calibration], chip)
        digest = hashlib.sha256(Path(calibrate_on).read_bytes()).hexdigest()
        label = f"{Path(calibrate_on).name}, {len(calibration.x)} samples, sha256 {digest[:16]}"
        program = with_calibration(program, ranges.input_full_scale, ranges.adc_full_scale_uA, label)
    return CompileResult(program, timings, time.perf_counter() - start)
