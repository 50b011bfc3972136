"""examples/timeseries.py: its gradients against finite differences, and a short training run compiled and
simulated with ideal devices against onnxruntime (the full run's numbers: benchmarks/bench_timeseries.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lea_compiler.chip import DeviceModel, save_chip, synth_chip
from lea_compiler.cli import main
from tests.helpers import load_example

ROOT = Path(__file__).resolve().parents[1]
timeseries = load_example(ROOT / "examples" / "timeseries.py", "timeseries_example")


def test_gradients_match_finite_differences() -> None:
    x, y = timeseries.make_signals(5, seed=1)
    params = timeseries.init(3)
    _, grads = timeseries.gradients(params, x.astype(np.float64), y)
    rng = np.random.default_rng(0)
    for name, value in params.items():
        for _ in range(2):
            index = tuple(int(rng.integers(0, s)) for s in value.shape)
            old, eps = value[index], 1e-6
            value[index] = old + eps
            plus, _ = timeseries.gradients(params, x.astype(np.float64), y)
            value[index] = old - eps
            minus, _ = timeseries.gradients(params, x.astype(np.float64), y)
            value[index] = old
            assert grads[name][index] == pytest.approx((plus - minus) / (2 * eps), rel=1e-4, abs=1e-8), name


def test_a_short_run_trains_exports_and_simulates_like_onnxruntime(tmp_path, capsys) -> None:
    out = tmp_path / "ts"
    settings = timeseries.Settings(train=1000, test=300, calibration=256, epochs=12)
    summary = timeseries.run(0, out, settings)  # refuses to write unless onnxruntime equals the numpy forward pass
    assert summary["test_accuracy"] > 0.6  # 4 classes: chance is 0.25
    assert json.loads((out / "timeseries.json").read_text())["sha256"].keys() == {
        "timeseries_cnn.onnx", "timeseries_test.npz", "timeseries_calib.npz"}
    levels = tuple(round(float(v), 6) for v in np.linspace(133.0, 233.0, 256))
    chip = tmp_path / "chip.json"
    save_chip(synth_chip(arrays=16, rows=32, cols=32, stuck_high=0.02, stuck_low=0.01, seed=4,
                         device=DeviceModel(levels_uS=levels, stuck_high_uS=233.0, stuck_low_uS=133.0)), chip)
    program = tmp_path / "ts.leac"
    # without --calibrate: each input vector (each channel's, in the depthwise layer) gets its own DAC range; on
    # this short run one calibrated range per layer doubles the layer errors (0.3-1.0% against 0.15-0.5%) and
    # flips 7 of 300 near-tied signals (the full example agrees on 99.1% calibrated: bench_timeseries.py)
    assert main(["compile", str(out / "timeseries_cnn.onnx"), "--chip", str(chip), "-k", "2",
                 "-o", str(program)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(program), "--ideal", "--data", str(out / "timeseries_test.npz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["data"][0]
    assert report["software_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert report["agreement"] >= 0.99
