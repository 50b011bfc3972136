"""The Python API: compile, simulate and emit from Python, errors as LeacError subclasses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import lea_compiler as leac
from tests.helpers import mlp_model


def test_compile_simulate_emit(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(mlp_model(), model)
    chip = leac.synth_chip(arrays=8, rows=25, cols=25, seed=1)
    program = leac.compile(model, chip, k=2, seed=3)
    assert isinstance(program, leac.Program) and program.devices_used == 2 * 2 * 138
    path = tmp_path / "m.leac"
    program.save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32), y=np.zeros(20, np.int64))
    report = leac.simulate(path, [data, data], seed=1)
    assert len(report.data) == 2 and 0 <= report.accuracy <= 1
    summary = leac.emit_board(program, tmp_path / "b.jsonl")
    assert summary.writes + summary.skips == program.devices_used


def test_errors_are_leac_errors(tmp_path) -> None:
    with pytest.raises(leac.InvalidModelError):
        leac.compile(tmp_path / "missing.onnx", leac.synth_chip(arrays=1, rows=4, cols=4, seed=0))
    model = tmp_path / "m.onnx"
    onnx.save(mlp_model(), model)
    with pytest.raises(leac.DoesNotFitError):
        leac.compile(model, leac.synth_chip(arrays=1, rows=25, cols=25, seed=0), k=6)
    assert issubclass(leac.InvalidChipError, leac.InvalidInputError) and issubclass(leac.CompileError, leac.LeacError)
    with pytest.raises(AttributeError):
        leac.no_such_name  # noqa: B018
