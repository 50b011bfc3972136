"""PyTorch-exported CNNs on chips: software accuracy next to leac's at k = 1, 3, 6 (issue 17).

Reads the folder written by examples/torch_models.py (which needs torch, in its own environment; this benchmark
does not), i.e. the depthwise-separable 2-D CNN on scikit-learn's digits and the 1-D CNN on the synthetic
waveforms of examples/timeseries.py, with their test and calibration sets. For each model:

- paper-like chips: `synth_chip` defaults (25 x 25 arrays, 2.5% stuck high, 0.5% stuck low, the default
  device: 4 levels with the seed paper's write and read noise) with `--arrays` arrays (64: the 1-D CNN needs
  18,144 devices at k = 6, more than 32 arrays hold), chip seeds 0..`--chips`-1; compiled at k = 1, 3, 6 with
  `--calibrate` on the model's calibration set, each Program simulated on the whole test set with `--trials`
  noise seeds; accuracy mean +- standard deviation over all chips and noise draws;
- a fine-level chip (256 levels over 133-233 uS, 24 arrays of 32 x 32, 2% stuck high and 1% stuck low at the
  ends of the range, as in bench_timeseries.py) at k = 2 with `--calibrate`, simulated with `--ideal`: the
  agreement of leac's top-1 with onnxruntime's (goal >= 99%).

Run:
    /tmp/venv-torch/bin/python examples/torch_models.py --seed 0 --out /tmp/torch_examples
    python benchmarks/bench_torch_examples.py --folder /tmp/torch_examples [--chips 3] [--trials 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from lea_runs import ROOT, compile_case, pct, run_all

RESULTS = ROOT / "benchmarks" / "results"
MODELS = {"torch_digits_dwsep.onnx": "digits", "torch_timeseries_cnn.onnx": "timeseries"}
KS = (1, 3, 6)
FINE_LEVELS = tuple(round(float(v), 6) for v in np.linspace(133.0, 233.0, 256))
FINE_CHIP = {"arrays": 24, "rows": 32, "cols": 32, "stuck_high": 0.02, "stuck_low": 0.01, "seed": 4}


def run(case: dict[str, Any]) -> dict[str, Any]:
    """Compile once for the case's chip, then simulate: every noise seed, or one `--ideal` run on a fine chip."""
    from lea_compiler.backends.sim import load_data, simulate
    from lea_compiler.chip import DeviceModel, synth_chip
    from lea_compiler.compiler import compile_model
    from lea_compiler.pipeline import CompileOptions

    spec = dict(case)
    if case.get("ideal"):  # compile_case builds synth_chip(**chip); the fine chip also needs its device model
        chip = synth_chip(**case["chip"], device=DeviceModel(levels_uS=FINE_LEVELS, stuck_high_uS=233.0,
                                                               stuck_low_uS=133.0))
        result = compile_model(case["model"], chip, CompileOptions(**case["options"]), calibrate_on=case["calibrate"])
        datasets = [load_data(path, result.program.graph) for path in case["data"]]
        report = simulate(result.program, datasets, ideal=True)
        return {**spec, "devices_used": result.program.devices_used, "accuracy": report.accuracy,
                "software_accuracy": report.software_accuracy, "agreement": report.data[0].agreement}
    _, result, datasets = compile_case(case)
    reports = [simulate(result.program, datasets, seed=s) for s in case["sim_seeds"]]
    return {**spec, "devices_used": result.program.devices_used, "accuracies": [r.accuracy for r in reports],
            "software_accuracy": reports[0].software_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="the --out folder of examples/torch_models.py")
    parser.add_argument("--chips", type=int, default=3, help="paper-like chips (seeds 0..chips-1)")
    parser.add_argument("--trials", type=int, default=10, help="noise seeds per compiled Program")
    parser.add_argument("--arrays", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS / "torch_examples.json")
    args = parser.parse_args()
    cases: list[dict[str, Any]] = []
    for name, task in MODELS.items():
        files = {"model": str(args.folder / name), "data": [str(args.folder / f"torch_{task}_test.npz")],
                 "calibrate": str(args.folder / f"torch_{task}_calib.npz")}
        cases += [{**files, "chip": {"arrays": args.arrays, "seed": chip}, "options": {"k": k},
                   "sim_seeds": list(range(args.trials))} for k in KS for chip in range(args.chips)]
        cases.append({**files, "chip": FINE_CHIP, "options": {"k": 2}, "ideal": True})
    results = run_all(cases, args.jobs, run)
    summary = json.loads((args.folder / "torch_models.json").read_text())
    lines = [f"torch {summary['torch']}, seed {summary['seed']}; paper-like chips: synth_chip defaults with "
             f"{args.arrays} arrays, {args.chips} chip seeds x {args.trials} noise seeds, --calibrate", ""]
    rows = []
    for name in MODELS:
        mine = [r for r in results if r["model"].endswith(name)]
        software = mine[0]["software_accuracy"]
        lines.append(f"{name}: software (onnxruntime) {pct(software)}% on {summary['models'][name]['test_samples']} "
                     "test samples")
        for k in KS:
            runs = [r for r in mine if not r.get("ideal") and r["options"]["k"] == k]
            acc = [a for r in runs for a in r["accuracies"]]
            row = {"model": name, "k": k, "devices": runs[0]["devices_used"], "software_accuracy": software,
                   "accuracy_mean": statistics.mean(acc), "accuracy_std": statistics.stdev(acc) if len(acc) > 1
                   else 0.0, "runs": len(acc)}
            rows.append(row)
            lines.append(f"  paper-like, k = {k}: {row['devices']} devices, leac {pct(row['accuracy_mean'])} +- "
                         f"{pct(row['accuracy_std'])}% ({len(acc)} runs)")
        fine = next(r for r in mine if r.get("ideal"))
        rows.append({"model": name, "k": 2, "chip": "fine 256 levels", "ideal": True, "devices": fine["devices_used"],
                     "software_accuracy": software, "accuracy": fine["accuracy"], "agreement": fine["agreement"]})
        lines.append(f"  fine-level (256 levels), k = 2, --ideal: {fine['devices_used']} devices, leac "
                     f"{pct(fine['accuracy'])}%, agreement with onnxruntime {pct(fine['agreement'])}%")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"example": summary, "arrays": args.arrays, "chips": args.chips,
                                    "trials": args.trials, "fine_chip": {**FINE_CHIP, "levels": len(FINE_LEVELS)},
                                    "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".txt").write_text(text)
    print(f"wrote {args.out} and {args.out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
