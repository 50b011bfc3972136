"""Conductance-dependent write and read noise and retention drift (lea_compiler/chip/variability.py): the chip
file sections, the laws by hand, sample variances per level against the tables (fixed seeds), the simulator's
draw sites, `--after`, and that a chip without the sections runs exactly as before."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import onnx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from onnx import helper

from lea_compiler.backends.sim import CrossbarLayer, Dataset, EventCounts, NoiseSpan, simulate
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery, chip_to_text, load_chip, parse_chip, save_chip
from lea_compiler.chip.variability import DriftModel, NoiseModel, parse_duration
from lea_compiler.cli import build_parser, main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidChipError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.programming.devices import read_back, write_devices
from lea_compiler.schedule.lower import region_window
from tests.helpers import make_model

F = np.float32
LEVELS = (100.0, 150.0, 200.0, 250.0)
SIGMA = (2.0, 5.0, 9.0, 14.0)


def _document(device: dict[str, object]) -> dict[str, object]:
    return {"format": "leac-chip", "version": 1, "device": {"levels_uS": list(LEVELS), **device},
            "arrays": {"count": 1, "rows": 4, "cols": 4}}


# --------------------------------------------------------------------------
# The laws by hand


def test_the_drift_law_by_hand_at_two_times():
    drift = DriftModel(nu=0.05, t0_s=20.0)
    # G(t) / G0 = ((t + t0) / t0)^(-nu): 1 h -> (3620 / 20)^-0.05 = 181^-0.05 = exp(-0.05 x 5.198497) = 0.771110;
    # 1 day -> (86420 / 20)^-0.05 = 4321^-0.05 = exp(-0.05 x 8.371242) = 0.657992
    assert drift.factor(np.array([0.05]), 3600.0)[0] == pytest.approx(0.771110, abs=2e-6)
    assert drift.factor(np.array([0.05]), 86400.0)[0] == pytest.approx(0.657992, abs=2e-6)
    assert drift.factor(np.array([0.05]), 0.0)[0] == 1.0


def test_the_noise_laws_by_hand():
    table = NoiseModel(sigma_uS=SIGMA)
    # at the levels, the table; between, linear in G (175 uS: halfway from 5 to 9); beyond, the end values
    np.testing.assert_allclose(table.sigma(np.array([100.0, 250.0, 175.0, 10.0, 500.0]), LEVELS),
                               [2.0, 14.0, 7.0, 2.0, 14.0])
    # aihwkit's PCM programming noise at g_max = 25 uS: 0.26348 + 1.9650 x - 1.1731 x^2, x = G / 25
    pcm = NoiseModel(polynomial=(0.26348, 1.9650, -1.1731), g_ref_uS=25.0)
    assert pcm.sigma(np.array([25.0]), LEVELS)[0] == pytest.approx(0.26348 + 1.9650 - 1.1731)
    assert pcm.sigma(np.array([12.5]), LEVELS)[0] == pytest.approx(0.26348 + 0.9825 - 1.1731 / 4)
    # CrossSim's RRAM (Milo et al.): max(-0.009107 G + 4.782321, 0): 2.5056 at 250 uS, 0 far above
    milo = NoiseModel(polynomial=(4.782321, -0.009107))
    np.testing.assert_allclose(milo.sigma(np.array([250.0, 1000.0]), LEVELS), [4.782321 - 2.27675, 0.0])


def test_durations_parse_and_bad_ones_say_why():
    assert [parse_duration(v) for v in ("10s", "1h", "2d", "30min", "1.5h", "1w", 7, "0")] == [
        10.0, 3600.0, 172800.0, 1800.0, 5400.0, 604800.0, 7.0, 0.0]
    assert parse_duration("1y") == 365.25 * 86400
    for bad, why in (("1 parsec", "not a duration"), ("-1h", "at least 0"), ("nan", "at least 0"),
                     ("1e12d", "more than leac simulates"), (True, "not a duration")):
        with pytest.raises(ValueError, match=why):
            parse_duration(bad)


# --------------------------------------------------------------------------
# The chip file


def test_sections_round_trip_and_absent_sections_leave_the_file_as_it_was(tmp_path):
    plain = parse_chip(_document({}), "a.json")
    assert not any(key in chip_to_text(plain) for key in ("noise_model", "drift"))
    sections = {"write_noise_model": {"sigma_uS": list(SIGMA)},
                "read_noise_model": {"polynomial": [0.26348, 1.965, -1.1731], "g_ref_uS": 25.0},
                "drift": {"t0_s": 20.0, "nu": [0.01, 0.02, 0.03, 0.04], "nu_sigma": 0.005}}
    chip = parse_chip(_document(sections), "b.json")
    save_chip(chip, tmp_path / "b.json")
    again = load_chip(tmp_path / "b.json")
    assert again == chip and again.fingerprint() == chip.fingerprint() != plain.fingerprint()
    assert json.loads((tmp_path / "b.json").read_text())["device"] | sections == json.loads(
        (tmp_path / "b.json").read_text())["device"]
    assert chip.device.drift == DriftModel(nu=(0.01, 0.02, 0.03, 0.04), nu_sigma=0.005)


@pytest.mark.parametrize(("device", "message"), [
    ({"write_noise_model": {"sigma_uS": [1, 2]}},
     "device.write_noise_model.sigma_uS: 2 values for 4 levels"),
    ({"read_noise_model": {"sigma_uS": [1, 2, 3, -4]}}, "device.read_noise_model.sigma_uS[3]: -4 is negative"),
    ({"read_noise_model": {"sigma_uS": [1, 2, 3, 4], "polynomial": [1]}},
     "device.read_noise_model: give exactly one of sigma_uS"),
    ({"read_noise_model": {"polynomial": [1, 2], "g_ref_uS": 0}},
     "device.read_noise_model.g_ref_uS: 0 is not positive"),
    ({"write_noise_model": {"sigma_uS": [1, 2, 3, 4], "g_ref_uS": 5}},
     "device.write_noise_model.g_ref_uS: 5 is given, but only a polynomial"),
    ({"read_noise_model": {"polynomial": list(range(9))}}, "device.read_noise_model.polynomial: 9 numbers is more"),
    ({"drift": {"nu_sigma": 0.1}}, "device.drift.nu: missing (required)"),
    ({"drift": {"nu": 1.5}}, "device.drift.nu: 1.5 is outside the range leac accepts (0 to 1)"),
    ({"drift": {"nu": 0.1, "t0_s": -3}}, "device.drift.t0_s: -3 is not positive"),
    ({"drift": {"nu": [0.1, 0.2]}}, "device.drift.nu: 2 values for 4 levels"),
    ({"drift": {"nu": 0.1, "tau": 3}}, "device.drift.tau: unknown key"),
    ({"drift": "fast"}, 'device.drift: "fast" is not a JSON object'),
    ({"write_noise_model": {"sigma_uS": [1, 2, 3, 4]}, "programming": {"model": "pulse", "step_uS": 4.0}},
     'device.write_noise_model: given, but the "pulse" programming model makes its own write error'),
    # laws of valid coefficients that leave 0 to 1e6 uS on the chip's conductances, 0 to stuck_high_uS = 500:
    # 1e6 (G / 1e-6 uS)^7 is 7.8e66 uS at 500 uS (the review's ~1e64), at the interval's end
    ({"write_noise_model": {"polynomial": [0, 0, 0, 0, 0, 0, 0, 1e6], "g_ref_uS": 1e-6}},
     "device.write_noise_model.polynomial: sigma(500 uS) = 7.81e+66 uS is more than leac accepts (1e+06 uS)"),
    # 1e6 (1 + x - x^2), x = G / 125 uS: 1e6 at G = 0, below 0 at 500 uS, 1.25e6 at its vertex G = 62.5 uS
    ({"read_noise_model": {"polynomial": [1e6, 1e6, -1e6], "g_ref_uS": 125}},
     "device.read_noise_model.polynomial: sigma(62.5 uS) = 1.25e+06 uS is more than leac accepts"),
])
def test_bad_sections_are_refused_naming_the_field_and_nothing_is_written(tmp_path, capsys, device, message):
    with pytest.raises(InvalidChipError) as info:
        parse_chip(_document(device), "c.json")
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems
    chip = tmp_path / "c.json"
    chip.write_text(json.dumps(_document(device)))
    model = tmp_path / "m.onnx"
    onnx.save(make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 2])}, ["y"],
                         {"W": np.eye(2, dtype=F)}), model)
    out = tmp_path / "p.leac"
    capsys.readouterr()
    assert main(["compile", str(model), "--chip", str(chip), "-o", str(out)]) == 3
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_files_tables_are_checked_once(monkeypatch):
    """Each table of a chip file goes through the number checks once (`variability_problems`), not again in the
    models' constructors; the constructors still check what the API gives them (the next test)."""
    from lea_compiler.chip import variability

    checked: list[str] = []
    check = variability._number_list_problems

    def counted(value: object, path: str, *args: object, **kwargs: object) -> list[str]:
        checked.append(path)
        return check(value, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(variability, "_number_list_problems", counted)
    chip = parse_chip(_document({"write_noise_model": {"sigma_uS": list(SIGMA)},
                                 "read_noise_model": {"polynomial": [1.0, 2.0]},
                                 "drift": {"nu": [0.01, 0.02, 0.03, 0.04], "nu_sigma": [0.0, 0.0, 0.01, 0.01]}}),
                     "c.json")
    assert sorted(checked) == ["device.drift.nu", "device.drift.nu_sigma", "device.read_noise_model.polynomial",
                               "device.write_noise_model.sigma_uS"]
    assert chip.device.drift == DriftModel(nu=(0.01, 0.02, 0.03, 0.04), nu_sigma=(0.0, 0.0, 0.01, 0.01))
    assert chip.device.write_noise_model == NoiseModel(sigma_uS=SIGMA)


def test_the_constructors_check_the_sections_too():
    with pytest.raises(InvalidChipError, match="sigma_uS: 2 values for 4 levels"):
        DeviceModel(levels_uS=LEVELS, read_noise_model=NoiseModel(sigma_uS=(1.0, 2.0)))
    with pytest.raises(InvalidChipError, match="nu_sigma: -0.1 is negative"):
        DriftModel(nu=0.1, nu_sigma=-0.1)
    with pytest.raises(InvalidChipError, match="is not a NoiseModel"):
        DeviceModel(write_noise_model=DriftModel(nu=0.1))  # type: ignore[arg-type]


def test_a_law_within_the_limit_on_the_chip_is_clipped_beyond_it_and_the_simulator_runs(tmp_path):
    """A law valid on the chip's conductances (7.5e5 + 1e6 (x - x^2) peaks at exactly 1e6 uS; 1e6 (G / 500 uS)^7 is
    1e6 at 500 uS) is accepted, by the constructors too, and clipped to 1e6 uS where a device holds more: a
    defect's own g_uS of 1e6 uS (sigma 1.3e29 uS unclipped overflowed the float32 currents, and simulate blamed
    the data). Beyond the limit, the constructor refuses it like the file."""
    assert DeviceModel(levels_uS=LEVELS, read_noise_model=NoiseModel(polynomial=(7.5e5, 1e6, -1e6), g_ref_uS=125))
    steep = NoiseModel(polynomial=(0, 0, 0, 0, 0, 0, 0, 1e6), g_ref_uS=500.0)
    np.testing.assert_allclose(steep.sigma(np.array([250.0, 500.0, 1e6]), LEVELS), [1e6 / 128, 1e6, 1e6])
    with pytest.raises(InvalidChipError, match=r"device.read_noise_model.polynomial: sigma\(500 uS\) = 1.28e\+08"):
        DeviceModel(levels_uS=LEVELS, read_noise_model=NoiseModel(polynomial=(0, 0, 0, 0, 0, 0, 0, 1e6),
                                                                  g_ref_uS=250.0))
    program = _two_by_two(tmp_path, DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0))
    document = json.loads(chip_to_text(program.chip))
    document["device"]["read_noise_model"] = {"polynomial": [0, 0, 0, 0, 0, 0, 0, 1e6], "g_ref_uS": 500.0}
    document["defects"] = [{"array": 0, "row": 0, "col": 0, "state": "stuck_high", "g_uS": 1e6}]
    chip = parse_chip(document, "steep.json")
    x = np.random.default_rng(0).standard_normal((16, 2)).astype(F)
    x[::2, 0] = 0.0  # 0 V on the defect's row: 0 x an overflowed variance was NaN
    report = simulate(program, [Dataset("d", x, np.zeros(16, np.int64))], chip=chip, seed=1).to_json()
    assert all(math.isfinite(v) for v in report["layer_output_error"].values())


