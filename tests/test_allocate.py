"""`-k auto --budget`: the predictor, the exact allocation, and the compile that uses them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import lea_compiler as leac
from lea_compiler.allocate import Prediction, allocate, fit_inverse_k
from lea_compiler.backends.sim import run_on_chip
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.layer_sizes import parse_budget
from tests.helpers import make_model, mlp_model


def _brute_force(prediction: Prediction, devices: dict[str, int], budget: int) -> tuple[int, int, int]:
    """The least (disagreement, error, devices) in billionths over every choice of counts within the budget."""
    names = list(prediction.error)
    best = (np.inf, np.inf, np.inf)
    for ks in itertools.product(*(range(1, len(prediction.error[n]) + 1) for n in names)):
        chosen = list(zip(names, ks, strict=True))
        used = sum(devices[n] * k for n, k in chosen)
        if used <= budget:
            best = min(best, (sum(round(prediction.disagreement[n][k - 1] * 10**9) for n, k in chosen),
                              sum(round(prediction.error[n][k - 1] * 10**9) for n, k in chosen), used))
    return best  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(12))
def test_the_allocation_is_optimal_for_its_predictor(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layers = [f"l{i}" for i in range(int(rng.integers(2, 5)))]
    lengths = {n: int(rng.integers(1, 6)) for n in layers}
    # coarse disagreements tie often, so the error and then the devices decide
    changed = {n: list(np.sort(rng.integers(0, 3, lengths[n]) / 10)[::-1]) for n in layers}
    error = {n: list(np.sort(rng.uniform(0, 1, lengths[n]))[::-1]) for n in layers}
    prediction = Prediction(error, changed)
    devices = {n: int(rng.integers(10, 100)) for n in layers}
    budget = sum(devices.values()) + int(rng.integers(0, 300))
    chosen = allocate(prediction, devices, budget)
    assert chosen.devices <= budget and chosen.devices == sum(devices[n] * chosen.counts[n] for n in layers)
    assert (sum(round(changed[n][chosen.counts[n] - 1] * 10**9) for n in layers),
            sum(round(error[n][chosen.counts[n] - 1] * 10**9) for n in layers),
            chosen.devices) == _brute_force(prediction, devices, budget)


def test_the_prediction_of_counts_is_the_baseline_plus_each_layers_change() -> None:
    prediction = Prediction({"a": [0.5, 0.3, 0.2], "b": [0.6, 0.3, 0.25]},
                            {"a": [0.2, 0.1, 0.05], "b": [0.3, 0.1, 0.0]},
                            baseline=2, baseline_error=0.35, baseline_disagreement=0.12)
    assert prediction.at({"a": 2, "b": 2}) == pytest.approx((0.35, 0.12))
    assert prediction.at({"a": 3, "b": 1}) == pytest.approx((0.35 - 0.1 + 0.3, 0.12 - 0.05 + 0.2))
    assert prediction.at({"a": 3, "b": 3})[1] == 0.0  # 0.12 - 0.05 - 0.1 < 0: a disagreement is at least none


def test_the_baseline_stays_unless_other_counts_gain_more_than_the_margin() -> None:
    table = {"a": [0.22, 0.20, 0.19], "b": [0.30, 0.20, 0.15]}  # a third copy of b gains 0.05, a's second 0.02
    for margin, expected in ((0.0, {"a": 1, "b": 3}), (0.02, {"a": 1, "b": 3}), (0.05, {"a": 2, "b": 2})):
        prediction = Prediction(table, table, baseline=2, baseline_error=0.2, baseline_disagreement=0.2,
                                margin=margin)
        chosen = allocate(prediction, {"a": 10, "b": 10}, 40)
        assert chosen.counts == expected, margin  # (1, 3) gains 0.05 - 0.02 = 0.03 over the baseline (2, 2)
        assert chosen.predicted_agreement == pytest.approx(1 - prediction.at(expected)[1])


def test_the_fit_recovers_a_known_curve_and_never_rises() -> None:
    k = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0])
    exact = 0.05 + 0.4 / k + 0.1 / k**2
    assert fit_inverse_k(k, exact, 12)[[0, 1, 2, 3, 5, 7, 11]] == pytest.approx(exact, abs=1e-9)
    noisy = exact + np.random.default_rng(0).normal(0, 0.01, k.size)
    fitted = fit_inverse_k(k, noisy, 12)
    assert np.all(np.diff(fitted) <= 1e-12) and np.max(np.abs(fitted[[0, 1, 2, 3, 5, 7, 11]] - exact)) < 0.03
    rising = np.array([0.1, 0.2, 0.3])  # noise that makes more copies look worse: no b/k term fits it
    assert fit_inverse_k(np.array([1.0, 2.0, 3.0]), rising, 4) == pytest.approx([0.2] * 4)
    assert fit_inverse_k(np.array([2.0]), np.array([0.4]), 3) == pytest.approx([0.4] * 3)  # one point: constant


def test_a_budget_below_one_copy_of_every_layer_does_not_fit() -> None:
    prediction = Prediction({"a": [1.0, 0.5], "b": [1.0]}, {"a": [0.0, 0.0], "b": [0.0]})
    with pytest.raises(DoesNotFitError, match="not even one copy"):
        allocate(prediction, {"a": 50, "b": 60}, 100)


def test_a_budget_is_a_count_or_a_share_of_the_chip() -> None:
    assert parse_budget(None, 5000) == 4500 and parse_budget("50%", 5000) == 2500 and parse_budget(1200, 5000) == 1200
    assert parse_budget("1200", 5000) == 1200
    for bad in ("0%", "150%", "-3", "lots", 0):
        with pytest.raises(UsageError, match="budget"):
            parse_budget(bad, 5000)


def _muted_and_linear() -> onnx.ModelProto:
    """y = x W_out + 0.001 x W_muted: fc_muted's noise reaches the outputs a thousand times weaker than fc_out's,
    by construction; both layers have the same shape and devices."""
    rng = np.random.default_rng(0)
    w_muted, w_out = (rng.standard_normal((8, 4)).astype(np.float32) for _ in range(2))
    nodes = [helper.make_node("MatMul", ["x", "Wm"], ["m"], name="fc_muted"),
             helper.make_node("Mul", ["m", "mute"], ["quiet"], name="mute"),
             helper.make_node("MatMul", ["x", "Wo"], ["o"], name="fc_out"),
             helper.make_node("Add", ["o", "quiet"], ["y"], name="sum")]
    return make_model(nodes, {"x": (np.float32, ["N", 8])}, ["y"],
                      {"Wm": w_muted, "Wo": w_out, "mute": np.array(0.001, dtype=np.float32)})


def test_the_copies_go_where_the_noise_reaches_the_outputs(tmp_path: Path) -> None:
    onnx.save(_muted_and_linear(), tmp_path / "m.onnx")
    save_chip(synth_chip(arrays=8, rows=25, cols=25, stuck_high=0.0, stuck_low=0.0, seed=0), tmp_path / "chip.json")
    x = np.random.default_rng(1).standard_normal((400, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(len(x), dtype=np.int64))
    program = leac.compile(tmp_path / "m.onnx", tmp_path / "chip.json", k="auto", budget=4 * (64 + 64),
                           calibrate_on=tmp_path / "d.npz")  # room for 4 copies of each (64 devices each)
    allocation = program.extra["allocation"]
    error, changed = allocation["error"], allocation["disagreement"]
    assert allocation["baseline"] == 4
    assert max(error["fc_muted"]) - min(error["fc_muted"]) < 0.01 * (error["fc_out"][0] - error["fc_out"][-1])
    assert changed["fc_out"][0] - changed["fc_out"][-1] > 5 * allocation["margin"] > 0
    assert allocation["counts"] == {"fc_muted": 1, "fc_out": 7}  # fc_muted's devices, to fc_out


def test_run_on_chip_puts_only_the_named_layers_on_the_chip(tmp_path: Path) -> None:
    import onnxruntime as ort

    onnx.save(_muted_and_linear(), tmp_path / "m.onnx")
    chip = synth_chip(arrays=8, rows=25, cols=25, stuck_high=0.02, stuck_low=0.0, seed=0)
    x = np.random.default_rng(1).standard_normal((64, 8)).astype(np.float32)
    program = leac.compile(tmp_path / "m.onnx", chip, k=2)
    (software,) = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x})
    assert run_on_chip(program, x, [])["y"] == pytest.approx(software, rel=1e-5, abs=1e-5)
    on_chip = run_on_chip(program, x, ["fc_out"], seed=3)["y"]
    assert 1e-3 < np.linalg.norm(on_chip - software) / np.linalg.norm(software) < 0.5
    muted = run_on_chip(program, x, ["fc_muted"], seed=3)["y"]
    assert np.linalg.norm(muted - software) < 0.01 * np.linalg.norm(on_chip - software)
    assert np.array_equal(on_chip, run_on_chip(program, x, ["fc_out"], seed=3)["y"])  # seeded
    with pytest.raises(UsageError, match="no crossbar layer 'mute'"):
        run_on_chip(program, x, ["mute"])
    with pytest.raises(UsageError, match="batch_size must be at least 1"):
        run_on_chip(program, x, ["fc_out"], batch_size=0)
    in_blocks = run_on_chip(program, x, ["fc_out"], seed=3, batch_size=10)["y"]  # other noise blocks, same scale
    assert 1e-3 < np.linalg.norm(in_blocks - software) / np.linalg.norm(software) < 0.5


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("auto")
    paths = {"model": folder / "mlp.onnx", "chip": folder / "chip.json", "data": folder / "d.npz"}
    onnx.save(mlp_model((4, 12, 6, 3)), paths["model"])
    save_chip(synth_chip(arrays=8, rows=25, cols=25, stuck_high=0.01, stuck_low=0.0, seed=2), paths["chip"])
    rng = np.random.default_rng(0)
    np.savez(paths["data"], x=rng.standard_normal((128, 4)).astype(np.float32), y=rng.integers(0, 3, 128))
    return paths


def test_leac_compile_k_auto_chooses_within_the_budget(files: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.leac"
    assert main(["compile", str(files["model"]), "--chip", str(files["chip"]), "-k", "auto", "--budget", "1000",
                 "--calibrate", str(files["data"]), "--time-limit", "2", "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    allocation = report["allocation"]
    assert allocation["budget"] == 1000 and allocation["devices"] <= 1000 == report["allocation"]["budget"]
    assert report["devices_used"] == allocation["devices"]
    assert [layer["alpha"] for layer in report["layers"]] == [allocation["counts"][n] for n in ("fc0", "fc1", "fc2")]
    assert 0 <= allocation["simulated_agreement"] <= 1 and 0 <= allocation["predicted_agreement"] <= 1
    program = leac.Program.load(out)
    assert program.options["k"] == ",".join(f"{n}={allocation['counts'][n]}" for n in ("fc0", "fc1", "fc2"))
    again = leac.compile(files["model"], files["chip"], k="auto", budget=1000, calibrate_on=files["data"],
                         time_limit_s=2)
    assert again.extra["allocation"]["counts"] == allocation["counts"]  # deterministic


def test_k_auto_needs_data_one_chip_and_a_budget_that_holds_a_copy(files: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    base = ["compile", str(files["model"]), "--chip", str(files["chip"]), "-k", "auto"]
    for extra, status, message in (([], 2, "needs --calibrate"),
                                   (["--calibrate", str(files["data"]), "--budget", "100"], 4, "not even one copy"),
                                   (["--calibrate", str(files["data"]), "--beta", "2"], 2, "drop --beta"),
                                   (["--calibrate", str(files["data"]), "--budget", "x"], 2, "--budget takes")):
        out = tmp_path / "bad.leac"
        assert main([*base, *extra, "-o", str(out)]) == status, extra
        assert message in capsys.readouterr().err
        assert not out.exists()
    assert main(["compile", str(files["model"]), "--chip", str(files["chip"]), "-k", "2", "--budget", "900",
                 "-o", str(tmp_path / "bad.leac")]) == 2
    assert "--budget is the device budget of -k auto" in capsys.readouterr().err
    assert main([*base, "--calibrate", str(files["data"]), "-j", "2", "-o", str(tmp_path / "out")]) == 2
    assert "give one --chip, without --jobs" in capsys.readouterr().err and not (tmp_path / "out").exists()
    other = tmp_path / "other.json"
    save_chip(synth_chip(arrays=8, rows=25, cols=25, seed=5), other)
    with pytest.raises(UsageError, match="for one chip"):
        leac.compile_many(files["model"], [files["chip"], other], tmp_path / "many", k="auto",
                          calibrate_on=files["data"], jobs=1)


def test_k_auto_refuses_the_network_ensemble_and_names_a_spec_cannot_hold(files: dict[str, Path], tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad.leac"
    assert main(["compile", str(files["model"]), "--chip", str(files["chip"]), "-k", "auto", "--ensemble",
                 "network", "--calibrate", str(files["data"]), "-o", str(out)]) == 2
    assert "--ensemble network takes one -k for the whole network" in capsys.readouterr().err and not out.exists()
    spaced = mlp_model((4, 6, 3))
    spaced.graph.node[0].name = "fc 0"  # a name `-k fc 0=2` could not hold
    onnx.save(spaced, tmp_path / "spaced.onnx")
    assert main(["compile", str(tmp_path / "spaced.onnx"), "--chip", str(files["chip"]), "-k", "auto",
                 "--calibrate", str(files["data"]), "-o", str(out)]) == 2
    assert "layer 'fc 0' has a name a count spec cannot hold" in capsys.readouterr().err and not out.exists()


def test_huge_budgets_and_errors_do_not_overflow_the_solver() -> None:
    prediction = Prediction({"a": [100.0, 50.0, 1.0], "b": [100.0, 0.5]}, {"a": [0.0] * 3, "b": [0.0] * 2})
    chosen = allocate(prediction, {"a": 10**6, "b": 3 * 10**6}, 10**12)
    assert chosen.counts == {"a": 3, "b": 2} and chosen.status == "OPTIMAL"


def test_odd_inputs_are_usage_errors(files: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from lea_compiler.layer_sizes import canonical

    for bad in ("²", "fc1=²,default=1"):
        with pytest.raises(UsageError):
            canonical(bad)
    with pytest.raises(UsageError, match="budget"):
        parse_budget("²", 1000)
    with pytest.raises(UsageError, match="cannot be written in a count spec"):
        canonical({"fc 3": 2, "default": 1})
    assert canonical(np.int64(3)) == 3 and canonical({"fc0": np.int64(2)}) == "fc0=2"
    assert main(["inspect", str(files["model"]), "-k", "auto"]) == 2
    assert "chosen by leac compile" in capsys.readouterr().err
    out = tmp_path / "p.leac"
    assert main(["compile", str(files["model"]), "--chip", str(files["chip"]), "-k", "auto", "--budget", "6000",
                 "--calibrate", str(files["data"]), "-o", str(out)]) == 2
    assert "more devices than the chip has (5000)" in capsys.readouterr().err and not out.exists()


def test_the_cli_and_the_api_write_the_same_auto_program(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli.leac"
    assert main(["compile", str(files["model"]), "--chip", str(files["chip"]), "-k", "auto", "--budget", "1200",
                 "--calibrate", str(files["data"]), "--time-limit", "2", "-o", str(out)]) == 0
    api = leac.compile(str(files["model"]), str(files["chip"]), k="auto", budget=1200,
                       calibrate_on=str(files["data"]), time_limit_s=2.0)
    assert leac.Program.load(out).to_bytes() == api.to_bytes()
    assert "budget" not in api.options and api.extra["allocation"]["budget"] == 1200
