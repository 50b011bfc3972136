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
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidChipError, UsageError
from lea_compiler.irdrop import MAX_REGION_SIDE, check_regions, region_map, solve_work
from lea_compiler.onnx_frontend import import_model
from lea_compiler.options import CompileOptions
from lea_compiler.placement.costs import ir_drop_costs
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


# --------------------------------------------------------------------------
# Placement with lines (review 2, findings 1 and 7)


def test_a_view_of_a_chip_with_lines_keeps_the_rows_next_to_the_sense_amplifiers(monkeypatch: pytest.MonkeyPatch):
    """Through a view (forced here: budget 0, arrays cut to 32 x 32), a chip with resistive lines keeps every row
    of its arrays, so the placer sees the rows next to the sense amplifiers and costs them with the true array
    height; the copies of the compiled MLP land in the bottom half of their 64-row arrays (before: the view was
    the top 32 rows, the farthest from the sense amplifiers, costed as if the array ended there)."""
    import lea_compiler.placement.view as view_module

    monkeypatch.setattr(view_module, "VIEW_BYTES", 0)
    monkeypatch.setattr(view_module, "VIEW_MIN_SIDE", 8)
    base = synth_chip(arrays=4, rows=64, cols=64, stuck_high=0.0, stuck_low=0.0, seed=1)
    chip = dataclasses.replace(base, periphery=dataclasses.replace(base.periphery, lines=LineModel(1.0, 1.0)))
    view = view_module.placement_view(chip, [(16, 12)], [(16, 12)] * 4)
    assert not view.whole and all(a.rows == 64 and a.cols == 24 for a in view.chip.arrays)
    assert all(a.rows == 32 for a in view_module.placement_view(base, [(16, 12)], [(16, 12)] * 4).chip.arrays)
    program = compile_model(import_model(mlp_model((16, 12, 4), seed=3)), chip,
                            CompileOptions(k=2, time_limit_s=5.0, seed=0)).program
    assert "view" in program.placement["method"]
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for half in (copy.pos, copy.neg):
                    assert half.region.row + block.shape[0] > 32, (layer.name, half.region)


def test_the_placement_term_is_exact_for_one_device_and_never_above_the_regions_conductance():
    """A 1 x 1 region is one device behind the series resistance of its two leads, whose loss is S x / (1 + x)
    with x = S R: the saturated term equals the exact loss (`region_map`) at any resistance. On a long array with
    resistive lines the first order alone was up to 48 times the region's conductance; the term stays below it
    and still grows with the distance from the sense amplifiers."""
    lines = LineModel(2.5, 40.0, 100.0, 50.0)
    g = np.array([[[180.0]]])
    costs = ir_drop_costs(g, lines, 4096, 8)
    for y, x in [(0, 0), (4095, 7), (2000, 3)]:
        exact = 180.0 - region_map(g[0], lines, row=y, col=x, array_rows=4096)[0, 0]
        assert costs[0, y, x] == pytest.approx(exact, rel=1e-12)
    targets = np.random.default_rng(4).uniform(100.0, 250.0, size=(2, 16, 12))
    costs = ir_drop_costs(targets, LineModel(1.0, 1.0), 4096, 64)
    assert np.all(costs < targets.sum(axis=(1, 2))[:, None, None])
    assert costs[:, 0, 0].min() > 0.9 * targets.sum(axis=(1, 2)).min()  # far from the sense amplifiers: most lost
    assert np.all(np.diff(costs, axis=1) < 0) and np.all(np.diff(costs, axis=2) > 0)


class _SlowClock:
    """A clock on which every reading is 100 s after the last (the Lagrangian's wall clock, faked)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 100.0
        return self.now


@pytest.mark.parametrize("slow", [False, True])
def test_the_lagrangian_stops_at_its_wall_clock_limit(monkeypatch: pytest.MonkeyPatch, caplog, slow: bool):
    """With lines every offset costs something, so the greedy placement rarely meets the bound and the
    Lagrangian runs its iterations, whose count is set by a work budget that assumed cheap iterations (review 2:
    20 iterations, 139 s under --time-limit 3). On a clock where each reading is 100 s later, the Lagrangian
    given 0.5 s (a wall-clock safety limit of 3 x 0.5 + 5 = 6.5 s) stops after its first iteration, with a
    warning, and the placement is still valid; on the real clock it runs more than one."""
    import lea_compiler.placement.bounds as bounds
    import lea_compiler.placement.solve as solve
    from tests.test_placement import check_valid, make_chip, make_problem

    rng = np.random.default_rng(11)
    plain = make_chip(rng, [(12, 12), (12, 12)], 0.1)
    chip = dataclasses.replace(plain, periphery=dataclasses.replace(plain.periphery, lines=LineModel(2.5, 2.5)))
    problem = make_problem(rng, chip, [(3, 4), (4, 3)], [3, 3])
    seen = []
    real = solve._lagrangian

    def spy(*args, **kwargs):
        dual = real(*args, **kwargs)
        seen.append((args[-1], dual.iterations))
        return dual

    monkeypatch.setattr(solve, "_lagrangian", spy)
    if slow:
        monkeypatch.setattr(bounds, "time", _SlowClock())
    with caplog.at_level("WARNING", logger="lea_compiler.placement"):
        result = solve.solve_placement(problem, time_limit_s=0.5, seed=0)
    check_valid(problem, result)
    assert len(seen) == 1 and seen[0][0] == 0.5  # the Lagrangian ran, given the time limit
    if slow:
        assert seen[0][1] == 1
        assert "placement Lagrangian stopped at its wall-clock safety limit (6.5 s) after 1 of" in caplog.text
    else:
        assert seen[0][1] > 1 and "wall-clock" not in caplog.text