def test_compile_takes_the_models_mean_variance_as_its_noise_figures():
    from lea_compiler.chip.variability import noise_figures_uS

    plain = DeviceModel(levels_uS=LEVELS, write_noise_uS=3.0, read_noise_uS=2.0)
    assert noise_figures_uS(plain) == (3.0, 2.0)  # without the models, the constants exactly
    models = dataclasses.replace(plain, write_noise_model=NoiseModel(sigma_uS=SIGMA),
                                 read_noise_model=NoiseModel(sigma_uS=(1.0, 1.0, 1.0, 3.0)))
    write, read = noise_figures_uS(models)
    assert write == pytest.approx(math.sqrt((4 + 25 + 81 + 196) / 4))  # sqrt of the mean variance: 8.746
    assert read == pytest.approx(math.sqrt(3 * (1 + 1 + 1 + 9) / 4))  # a uniform +-r of the same variance: 3


# --------------------------------------------------------------------------
# Sample variances per level against the tables (fixed seeds)


def _tolerance(n: int) -> float:
    """Six standard deviations of a sample variance's relative error over n Gaussian draws (sqrt(2 / n))."""
    return 6.0 * math.sqrt(2.0 / n)


def test_write_and_read_back_variance_per_level_match_the_tables():
    device = DeviceModel(levels_uS=LEVELS, write_noise_model=NoiseModel(sigma_uS=SIGMA),
                         read_noise_model=NoiseModel(sigma_uS=(1.0, 3.0, 4.0, 6.0)))
    n = 20_000
    level = np.repeat(np.arange(4), n)
    written = write_devices(level, device, np.random.default_rng(3), tolerance_uS=1.0, max_pulses=10)
    measured = read_back(np.repeat(np.asarray(LEVELS), n), device, np.random.default_rng(4), reads=1)
    for index, (target, sigma) in enumerate(zip(LEVELS, SIGMA, strict=True)):
        error = written.conductance_uS[level == index] - target
        assert abs(error.var() / sigma**2 - 1) < _tolerance(n), (index, error.var())
        assert abs(error.mean()) < 6 * sigma / math.sqrt(n)
        read_error = measured[level == index] - target
        assert abs(read_error.var() / (1.0, 3.0, 4.0, 6.0)[index] ** 2 - 1) < _tolerance(n)
    # four reads averaged: a quarter of the variance
    four = read_back(np.full(n, 250.0), device, np.random.default_rng(5), reads=4) - 250.0
    assert abs(four.var() / (36.0 / 4) - 1) < _tolerance(n)


