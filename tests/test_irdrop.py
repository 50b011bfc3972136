"""Tests of IR drop: the `periphery.lines` chip section, lea_compiler/irdrop.py, and its use by the simulator and
the compensate pass (issue 21: a 2 x 2 array by hand, zero line resistance is today's model, the solve against a
dense nodal solve, bad chip values refused)."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from lea_compiler.backends.sim import CrossbarLayer, simulate
from lea_compiler.chip import (
    Array,
    Chip,
    LineModel,
    Periphery,
    chip_to_json,
    chip_to_text,
    load_chip,
    parse_chip,
    save_chip,
    synth_chip,
)
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.datasets import Dataset
from lea_compiler.errors import InvalidChipError
from lea_compiler.irdrop import lead_ohm, nodal_currents, region_map
from lea_compiler.onnx_frontend import import_model
from lea_compiler.options import CompileOptions
from lea_compiler.placement import Item, Pattern, PlacementProblem, Region, cost_maps, item_cost, solve_placement
from lea_compiler.placement.costs import ir_drop_costs
from tests.helpers import mlp_model
from tests.test_placement import all_regions, brute_force, check_valid, make_chip, make_problem

# --------------------------------------------------------------------------
# The solve, by hand


def _map(g_uS: list[list[float]], lines: LineModel, row: int = 0, col: int = 0, array_rows: int | None = None):
    g = np.array(g_uS, dtype=np.float64)
    return region_map(g, lines, row=row, col=col, array_rows=g.shape[0] if array_rows is None else array_rows)


def test_word_line_resistance_alone_by_hand():
    """2 x 2 devices of 1000 uS, word-line segments of 1 kohm (1000 uS), ideal bit lines (w = 0). Row i's nodes:
    u0: 1000 (V - u0) = 1000 (u0 - u1) + 1000 u0 and u1: 1000 (u0 - u1) = 1000 u1, so u1 = u0 / 2 and
    V = 2.5 u0: u0 = 0.4 V, u1 = 0.2 V; the devices pass 1000 u0 and 1000 u1 to their columns."""
    m = _map([[1000.0, 1000.0], [1000.0, 1000.0]], LineModel(word_line_segment_ohm=1000.0))
    np.testing.assert_allclose(m, [[400.0, 200.0], [400.0, 200.0]], rtol=1e-12)


def test_bit_line_resistance_alone_by_hand():
    """The same devices, ideal word lines (u = V), bit-line segments of 1 kohm, sensed below row 1. Column j:
    w0: 1000 (V0 - w0) = 1000 (w0 - w1); w1: 1000 (V1 - w1) + 1000 (w0 - w1) = 1000 w1, so w1 = 2 w0 - V0 and
    V1 + w0 = 3 w1: w1 = (V0 + 2 V1) / 5, and I = 1000 w1 = 200 V0 + 400 V1 (the row far from the sense
    amplifier counts half)."""
    m = _map([[1000.0, 1000.0], [1000.0, 1000.0]], LineModel(bit_line_segment_ohm=1000.0))
    np.testing.assert_allclose(m, [[200.0, 200.0], [400.0, 400.0]], rtol=1e-12)


def test_both_lines_on_a_2x2_array_by_hand():
    """Every conductance 1000 uS (devices and 1 kohm segments); in units of 1000 uS, with row 1 at 0 V, the
    eight node equations are
        3 u00 = V0 + u01 + w00    2 u01 = u00 + w01     3 u10 = u11 + w10    2 u11 = u10 + w11
        2 w00 = u00 + w10         2 w01 = u01 + w11     3 w10 = u10 + w00    3 w11 = u11 + w01
    whose solution (eliminated by hand in fractions) has w10 = 7/44 V0 and w11 = 3/22 V0; with V1 driven
    instead, w10 = 5/22 V1 and w11 = 7/44 V1. The column currents are 1000 uS x w1j."""
    m = _map([[1000.0, 1000.0], [1000.0, 1000.0]], LineModel(1000.0, 1000.0))
    expected = 1000.0 * np.array([[Fraction(7, 44), Fraction(3, 22)], [Fraction(5, 22), Fraction(7, 44)]],
                                 dtype=np.float64)
    np.testing.assert_allclose(m, expected, rtol=1e-12)


def test_one_device_is_a_series_circuit():
    lines = LineModel(word_line_segment_ohm=2.0, bit_line_segment_ohm=3.0, driver_ohm=50.0, sense_ohm=70.0)
    # A device at (row 2, col 4) of a 5-row array: 5 word-line and 3 bit-line segments in series.
    m = _map([[500.0]], lines, row=2, col=4, array_rows=5)
    total_ohm = 50.0 + 5 * 2.0 + 1e6 / 500.0 + 3 * 3.0 + 70.0
    np.testing.assert_allclose(m, [[1e6 / total_ohm]], rtol=1e-12)
    assert lead_ohm(lines, row=2, col=4, rows=1, array_rows=5) == (60.0, 79.0)


# --------------------------------------------------------------------------
# Against the dense nodal solve; limits


def test_the_solve_matches_a_dense_nodal_solve_on_random_small_arrays():
    """Tolerance 1e-9 of the largest current: the elimination is direct, so only rounding separates them."""
    rng = np.random.default_rng(21)
    for _ in range(25):
        rows, cols = (int(n) for n in rng.integers(1, 7, size=2))
        array_rows = rows + int(rng.integers(0, 5))
        row, col = int(rng.integers(0, array_rows - rows + 1)), int(rng.integers(0, 5))
        r_w, r_b = (float(r) for r in 10.0 ** rng.uniform(-1, 3, size=2))
        lines = LineModel(r_w, r_b, float(rng.uniform(0, 100)), float(rng.uniform(0, 100)))
        g = rng.uniform(1.0, 1000.0, size=(rows, cols))
        v = rng.uniform(-0.2, 0.2, size=(4, rows))
        r_in, r_out = lead_ohm(lines, row=row, col=col, rows=rows, array_rows=array_rows)
        reference = nodal_currents(g, v, r_w, r_b, r_in, r_out)
        got = v @ region_map(g, lines, row=row, col=col, array_rows=array_rows)
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-9 * np.abs(reference).max())


@pytest.mark.parametrize(("word", "bit"), [(0.0, 2.0), (2.0, 0.0), (0.0, 0.0)])
def test_a_zero_segment_resistance_is_the_limit_of_small_ones(word: float, bit: float):
    """A line of zero segment resistance is one node (exactly); the dense solve with 1e-7 ohm segments is within
    1e-6 of it. Driver and sense resistances of 30 and 40 ohms keep the leads finite."""
    rng = np.random.default_rng(5)
    g = rng.uniform(50.0, 500.0, size=(4, 3))
    v = rng.uniform(-0.2, 0.2, size=(3, 4))
    lines = LineModel(word, bit, 30.0, 40.0)
    r_in, r_out = lead_ohm(lines, row=1, col=2, rows=4, array_rows=6)
    reference = nodal_currents(g, v, word or 1e-7, bit or 1e-7, r_in or 1e-7, r_out or 1e-7)
    got = v @ region_map(g, lines, row=1, col=2, array_rows=6)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-6 * np.abs(reference).max())


def test_zero_line_resistance_is_the_conductance_exactly():
    g = np.random.default_rng(0).uniform(10.0, 500.0, size=(5, 7))
    assert np.array_equal(region_map(g, LineModel(), row=3, col=2, array_rows=9), g)
    # Without driver or sense resistance but with the smallest segments (1 mohm), M is G within their relative
    # size (the lines carry whole rows and columns of devices of >= 2 kohm: within 1e-4).
    m = region_map(g, LineModel(1e-3, 1e-3), row=0, col=0, array_rows=5)
    np.testing.assert_allclose(m, g, rtol=1e-4)


def test_far_regions_lose_more():
    g = np.full((16, 16), 200.0)
    lines = LineModel(2.5, 2.5)
    near = region_map(g, lines, row=112, col=0, array_rows=128).sum()  # next to the drivers and sense amplifiers
    far = region_map(g, lines, row=0, col=112, array_rows=128).sum()
    assert far < near < g.sum()


# --------------------------------------------------------------------------
# The chip section


def _document(**lines: Any) -> dict[str, Any]:
    return {"format": "leac-chip", "version": 1, "arrays": {"count": 1, "rows": 4, "cols": 4},
            "periphery": {"lines": lines}}


def test_lines_round_trip_and_are_part_of_the_fingerprint(tmp_path: Path):
    plain = Chip(arrays=(Array(0, 4, 4),))
    chip = dataclasses.replace(plain, periphery=Periphery(lines=LineModel(2.5, 1, driver_ohm=100)))
    assert chip.periphery.lines.bit_line_segment_ohm == 1.0
    assert type(chip.periphery.lines.bit_line_segment_ohm) is float
    assert '    "lines": {"word_line_segment_ohm": 2.5, "bit_line_segment_ohm": 1.0, "driver_ohm": 100.0, ' \
           '"sense_ohm": 0.0}' in chip_to_text(chip)
    save_chip(chip, tmp_path / "c.json")
    assert load_chip(tmp_path / "c.json") == chip
    assert chip.fingerprint() != plain.fingerprint()
    # Absent, or all zero, is ideal lines: not written, so older chip files keep their text and fingerprint.
    assert "lines" not in chip_to_json(plain)["periphery"]
    zero = parse_chip(_document(word_line_segment_ohm=0, sense_ohm=0.0), "c.json")
    assert zero.periphery.lines.is_default and zero.fingerprint() == plain.fingerprint()
    partial = parse_chip(_document(bit_line_segment_ohm=1.5), "c.json")
    assert partial.periphery.lines == LineModel(bit_line_segment_ohm=1.5)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ({"word_line_segment_ohm": -1}, ["periphery.lines.word_line_segment_ohm: -1 is negative"]),
        ({"bit_line_segment_ohm": "2.5"}, ['periphery.lines.bit_line_segment_ohm: "2.5" is not a number']),
        ({"driver_ohm": None}, ["periphery.lines.driver_ohm: null is not a number"]),
        ({"sense_ohm": True}, ["periphery.lines.sense_ohm: true is not a number"]),
        ({"word_line_segment_ohm": 5000},
         ["periphery.lines.word_line_segment_ohm: 5000 is outside the range leac accepts (0 to 1000 ohm)"]),
        ({"sense_ohm": 1e7}, ["periphery.lines.sense_ohm: 1e+07 is outside the range leac accepts (0 to 1e+06 ohm)"]),
        ({"word_line_ohm": 1}, ["periphery.lines.word_line_ohm: unknown key (did you mean 'word_line_segment_ohm'?)"]),
        ({"word_line_segment_ohm": 1, "word_line_segmnt_ohm": 1},
         ["periphery.lines.word_line_segmnt_ohm: unknown key (did you mean 'word_line_segment_ohm'?)"]),
    ],
)  # fmt: skip
def test_each_bad_line_value_is_refused_with_its_path(lines: dict[str, Any], expected: list[str]):
    with pytest.raises(InvalidChipError) as info:
        parse_chip(_document(**lines), "c.json")
    assert info.value.problems == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("2.5", 'periphery.lines: 2.5 is not a JSON object'),
    ("[1, 2]", "periphery.lines: [1, 2] is not a JSON object"),
    ('{"driver_ohm": NaN}', "periphery.lines.driver_ohm: NaN is not a finite number"),
    ('{"driver_ohm": 1, "driver_ohm": 2}', "periphery.lines.driver_ohm: key appears more than once"),
])
def test_a_bad_lines_object_in_a_file_is_refused_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, expected: str):
    text = json.dumps({"format": "leac-chip", "version": 1, "arrays": {"count": 4, "rows": 25, "cols": 25}})
    chip = tmp_path / "chip.json"
    chip.write_text(text[:-1] + f', "periphery": {{"lines": {value}}}}}')
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), model)
    out = tmp_path / "out.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-o", str(out)]) == 3
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_the_constructor_refuses_bad_lines_with_the_files_messages():
    with pytest.raises(InvalidChipError) as info:
        LineModel(-1.0, float("nan"))
    assert info.value.problems == ["periphery.lines.word_line_segment_ohm: -1.0 is negative",
                                   "periphery.lines.bit_line_segment_ohm: NaN is not a finite number"]
    with pytest.raises(InvalidChipError) as info:
        Periphery(lines={"driver_ohm": 1.0})  # type: ignore[arg-type]
    assert info.value.problems == ["periphery.lines: {'driver_ohm': 1.0} is not a LineModel"]


# --------------------------------------------------------------------------
# The simulator and the compensate pass


def _compiled(chip: Chip, calibrate: Path | None = None):
    options = CompileOptions(k=2, time_limit_s=5.0, seed=0)
    return compile_model(import_model(mlp_model((16, 12, 4), seed=3)), chip, options, calibrate_on=calibrate)


def _quiet_chip(lines: LineModel) -> Chip:
    base = synth_chip(arrays=4, rows=32, cols=32, stuck_high=0.0, stuck_low=0.0, seed=1)
    device = dataclasses.replace(base.device, write_noise_uS=0.0, read_noise_uS=0.0)
    return dataclasses.replace(base, device=device, periphery=dataclasses.replace(base.periphery, lines=lines))


def test_the_simulator_reads_through_the_lines():
    chip = _quiet_chip(LineModel(20.0, 20.0))
    program = _compiled(_quiet_chip(LineModel())).program
    rng = np.random.default_rng(0)
    layer = program.layers[0].name
    plain = CrossbarLayer.of(program, layer, _quiet_chip(LineModel()), rng)
    assert plain.executor.read_maps is plain.executor.conductances  # ideal lines: the conductances, unchanged
    dropped = CrossbarLayer.of(program, layer, chip, rng)
    (read, _), g = dropped.plan.reads[0], dropped.executor.conductances[0]
    expected = region_map(g, chip.periphery.lines, row=read.row, col=read.col, array_rows=32)
    np.testing.assert_array_equal(dropped.executor.read_maps[0], expected)
    x = rng.uniform(-1, 1, size=(50, 16)).astype(np.float32)
    assert not np.allclose(dropped.executor.forward(x), plain.executor.forward(x), rtol=1e-3)
    # --ideal reads ideal lines too.
    ideal = CrossbarLayer.of(program, layer, chip, rng, ideal=True)
    assert ideal.executor.read_maps is ideal.executor.conductances


def test_zero_line_resistance_simulates_exactly_as_without_the_section():
    chip = synth_chip(arrays=4, rows=32, cols=32, stuck_high=0.02, stuck_low=0.01, seed=2)
    program = _compiled(chip).program
    x = np.random.default_rng(1).uniform(-1, 1, size=(40, 16)).astype(np.float32)
    data = [Dataset("x", x, np.zeros(40, dtype=np.int64))]
    zero = parse_chip({**json.loads(chip_to_text(chip)), "periphery": {
        **chip_to_json(chip)["periphery"], "lines": {"word_line_segment_ohm": 0, "bit_line_segment_ohm": 0}}}, "z")
    a, b = simulate(program, data, seed=4), simulate(program, data, seed=4, chip=zero)
    assert a.layer_error == b.layer_error and a.accuracy == b.accuracy


def test_compensation_knows_the_ir_drop(tmp_path: Path):
    """Compiled for a chip with lines and calibrated, the compensate pass fits every column against the
    IR-drop-aware matrices, and the simulated layer error on that chip falls well below the unaware Program's.
    The inputs are non-negative, as pixels and ReLU outputs are: the G+ and G- halves of a copy sit at
    different distances from the sense amplifiers, and what that leaves of their common conductance is then
    mostly an offset per column, which the fit takes out (with zero-mean inputs it is not, docs/simulator.md)."""
    lines = LineModel(5.0, 5.0)
    chip, ideal_lines = _quiet_chip(lines), _quiet_chip(LineModel())
    calibrate = tmp_path / "calib.npz"
    np.savez(calibrate, x=np.random.default_rng(7).uniform(0, 1, size=(200, 16)).astype(np.float32),
             y=np.zeros(200, dtype=np.int64))
    aware, unaware = _compiled(chip, calibrate), _compiled(ideal_lines, calibrate)
    for layer in aware.program.layers:  # every column fitted, though no device is stuck
        assert layer.column_gain is not None and np.all(layer.column_gain != 1.0)
    assert all(layer.column_gain is None for layer in unaware.program.layers)  # no stuck device: nothing to fit
    x = np.random.default_rng(8).uniform(0, 1, size=(200, 16)).astype(np.float32)
    data = [Dataset("x", x, np.zeros(200, dtype=np.int64))]
    error_aware = simulate(aware.program, data, seed=0, chip=chip).layer_error
    error_unaware = simulate(unaware.program, data, seed=0, chip=chip).layer_error
    for layer, error in error_aware.items():  # measured: 0.20 against 1.24 and 0.18 against 0.78
        assert error < 0.5 * error_unaware[layer]


# --------------------------------------------------------------------------
# Placement: far regions cost more


def test_the_placement_term_is_the_first_order_current_loss():
    """At small resistances, `ir_drop_costs` is sum(P) - sum(M) with the exact M (every row at one voltage), to
    first order: measured within 1e-4 of it at milliohms."""
    rng = np.random.default_rng(3)
    targets = rng.uniform(100.0, 300.0, size=(2, 5, 4))
    lines = LineModel(1e-3, 2e-3, 5e-3, 7e-3)
    costs = ir_drop_costs(targets, lines, 9, 11)
    assert costs.shape == (2, 5, 8)
    for y, x in [(0, 0), (4, 7), (2, 3)]:
        for k in range(2):
            loss = targets[k].sum() - region_map(targets[k], lines, row=y, col=x, array_rows=9).sum()
            assert costs[k, y, x] == pytest.approx(loss, rel=1e-4)
    assert np.all(np.diff(costs, axis=2) > 0) and np.all(np.diff(costs, axis=1) < 0)  # far costs more


def test_placement_on_a_chip_with_lines_matches_brute_force_and_prefers_near_regions():
    rng = np.random.default_rng(11)
    plain = make_chip(rng, [(5, 6), (4, 4)], 0.15)
    chip = dataclasses.replace(plain, periphery=Periphery(lines=LineModel(2.5, 2.5, 10.0, 10.0)))
    problem = make_problem(rng, chip, [(2, 3), (3, 2)], [2, 1])
    maps = cost_maps(problem)
    for i, item in enumerate(problem.items):
        for region in all_regions(problem, i):
            cost_map = maps.of(item.pattern, region.array)
            assert cost_map is not None
            assert cost_map[region.row, region.col] == pytest.approx(item_cost(problem, i, region), rel=1e-12)
    result = solve_placement(problem, time_limit_s=5.0, seed=0)
    check_valid(problem, result)
    assert result.objective_uS == pytest.approx(brute_force(problem), abs=1e-6)
    # One copy on a perfect array goes next to the drivers (column 0) and the sense amplifiers (last rows).
    single = PlacementProblem((Pattern("p", np.full((3, 3), 200.0)),), (Item("p/c0", 0),),
                              Chip(arrays=(Array(0, 8, 8),), periphery=Periphery(lines=LineModel(2.5, 2.5))))
    assert solve_placement(single, time_limit_s=5.0, seed=0).regions == (Region(0, 5, 0),)
