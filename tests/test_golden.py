"""Golden tests (STYLE.md rule 10): what the compiler makes of a tiny model on a tiny chip, as text compared with
tests/golden/, so that any change to a pass or to the board stream shows up as a reviewable diff.

- tests/golden/ir_tiny/: the IR before the first pass and after each pass of `default_pipeline`
  (`lea_compiler.ir_dump.dump_graph`: every fact's fields, floats rounded to 6 significant digits);
- tests/golden/board_tiny.txt: the `leac emit` board stream of the compiled Program, one record per line, the
  header indented, floats rounded the same way and leac's version masked.

The weights and calibration inputs are short binary fractions and the chip's levels and stuck conductances
integers, so the float32 arithmetic of the interpreter and the placement costs are exact in any summation
order; what is left (float64 fits and scales) is printed rounded, so nothing printed depends on the last bits
of a BLAS or libm. After an intended change: `python -m pytest tests/test_golden.py --update-golden`,
then review `git diff tests/golden`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from lea_compiler.chip import Chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.ir_dump import SHOWN_FLOATS, dump_graph, format_array, format_float
from lea_compiler.onnx_frontend import import_model
from lea_compiler.options import CompileOptions
from lea_compiler.pipeline import default_pipeline, run_pipeline
from tests.helpers import make_model

W1 = np.array([[13, -5, 28], [-20, 9, 2], [4, 24, -11], [-30, -7, 18]], np.float32) / 32
B1 = np.array([4, -3, 10, -9], np.float32) / 32
W2 = np.array([[17, -14, 6, 26], [-23, 12, -19, 3]], np.float32) / 32
B2 = np.array([-5, 7], np.float32) / 32
"""Weights and biases in 32nds: with the calibration inputs in quarters, every float32 product and sum the
interpreter makes is exact, whatever order or fused multiply-adds a BLAS uses."""

CALIBRATION_X = (((np.arange(16 * 3) * 7) % 11 - 5) / 4).astype(np.float32).reshape(16, 3)
"""16 calibration inputs, multiples of 1/4 in [-1.25, 1.25]."""
CALIBRATION_Y = np.arange(16, dtype=np.int64) % 2

OPTIONS = CompileOptions(k=2)
PASSES = ["canonicalize", "quantize", "tile", "ensemble", "place", "encode", "select", "compensate"]


def tiny_model() -> onnx.ModelProto:
    """A 3-4-2 MLP (Gemm, Relu, Gemm) with the fixed weights above."""
    nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], name="fc2", transB=1)]
    return make_model(nodes, {"x": (np.float32, ["N", 3])}, ["y"], {"W1": W1, "B1": B1, "W2": W2, "B2": B2},
                      name="tiny")


def tiny_chip() -> Chip:
    """Seven 4 x 4 arrays with 8 stuck devices (the default device model: integer levels and stuck values), so
    that the 8 copy halves of the two layers must use some stuck devices."""
    return synth_chip(arrays=7, rows=4, cols=4, stuck_high=0.08, stuck_low=0.04, seed=1, name="tiny-chip")


def test_the_ir_after_each_pass(golden) -> None:
    graph = import_model(tiny_model(), source="tiny.onnx")
    texts = {"00-input.txt": dump_graph(graph)}
    done: list[str] = []
    for index, compiler_pass in enumerate(default_pipeline(tiny_chip(), OPTIONS, CALIBRATION_X), start=1):
        run_pipeline(graph, [compiler_pass], done=done)  # verifies the IR after the pass
        done.append(compiler_pass.name)
        texts[f"{index:02d}-{compiler_pass.name}.txt"] = dump_graph(graph)
    assert done == PASSES
    golden.check_folder("ir_tiny", texts)


def _rounded(value: Any) -> Any:
    """A JSON value with every float rounded as the IR dump rounds it, and long number lists summarised."""
    if isinstance(value, float):
        return float(format_float(value))
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if numbers and len(value) > SHOWN_FLOATS and any(isinstance(v, float) for v in value):
            return format_array(np.array(value, dtype=np.float64))
        return [_rounded(item) for item in value]
    return value


def board_text(path: Path) -> str:
    """A board file as golden text: the header one key per line (leac's version masked), then one record per
    line, floats rounded (`_rounded`)."""
    lines = path.read_text(encoding="ascii").splitlines()
    header = _rounded(json.loads(lines[0]))
    for key in ("leac_version", "program_leac_version"):
        header[key] = "<leac version>"
    keys = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in header.items()]
    records = [json.dumps(_rounded(json.loads(line))) for line in lines[1:]]
    return "\n".join(["{", ",\n".join(keys), "}", *records])


def test_the_board_stream(golden, tmp_path: Path) -> None:
    np.savez(tmp_path / "calibration.npz", x=CALIBRATION_X, y=CALIBRATION_Y)
    result = compile_model(import_model(tiny_model(), source="tiny.onnx"), tiny_chip(), OPTIONS,
                           calibrate_on=tmp_path / "calibration.npz")
    assert [t.name for t in result.timings] == PASSES
    result.program.save(tmp_path / "tiny.leac")
    board = tmp_path / "tiny.board.jsonl"
    assert main(["emit", str(tmp_path / "tiny.leac"), "--target", "board", "-o", str(board)]) == 0
    golden.check("board_tiny.txt", board_text(board))