def _wide_program(tmp_path, device: DeviceModel, *, k: int = 2):
    """A 60 x 60 MatMul with weights in {-3..3} compiled for a defect-free chip of 60 x 120 arrays."""
    weights = np.random.default_rng(0).integers(-3, 4, size=(60, 60)).astype(F)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 60])}, ["y"],
                       {"W": weights})
    onnx.save(model, tmp_path / "wide.onnx")
    chip = Chip(arrays=tuple(Array(i, 60, 120) for i in range(k)), device=device,
                periphery=Periphery(dac_bits=16, adc_bits=16))
    return compile_model(tmp_path / "wide.onnx", chip, CompileOptions(k=k, encoding="simple")).program


def _levels_and_conductances(layer: CrossbarLayer, program) -> tuple[np.ndarray, np.ndarray]:
    from lea_compiler.schedule.plan import schedule_of

    schedule = schedule_of(program)
    levels = [schedule.arrays[read.array].level[region_window(read)].ravel() for read, _ in layer.plan.reads]
    conductances = [np.asarray(g).ravel() for g in layer.executor.conductances]
    return np.concatenate(levels), np.concatenate(conductances)


def test_the_simulator_draws_write_noise_per_level_from_the_table(tmp_path):
    device = DeviceModel(levels_uS=LEVELS, write_noise_model=NoiseModel(sigma_uS=SIGMA), read_noise_uS=0.0)
    program = _wide_program(tmp_path, device)
    layer = CrossbarLayer.of(program, "mm", program.chip, np.random.default_rng(7))
    level, g = _levels_and_conductances(layer, program)
    for index, (target, sigma) in enumerate(zip(LEVELS, SIGMA, strict=True)):
        error = g[level == index] - target
        assert error.size > 1000
        assert abs(error.var() / sigma**2 - 1) < _tolerance(error.size), (index, error.size, error.var())


