"""Same inputs and seed, same bytes: `leac compile` in two processes, `leac emit` and `leac simulate --json`.

tests/test_compile.py checks that two in-process compiles agree, and
tests/backends/test_board.py that one Program emits the same bytes twice.
Here the whole command line runs, the compiles as separate processes with
different hash seeds (so nothing may depend on set or dict order of strings),
through Lagrangian pricing, CP-SAT, calibration and the compensate pass.
Only the wall-clock keys of the reports may differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from tests.helpers import mlp_model

ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"compile_seconds", "pass_seconds", "seconds"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[dict], Path]:
    """Two Programs of one model, chip, data and seed, each from its own `leac compile` process."""
    folder = tmp_path_factory.mktemp("determinism")
    model, chip, data = folder / "mlp.onnx", folder / "chip.json", folder / "data.npz"
    onnx.save(mlp_model((8, 16, 4)), model)
    save_chip(synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.2, stuck_low=0.1, seed=1), chip)
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal((64, 8)).astype(np.float32), y=rng.integers(0, 4, 64))
    programs, reports = [], []
    for hash_seed in ("1", "2"):
        out = folder / f"p{hash_seed}.leac"
        done = subprocess.run(
            [sys.executable, "-m", "lea_compiler", "compile", str(model), "--chip", str(chip), "-k", "2",
             "--block", "4x4", "--time-limit", "1", "--seed", "3", "--calibrate", str(data), "-o", str(out),
             "--json"],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert done.returncode == 0, done.stderr
        programs.append(out)
        reports.append(json.loads(done.stdout))
    return programs, reports, data


def _without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in TIMING_KEYS and k not in ("program", "output")}


def test_two_compiles_give_byte_identical_programs(compiled) -> None:
    (first, second), (report1, report2), _ = compiled
    assert first.read_bytes() == second.read_bytes()
    assert report1["solver_method"].startswith("cpsat")  # the solver ran, not only a heuristic
    assert report1["calibration"] is not None
    assert _without_timing(report1) == _without_timing(report2)


def test_their_board_files_are_byte_identical(compiled, tmp_path, capsys) -> None:
    (first, second), _, _ = compiled
    boards = [tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"]
    reports = []
    for program, board in zip((first, second, first), boards, strict=True):
        assert main(["emit", str(program), "--target", "board", "-o", str(board), "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert boards[0].read_bytes() == boards[1].read_bytes() == boards[2].read_bytes()
    assert len({json.dumps(_without_timing(r), sort_keys=True) for r in reports}) == 1


def test_simulate_json_is_identical_but_for_the_time(compiled, capsys) -> None:
    (first, second), _, data = compiled
    outputs = []
    for program in (first, first, second):
        assert main(["simulate", str(program), "--data", str(data), "--json", "--seed", "5"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert all(isinstance(o["seconds"], float) for o in outputs)
    stripped = [json.dumps(_without_timing(o), sort_keys=True) for o in outputs]
    assert stripped[0] == stripped[1] == stripped[2]
