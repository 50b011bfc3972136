"""A board file's header periphery: the chip file's ranges apply, and `leac simulate` says when the header
assumed another periphery than the simulating chip's (docs/board-format.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lea_compiler.backends.board import emit_board, periphery_differences, read_board, validate_board
from lea_compiler.chip import Periphery
from lea_compiler.cli import main
from lea_compiler.errors import InvalidInputError
from tests.backends.test_timing import _program_on


def _tampered(tmp_path, **periphery):
    program = _program_on(tmp_path)
    program.save(tmp_path / "p.leac")
    emit_board(program, tmp_path / "b.jsonl")
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    header["periphery"].update(periphery)
    (tmp_path / "t.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    np.savez(tmp_path / "d.npz", x=np.array([[1, -1]], np.float32), y=np.array([0]))
    return tmp_path / "t.jsonl"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("digital_lanes", 10**300, "is more than leac supports (4096)"),
    ("digital_lanes", 5000, "is more than leac supports (4096)"),
    ("e_digital_op_pJ", 1e308, "outside the range leac accepts (1e-09 to 1e+09 pJ)"),
    ("t_dac_ns", 1e-30, "outside the range leac accepts"),
])
def test_a_header_periphery_outside_the_chip_files_range_is_refused(tmp_path, capsys, key, value, message) -> None:
    board = _tampered(tmp_path, **{key: value})
    problems = validate_board(board)
    assert any(p.startswith("line 1: header.periphery") and key in p and message in p for p in problems), problems
    with pytest.raises(InvalidInputError, match=key):
        read_board(board)
    png = tmp_path / "t.png"
    assert main(["simulate", str(board), "--program", str(tmp_path / "p.leac"), "--data", str(tmp_path / "d.npz"),
                 "--timeline", str(png)]) != 0
    assert key in capsys.readouterr().err and not png.exists()


def test_simulate_warns_when_the_header_assumed_another_periphery(tmp_path, caplog) -> None:
    board = _tampered(tmp_path, digital_lanes=4, t_dac_ns=7.0)
    stream = read_board(board)
    assert periphery_differences(stream, Periphery(v_read_V=0.25, dac_bits=16, adc_bits=16)) == [
        "t_dac_ns 7.0 in the file, 85.0 on the chip", "digital_lanes 4 in the file, 1 on the chip"]
    assert main(["simulate", str(board), "--program", str(tmp_path / "p.leac"), "--data",
                 str(tmp_path / "d.npz")]) == 0
    assert "assumed another periphery" in caplog.text and "digital_lanes 4 in the file, 1 on the chip" in caplog.text
    caplog.clear()
    assert main(["simulate", str(tmp_path / "b.jsonl"), "--program", str(tmp_path / "p.leac"), "--data",
                 str(tmp_path / "d.npz")]) == 0
    assert "assumed another periphery" not in caplog.text