def test_a_table_of_the_constant_draws_exactly_what_the_constant_draws(tmp_path):
    constant = DeviceModel(levels_uS=LEVELS, write_noise_uS=7.5, read_noise_uS=0.0)
    program = _wide_program(tmp_path, constant)
    table = dataclasses.replace(program.chip, device=dataclasses.replace(
        constant, write_noise_model=NoiseModel(sigma_uS=(7.5,) * 4)))
    one = CrossbarLayer.of(program, "mm", program.chip, np.random.default_rng(1)).executor.conductances
    two = CrossbarLayer.of(program, "mm", table, np.random.default_rng(1)).executor.conductances
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_drift_in_the_simulator_by_hand_per_level_and_its_spread(tmp_path):
    nu = (0.02, 0.04, 0.06, 0.08)
    device = DeviceModel(levels_uS=LEVELS, write_noise_uS=0.0, read_noise_uS=0.0, drift=DriftModel(nu=nu))
    program = _wide_program(tmp_path, device)
    for after, t in ((3600.0, 3620.0 / 20.0), (30 * 86400.0, (30 * 86400.0 + 20.0) / 20.0)):
        layer = CrossbarLayer.of(program, "mm", program.chip, np.random.default_rng(0), after_s=after)
        level, g = _levels_and_conductances(layer, program)
        expected = np.asarray(LEVELS)[level] * np.power(t, -np.asarray(nu)[level])
        np.testing.assert_allclose(g, expected, rtol=1e-12)
    spread = dataclasses.replace(program.chip, device=dataclasses.replace(
        device, drift=DriftModel(nu=0.05, nu_sigma=0.01)))
    layer = CrossbarLayer.of(program, "mm", spread, np.random.default_rng(0), after_s=86400.0)
    level, g = _levels_and_conductances(layer, program)
    exponent = -np.log(g / np.asarray(LEVELS)[level]) / math.log((86400.0 + 20.0) / 20.0)
    assert abs(exponent.mean() - 0.05) < 6 * 0.01 / math.sqrt(g.size)  # |N(0.05, 0.01)| is N(0.05, 0.01) here
    assert abs(exponent.std() / 0.01 - 1) < _tolerance(g.size)


