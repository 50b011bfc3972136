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
from lea_compiler.allocate import Prediction, allocate, parse_budget, predict
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from tests.helpers import make_model, mlp_model


def _brute_force(prediction: Prediction, devices: dict[str, int], budget: int) -> float:
    names = list(prediction.error)
    best = np.inf
    for ks in itertools.product(*(range(1, len(prediction.error[n]) + 1) for n in names)):
        if sum(devices[n] * k for n, k in zip(names, ks, strict=True)) <= budget:
            best = min(best, sum(round(prediction.error[n][k - 1] * 10**9) for n, k in zip(names, ks, strict=True)))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_the_allocation_is_optimal_for_its_predictor(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layers = [f"l{i}" for i in range(int(rng.integers(2, 5)))]
    error = {n: list(np.sort(rng.uniform(0, 1, int(rng.integers(1, 6))))[::-1]) for n in layers}
    prediction = Prediction(error, {n: [0.0] * len(v) for n, v in error.items()})
    devices = {n: int(rng.integers(10, 100)) for n in layers}
    budget = sum(devices.values()) + int(rng.integers(0, 300))
    chosen = allocate(prediction, devices, budget)
    assert chosen.devices <= budget and chosen.devices == sum(devices[n] * chosen.counts[n] for n in layers)
    assert sum(round(error[n][chosen.counts[n] - 1] * 10**9) for n in layers) == _brute_force(prediction, devices,
                                                                                               budget)


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


def _saturating_then_linear() -> onnx.ModelProto:
    """fc_sat drives a Tanh deep into saturation (its noise cannot reach the output); fc_out is linear to it."""
    rng = np.random.default_rng(0)
    w1 = np.full((8, 8), 20.0, dtype=np.float32)  # with inputs in [0.5, 1]: pre-activations >= 80
    w2 = rng.standard_normal((8, 4)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="fc_sat"),
             helper.make_node("Tanh", ["h"], ["a"], name="tanh"),
             helper.make_node("MatMul", ["a", "W2"], ["y"], name="fc_out")]
    return make_model(nodes, {"x": (np.float32, ["N", 8])}, ["y"], {"W1": w1, "W2": w2})


def test_the_copies_go_where_the_noise_reaches_the_outputs() -> None:
    graph = Canonicalize().run(import_model(_saturating_then_linear()))
    x = np.random.default_rng(1).uniform(0.5, 1.0, (200, 8)).astype(np.float32)
    prediction = predict(graph, x, levels_uS=(133.0, 167.0, 200.0, 233.0), encoding="joint", per_layer=False,
                         bias_row=False, write_noise_uS=16.66, read_noise_uS=10.0, reads=1,
                         max_k={"fc_sat": 4, "fc_out": 4})
    assert prediction.error["fc_sat"][0] < 0.01 * prediction.error["fc_out"][0]  # saturation hides its noise
    assert prediction.error["fc_out"][3] < prediction.error["fc_out"][0]
    chosen = allocate(prediction, {"fc_sat": 128, "fc_out": 64}, 4 * (128 + 64))  # room for 4 copies of each
    assert chosen.counts["fc_sat"] == 1 and chosen.counts["fc_out"] >= 3


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
    other = tmp_path / "other.json"
    save_chip(synth_chip(arrays=8, rows=25, cols=25, seed=5), other)
    with pytest.raises(UsageError, match="for one chip"):
        leac.compile_many(files["model"], [files["chip"], other], tmp_path / "many", k="auto",
                          calibrate_on=files["data"], jobs=1)


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
