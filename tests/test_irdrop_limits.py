"""IR drop at its limits (review 2, findings 2 and 3): the solve's memory, the largest region it takes (refused up
front with what to do) and the smallest non-zero segment resistance."""

from __future__ import annotations

import dataclasses
import json
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest

from lea_compiler.chip import LineModel, chip_to_json, parse_chip, synth_chip
from lea_compiler.chip_limits import MIN_LINE_SEGMENT_OHM
from lea_compiler.cli import main
from lea_compiler.errors import InvalidChipError, UsageError
from lea_compiler.irdrop import MAX_REGION_SIDE, check_regions, region_map, solve_work
from tests.helpers import mlp_model


def test_the_solve_holds_one_row_of_the_word_lines_at_a_time():
    """A 96 x 96 region: the old solve held (rows, cols, cols) float64 arrays (7 MB each, several at once); one
    row's word line and the elimination's blocks are O(cols (cols + rows)), well under 2 MB."""
    g = np.random.default_rng(0).uniform(100.0, 200.0, size=(96, 96))
    lines = LineModel(1.0, 1.0)
    tracemalloc.start()
    try:
        region_map(g, lines, row=0, col=0, array_rows=96)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_a_region_above_the_limit_is_refused_before_any_work():
    side = MAX_REGION_SIDE + 1
    assert solve_work(side, side) > solve_work(MAX_REGION_SIDE, MAX_REGION_SIDE)
    with pytest.raises(UsageError, match=r"--block 256x256"):
        region_map(np.zeros((side, side)), LineModel(1.0, 1.0), row=0, col=0, array_rows=side)
    with pytest.raises(UsageError, match=rf"a {side} x {side} region would take about"):
        check_regions([(8, 8), (side, side)], LineModel(1.0, 1.0), "simulate")
    # Ideal lines: no solve, so no limit; the estimate of a small region is its measured order (0.25 s at 128).
    assert check_regions([(side, side)], LineModel(), "simulate") == 0.0
    assert 0.05 < check_regions([(128, 128)], LineModel(1.0, 1.0), "simulate") < 1.0


def test_simulate_on_a_chip_whose_regions_exceed_the_limit_says_to_use_smaller_blocks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """The limit is lowered to 8 so that the 16 x 12 blocks of a small MLP exceed it: `leac simulate` stops with
    a usage error (exit 2) naming --block before it programs anything, and prints no report."""
    chip = synth_chip(arrays=4, rows=32, cols=32, seed=1)
    chip = dataclasses.replace(chip, periphery=dataclasses.replace(chip.periphery, lines=LineModel(1.0, 1.0)))
    chip_file = tmp_path / "chip.json"
    chip_file.write_text(json.dumps(chip_to_json(chip)))
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp_model((16, 12, 4), seed=3), model)
    program = tmp_path / "mlp.leac"
    assert main(["compile", str(model), "--chip", str(chip_file), "-k", "2", "-o", str(program)]) == 0
    data = tmp_path / "data.npz"
    np.savez(data, x=np.random.default_rng(7).uniform(0, 1, size=(20, 16)).astype(np.float32),
             y=np.zeros(20, dtype=np.int64))
    capsys.readouterr()
    monkeypatch.setattr("lea_compiler.irdrop.MAX_REGION_SIDE", 8)
    assert main(["simulate", str(program), "--data", str(data), "--json"]) == 2
    err = capsys.readouterr().err
    assert "simulate: the chip's lines have resistance" in err and "compile with smaller blocks" in err
    assert "--block 256x256" in err and capsys.readouterr().out == ""


@pytest.mark.parametrize("key", ["word_line_segment_ohm", "bit_line_segment_ohm"])
@pytest.mark.parametrize("ohm", [1e-12, 1e-300, 0.5e-3])
def test_a_segment_below_the_minimum_is_refused(key: str, ohm: float):
    with pytest.raises(InvalidChipError) as info:
        parse_chip({"format": "leac-chip", "version": 1, "arrays": {"count": 1, "rows": 4, "cols": 4},
                    "periphery": {"lines": {key: ohm, "sense_ohm": 1000}}}, "c.json")
    assert info.value.problems == [f"periphery.lines.{key}: {ohm:g} ohm is neither 0 nor at least 0.001 ohm (a "
                                   "smaller segment is a short for any read, and the IR-drop solve loses accuracy "
                                   "on it: give 0)"]
    with pytest.raises(InvalidChipError):
        LineModel(**{key: ohm})


@pytest.mark.parametrize(("word", "bit", "driver", "sense"), [
    (1000.0, MIN_LINE_SEGMENT_OHM, 1e6, 1e6), (1.0, MIN_LINE_SEGMENT_OHM, 1e6, 1e6),
    (MIN_LINE_SEGMENT_OHM, 1000.0, 1e6, 1e6), (MIN_LINE_SEGMENT_OHM, 1.0, 1e6, 1e3),
])
def test_the_smallest_segment_with_the_largest_leads_is_solved_accurately(
        word: float, bit: float, driver: float, sense: float):
    """At the minimum segment and the largest leads, M is within 1e-4 of M with that segment 0 (solved exactly
    as one node; the physical difference of 1 mohm over 40 segments is smaller than that) and has no negative
    entry. Below the minimum the old solve was 30% off at 1e-12 ohm and singular at 1e-15 ohm."""
    g = np.random.default_rng(2).uniform(100.0, 200.0, size=(40, 40))
    tiny = region_map(g, LineModel(word, bit, driver, sense), row=0, col=0, array_rows=40)
    zero = region_map(g, LineModel(0.0 if word == MIN_LINE_SEGMENT_OHM else word,
                                   0.0 if bit == MIN_LINE_SEGMENT_OHM else bit, driver, sense),
                      row=0, col=0, array_rows=40)
    assert np.all(tiny >= 0)
    np.testing.assert_allclose(tiny, zero, rtol=0, atol=1e-4 * np.abs(zero).max())