def _two_by_two(tmp_path, device: DeviceModel):
    """y = x @ [[1, -1], [0, 1]] on one defect-free 2 x 4 array (G+ and G- of levels 100 and 250 uS)."""
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 2])}, ["y"],
                       {"W": np.array([[1, -1], [0, 1]], F)})
    onnx.save(model, tmp_path / "mm.onnx")
    chip = Chip(arrays=(Array(0, 2, 4),), device=device, periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=16))
    return compile_model(tmp_path / "mm.onnx", chip, CompileOptions(k=1)).program


@pytest.mark.parametrize("exact", [False, True])
def test_read_noise_variance_of_each_current_matches_the_table(tmp_path, exact):
    device = DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0,
                         read_noise_model=NoiseModel(sigma_uS=(2.0, 6.0)))
    program = _two_by_two(tmp_path, device)
    layer = CrossbarLayer.of(program, "mm", program.chip, np.random.default_rng(1), exact_read_noise=exact)
    g_pos, g_neg = (np.asarray(g) for g in layer.executor.conductances)
    np.testing.assert_array_equal(g_pos, [[250, 100], [100, 250]])
    np.testing.assert_array_equal(g_neg, [[100, 250], [100, 100]])
    layer.x_fs = 1.0
    x = np.tile(np.array([[1.0, -0.5]], F), (20_000, 1))
    out = layer.forward(x, np.random.default_rng(2), EventCounts())
    # V = 0.25 x [1, -0.5]; var y_j = sum_i V_i^2 (sigma(G+_ij)^2 + sigma(G-_ij)^2) / (v_read x 150 uS)^2:
    # column 0: 0.0625 (36 + 4) + 0.015625 (4 + 4) = 2.625; column 1: 0.0625 (4 + 36) + 0.015625 (36 + 4) = 3.125
    expected = np.array([2.625, 3.125]) / (0.25 * 150) ** 2
    np.testing.assert_allclose(out.var(axis=0), expected, rtol=_tolerance(20_000))
    np.testing.assert_allclose(out.mean(axis=0), [1.0, -1.5], atol=1e-3)


# --------------------------------------------------------------------------
# The simulator and the command line


def test_absent_sections_and_drift_at_zero_change_nothing(tmp_path):
    device = DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=5.0, read_noise_uS=4.0)
    program = _two_by_two(tmp_path, device)
    data = Dataset("d", np.random.default_rng(0).standard_normal((64, 2)).astype(F), np.zeros(64, np.int64))
    drifting = dataclasses.replace(program.chip, device=dataclasses.replace(device, drift=DriftModel(nu=0.1)))

    def report(chip: Chip, **kwargs: object) -> dict[str, object]:
        out = simulate(program, [data], chip=chip, seed=3, **kwargs).to_json()  # type: ignore[arg-type]
        out.pop("seconds")
        out.pop("chip")
        out.pop("compiled_for_chip")  # another Chip object than compiled for, the same devices
        return out

    base = report(program.chip)
    assert "after_s" not in base
    assert report(drifting) == base == report(drifting, after=0) == report(drifting, after="0s")
    later = report(drifting, after="1h")
    assert later["after_s"] == 3600.0 and later["layer_output_error"] != base["layer_output_error"]


