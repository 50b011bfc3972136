"""The 1-D depthwise-separable CNN of examples/timeseries.py on chips: software accuracy next to leac's (issue 17).

Trains the example (seed 0, its defaults) into a temporary folder, then compiles it with `--calibrate` on the
example's calibration set for

- the bundled paper-like chip (lea_compiler/data/paper_chip.json: 4 levels, the paper's write and read noise and
  stuck devices) at k = 1, 3 and 6, simulated on the 1000 test signals with `--trials` noise draws (mean and
  standard deviation of the accuracy);
- a fine-level chip (256 levels, 2% stuck high, 1% stuck low) at k = 2, simulated with `--ideal`, for the
  agreement with onnxruntime.

Run:  python benchmarks/bench_timeseries.py [--trials 20] [--out benchmarks/results/timeseries.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from lea_runs import DATA, ROOT

from lea_compiler.backends.sim import load_data, simulate, simulate_trials
from lea_compiler.chip import DeviceModel, load_chip, synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions

RESULTS = ROOT / "benchmarks" / "results"


def _example():  # examples/ is not a package
    spec = importlib.util.spec_from_file_location("timeseries_example", ROOT / "examples" / "timeseries.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS / "timeseries.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        summary = _example().run(0, folder)
        model, calib = folder / "timeseries_cnn.onnx", folder / "timeseries_calib.npz"
        print(f"software (onnxruntime) test accuracy: {100 * summary['test_accuracy']:.1f}%")
        paper = load_chip(DATA / "paper_chip.json")
        for k in (1, 3, 6):
            program = compile_model(model, paper, CompileOptions(k=k), calibrate_on=calib).program
            data = [load_data(folder / "timeseries_test.npz", program.graph)]
            report = simulate_trials(program, data, trials=args.trials, seed=0)
            accuracies = list(report.trials.accuracy) if report.trials else [report.data[0].accuracy]
            row = {"chip": "paper_chip.json", "k": k, "devices": program.devices_used,
                   "accuracy_mean": statistics.mean(accuracies),
                   "accuracy_std": statistics.pstdev(accuracies), "trials": len(accuracies),
                   "software_accuracy": report.data[0].software_accuracy}
            rows.append(row)
            print(f"paper-like chip, k = {k}: {program.devices_used} devices, accuracy "
                  f"{100 * row['accuracy_mean']:.1f} +- {100 * row['accuracy_std']:.1f}% over {len(accuracies)} "
                  f"noise draws (software {100 * summary['test_accuracy']:.1f}%)", flush=True)
        levels = tuple(round(float(v), 6) for v in np.linspace(133.0, 233.0, 256))
        fine = synth_chip(arrays=24, rows=32, cols=32, stuck_high=0.02, stuck_low=0.01, seed=4,
                          device=DeviceModel(levels_uS=levels, stuck_high_uS=233.0, stuck_low_uS=133.0))
        program = compile_model(model, fine, CompileOptions(k=2), calibrate_on=calib).program
        data = [load_data(folder / "timeseries_test.npz", program.graph)]
        ideal = simulate(program, data, ideal=True)
        rows.append({"chip": "fine 256 levels", "k": 2, "devices": program.devices_used, "ideal": True,
                     "accuracy": ideal.data[0].accuracy, "agreement": ideal.data[0].agreement})
        print(f"fine-level chip (256 levels), k = 2, --ideal: accuracy {100 * ideal.data[0].accuracy:.1f}%, "
              f"agreement with onnxruntime {100 * ideal.data[0].agreement:.1f}%")
    Path(args.out).write_text(json.dumps({"software_accuracy": summary["test_accuracy"], "example": summary,
                                          "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