def test_after_on_the_command_line_and_its_errors(tmp_path, capsys):
    device = DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0,
                         drift=DriftModel(nu=0.05))
    program = _two_by_two(tmp_path, device)
    path = tmp_path / "p.leac"
    program.save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.array([[1, -1], [-1, 1]], F), y=np.array([0, 1]))
    capsys.readouterr()
    assert main(["simulate", str(path), "--data", str(data), "--after", "1h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["after_s"] == 3600.0
    assert main(["simulate", str(path), "--data", str(data), "--after", "2d"]) == 0
    assert "172800 s after programming (drift)" in capsys.readouterr().out
    for argv, message in ((["--after", "soon"], "'soon' is not a duration"),
                          (["--after=-3s"], "at least 0 seconds"),
                          (["--after", "1h", "--ideal"], "ideal devices do not have")):
        assert main(["simulate", str(path), "--data", str(data), *argv]) == 2
        assert message in capsys.readouterr().err
    plain = tmp_path / "plain.json"
    save_chip(dataclasses.replace(program.chip, device=dataclasses.replace(device, drift=None)), plain)
    assert main(["simulate", str(path), "--data", str(data), "--chip", str(plain), "--after", "1h"]) == 2
    assert "has no drift model (device.drift" in capsys.readouterr().err


def test_after_on_a_chip_without_drift_is_refused_before_anything_runs(tmp_path, monkeypatch):
    """`simulate_trials` (what `leac simulate` and `leac.simulate` call) refuses `after` on a chip without drift
    before onnxruntime's baseline or any trial runs."""
    from lea_compiler.backends import sim
    from lea_compiler.errors import UsageError

    program = _two_by_two(tmp_path, DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0))
    ran: list[str] = []
    monkeypatch.setattr(sim, "software_predictions", lambda *args, **kwargs: ran.append("baseline"))
    monkeypatch.setattr(sim, "simulate", lambda *args, **kwargs: ran.append("simulate"))
    data = Dataset("d", np.zeros((4, 2), F), np.zeros(4, np.int64))
    for options, message in (({"after": "1h"}, "after (time since programming) is 3600 s, but the simulated chip "
                                               "has no drift model (device.drift"),
                             ({"after": "1h", "ideal": True, "chip": dataclasses.replace(program.chip, device=(
                                 dataclasses.replace(program.chip.device, drift=DriftModel(nu=0.1))))},
                              "which ideal devices do not have"),
                             ({"after": "soon"}, "after (time since programming): 'soon' is not a duration")):
        with pytest.raises(UsageError, match=re.escape(message)):
            sim.simulate_trials(program, [data], trials=2, **options)
    assert ran == []


def test_the_after_flag_is_the_api_keyword():
    import inspect

    import lea_compiler as leac

    simulate_parser = build_parser()._subparsers._group_actions[0].choices["simulate"]  # type: ignore[union-attr]
    assert "after" in {action.dest for action in simulate_parser._actions}
    assert inspect.signature(leac.simulate).parameters["after"].default == 0.0
    assert simulate_parser.get_default("after") is None  # absent: 0, as programmed


@settings(max_examples=25, deadline=None)
@given(coefficients=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=8),
       g_ref=st.floats(1e-3, 1e3, allow_nan=False))
@example(coefficients=[0.0, 0.0, 1.0, 2.225073858507203e-309], g_ref=1.0)  # a subnormal top coefficient
@example(coefficients=[0.0, 5e-324], g_ref=1e3)  # a law that underflows to 0
def test_any_polynomial_law_round_trips_and_gives_a_spread(coefficients, g_ref):
    """A law is accepted exactly when it stays within 1e6 uS from 0 to stuck_high_uS = 500 uS: against the
    brute-force maximum on a grid (a lower bound of the true one; the tolerance allows the grid to miss a peak)."""
    document = _document({"read_noise_model": {"polynomial": coefficients, "g_ref_uS": g_ref}})
    grid = np.linspace(0.0, 500.0, 200_001) / g_ref
    peak = max(sum(c * grid**i for i, c in enumerate(coefficients)).max(), 0.0)
    if peak > 1e6:
        with pytest.raises(InvalidChipError, match="device.read_noise_model.polynomial: sigma"):
            parse_chip(document, "c.json")
        return
    try:
        chip = parse_chip(document, "c.json")
    except InvalidChipError as error:
        assert peak > 1e6 * (1 - 1e-3), (peak, error.problems)
        return
    assert parse_chip(json.loads(chip_to_text(chip)), "again.json") == chip
    model = chip.device.read_noise_model
    assert model is not None and model.polynomial == tuple(coefficients)
    sigma = model.sigma(np.linspace(0.0, 300.0, 31), LEVELS)
    expected = np.maximum(sum(c * (np.linspace(0.0, 300.0, 31) / g_ref) ** i for i, c in enumerate(coefficients)),
                          0.0)
    np.testing.assert_allclose(sigma, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max(initial=1.0))


def test_leac_program_writes_with_the_same_write_noise_model(tmp_path):
    """The simulated board (`leac program`) draws its writes through the one definition, `write_sigma_uS`."""
    import lea_compiler as leac

    device = DeviceModel(levels_uS=LEVELS, write_noise_model=NoiseModel(sigma_uS=SIGMA), read_noise_uS=0.0)
    program = _wide_program(tmp_path, device)
    done = leac.program_chip(program, strategy="open-loop", seed=2, tolerance_uS=1e3)
    level, g = [], []
    halves = [half for layer in done.program.layers for block in layer.blocks for copy in block.copies
              for half in (copy.pos, copy.neg)]
    for half in halves:
        used = np.asarray(half.levels) >= 0
        level.append(np.asarray(half.levels)[used])
        g.append(np.asarray(half.programmed_uS)[used])
    assert level, "no programmed arrays found"
    levels, conductances = np.concatenate(level), np.concatenate(g)
    for index, (target, sigma) in enumerate(zip(LEVELS, SIGMA, strict=True)):
        error = conductances[levels == index] - target
        assert error.size > 1000
        assert abs(error.var() / sigma**2 - 1) < _tolerance(error.size), (index, error.var())


@pytest.mark.parametrize("exact", [False, True])
def test_a_grouped_layer_reads_a_model_of_the_uniform_noises_variance_with_that_variance(tmp_path, exact):
    """A read-noise model of sigma r / sqrt(3) at every level has the variance of the uniform +-r: in a grouped
    layer (3 groups, 2 copies, blocks straddling groups, 2 reads) each current's noise scales with its own group's
    vector, in the fast and the per-device paths alike; a group whose vector drives 0 V reads no noise."""
    from lea_compiler.schedule.execute import CrossbarExecutor
    from lea_compiler.schedule.plan import schedule_of
    from tests.test_grouping import _program, _vectors

    program = _program(tmp_path, 6, 3, CompileOptions(k=2, block_rows=7, block_cols=3, reads=2, placer="greedy"))
    plan = schedule_of(program).layers["dw"]
    conductances = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0)).executor.conductances
    sigma = [np.full(np.shape(g), 10.0 / math.sqrt(3.0)) for g in conductances]
    uniform, model = (CrossbarExecutor(plan, conductances, dac_bits=8, adc_bits=16, read_noise_uS=r,
                                       exact_read_noise=exact, read_sigma_uS=s)
                      for r, s in ((10.0, None), (0.0, sigma)))
    assert model.noisy and uniform.noisy
    x = np.repeat(_vectors(program, 1), 400, axis=0)  # (400, 5, 5, 3, 18): one input, 400 noise draws
    x[..., 1, :] = 0.0  # group 1's vectors drive 0 V: its columns (2 and 3) read no noise
    for executor in (uniform, model):
        executor.x_fs = 3.0
    y_uniform, y_model = (e.forward(x, np.random.default_rng(5)) for e in (uniform, model))
    np.testing.assert_array_equal(y_model[..., 2:4], y_model[:1, ..., 2:4].repeat(400, axis=0))
    var_uniform, var_model = (y[..., [0, 1, 4, 5]].var(axis=0).sum() for y in (y_uniform, y_model))
    assert var_uniform > 0
    assert var_model == pytest.approx(var_uniform, rel=0.1)  # 100 currents' variances summed, 400 draws each


def test_drift_on_a_chip_of_other_levels_takes_the_nu_of_the_programmed_conductance(tmp_path):
    """A Program compiled for LEVELS simulated on a chip of 2 or 8 levels with per-level nu: each device drifts
    with nu interpolated at its Program target over the simulated chip's levels (docs/chip-format.md), not the
    nu of the chip's level of the same index (IndexError with 2 levels; the wrong level with 8)."""
    program = _wide_program(tmp_path, DeviceModel(levels_uS=LEVELS, write_noise_uS=0.0, read_noise_uS=0.0))
    t = (86400.0 + 20.0) / 20.0
    for levels, nu, at_targets in (
            ((100.0, 250.0), (0.02, 0.08), (0.02, 0.04, 0.06, 0.08)),  # 150 uS: a third of the way, 0.04
            ((10.0, 40.0, 70.0, 100.0, 130.0, 160.0, 190.0, 220.0), tuple(0.01 * (i + 1) for i in range(8)),
             (0.04, 0.0566666666666667, 0.0733333333333333, 0.08))):  # 150 uS: 130 + 20 / 30 of 30; 250: flat
        device = DeviceModel(levels_uS=levels, write_noise_uS=0.0, read_noise_uS=0.0, drift=DriftModel(nu=nu))
        chip = dataclasses.replace(program.chip, device=device)
        layer = CrossbarLayer.of(program, "mm", chip, np.random.default_rng(0), after_s=86400.0)
        level, g = _levels_and_conductances(layer, program)
        np.testing.assert_allclose(g, np.asarray(LEVELS)[level] * np.power(t, -np.asarray(at_targets)[level]),
                                   rtol=1e-12)


@pytest.mark.parametrize("model", [False, True])
def test_exact_read_noise_is_drawn_in_bounded_blocks_of_the_chunks_stream(tmp_path, monkeypatch, model):
    """`exact_read_noise` (uniform, or a read-noise model) draws a chunk's per-device noise in blocks of
    `_DEVICE_NOISE_NUMBERS`: the peak memory of a 512-sample chunk of a 120-row band of 256 currents stays far
    below the whole chunk's 15.7 M numbers (189 MB as float64 and float32 before), and the noise is the chunk's
    stream however it is blocked and whichever of the chunk's rows a call covers (`NoiseSpan`)."""
    import tracemalloc

    from lea_compiler.schedule import execute

    noise = {"read_noise_model": NoiseModel(sigma_uS=(2.0, 6.0)), "read_noise_uS": 0.0} if model else {
        "read_noise_uS": 10.0}
    device = DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, **noise)  # type: ignore[arg-type]
    weights = np.random.default_rng(0).integers(-1, 2, size=(120, 128)).astype(F)
    onnx.save(make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 120])}, ["y"],
                         {"W": weights}), tmp_path / "m.onnx")
    chip = Chip(arrays=(Array(0, 120, 256),), device=device, periphery=Periphery(dac_bits=16, adc_bits=16))
    program = compile_model(tmp_path / "m.onnx", chip, CompileOptions(k=1, encoding="simple")).program
    layer = CrossbarLayer.of(program, "mm", chip, np.random.default_rng(0), exact_read_noise=True)
    x = np.random.default_rng(1).uniform(-1, 1, (512, 120)).astype(F)
    layer.forward(x[:1], np.random.default_rng(0), EventCounts())  # the bands prepared, outside the measurement
    tracemalloc.start()
    whole = layer.forward(x, np.random.default_rng(0), EventCounts(), noise=NoiseSpan(7, 512, 0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6, peak  # measured 18 MB (190 MB before)
    part = layer.forward(x[100:300], np.random.default_rng(0), EventCounts(), noise=NoiseSpan(7, 512, 100))
    monkeypatch.setattr(execute, "_DEVICE_NOISE_NUMBERS", 1000)  # 3 band rows of one sample per block
    small = layer.forward(x, np.random.default_rng(0), EventCounts(), noise=NoiseSpan(7, 512, 0))
    clean = CrossbarLayer.of(program, "mm", chip, np.random.default_rng(0)).forward(x, None, EventCounts())
    # the same noise: sums of other shapes may round differently and move a current across an ADC step now
    # and then, where another draw would change every output by about the noise
    noise = np.abs(whole - clean).mean()
    for differ in (np.abs(small - whole), np.abs(part - whole[100:300])):
        assert np.mean(differ > 0) < 1e-2 and differ.max() < 0.1 * noise, (np.mean(differ > 0), differ.max(), noise)
