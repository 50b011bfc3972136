"""Uniform k against `-k auto` at the same devices: does the budgeted allocation buy more accuracy? (issue 16)

For each model, fault rate and budget, every seeded chip gets two Programs: `-k K` (every layer K copies) and
`-k auto --budget D` with D the devices the uniform Program uses, both with `--calibrate` (the predictor needs
the data; the stuck-device compensation uses it too). Each Program is simulated `--trials` times (read and write
noise seeds 0 .. T-1). Printed: mean +- std accuracy over chips x trials, the standard error of the mean, the
devices used, and the counts auto chose on chip 0. Uniform k = 1 and k = 6 complete the curve; auto at the
budget of k = 4 is two-thirds of uniform k = 6's devices.

    python benchmarks/bench_allocation.py --config digits --chips 3 --trials 3
    python benchmarks/bench_allocation.py --config cnn --chips 3 --trials 8
    python benchmarks/bench_allocation.py --config yinyang --chips 5 --trials 4
    python benchmarks/bench_allocation.py --plot     # accuracy against devices from the stored results

Results go to benchmarks/results/allocation_<config>.json and .txt; the plot (matplotlib, the `plot` extra) to
benchmarks/results/allocation.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from lea_runs import DATA, EXAMPLES, ROOT, compile_case, run_all

STUCK = {f"{round(100 * share)}% stuck": {"arrays": 400, "stuck_high": share / 2,
                                          "stuck_low": share / 2 / (1 - share / 2)}  # half high, half low
         for share in (0.0, 0.1, 0.2)}
_YY = {"model": str(DATA / "yinyang_mlp_float.onnx"),
       "data": [str(DATA / "yinyang_task1_test.npz"), str(DATA / "yinyang_task2_test.npz")]}
CONFIGS: dict[str, dict[str, Any]] = {
    # the Yin-Yang float MLP calibrates on unlabelled inputs of both tasks (`yinyang_calibration`)
    "yinyang": {**_YY, "chips": {"paper-like": {"dead_rows": 0.02, "dead_cols": 0.02}}, "ks": [2, 3]},
    "digits": {"model": str(EXAMPLES / "digits_mlp_float.onnx"), "data": [str(EXAMPLES / "digits_test.npz")],
               "calibrate": str(EXAMPLES / "digits_calib.npz"), "chips": STUCK, "ks": [2, 3, 4]},
    "cnn": {"model": str(EXAMPLES / "digits_cnn_float.onnx"), "data": [str(EXAMPLES / "digits_test_images.npz")],
            "calibrate": str(EXAMPLES / "digits_calib_images.npz"), "chips": STUCK, "ks": [2, 3, 4]},
}


def run(case: dict[str, Any]) -> dict[str, Any]:
    """Compile case["options"] for the chip and simulate it case["trials"] times."""
    from lea_compiler.backends.sim import simulate
    from lea_compiler.errors import DoesNotFitError

    start = time.perf_counter()
    try:
        _, result, datasets = compile_case(case)
    except DoesNotFitError as exc:
        return {**case, "error": str(exc)}
    program = result.program
    accuracy = [simulate(program, datasets, seed=t).accuracy for t in range(case["trials"])]
    return {**case, "accuracy": accuracy, "devices_used": program.devices_used,
            "counts": {layer.name: layer.alpha for layer in program.layers},
            "software_accuracy": simulate(program, datasets, seed=0, ideal=True).software_accuracy,
            "allocation": program.extra.get("allocation"), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS))
    parser.add_argument("--chips", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--time-limit", type=float, default=5.0)
    parser.add_argument("--plot", action="store_true", help="draw allocation.png from the stored results")
    args = parser.parse_args()
    if args.plot:
        plot()
        return
    if args.config is None:
        parser.error("give --config (or --plot)")
    config = CONFIGS[args.config]
    scratch = tempfile.TemporaryDirectory()
    if "calibrate" not in config:
        config = {**config, "calibrate": yinyang_calibration(Path(scratch.name) / "yinyang_calib.npz")}
    base = {key: config[key] for key in ("model", "data", "calibrate")}
    per_copy = _per_copy(config)
    cases = []
    for chip_label, chip in config["chips"].items():
        for seed in range(args.chips):
            common = {**base, "chip": {**chip, "seed": seed}, "chip_label": chip_label, "trials": args.trials}
            for k in sorted({1, *config["ks"], 6}):
                cases.append({**common, "label": f"uniform k={k}", "kind": "uniform", "budget_k": k,
                              "options": {"k": k, "time_limit_s": args.time_limit}})
            for k in config["ks"]:
                cases.append({**common, "label": f"auto at k={k} devices", "kind": "auto", "budget_k": k,
                              "options": {"k": "auto", "budget": k * per_copy, "time_limit_s": args.time_limit}})
    start = time.perf_counter()
    results = run_all(cases, args.jobs, run)
    lines = [f"{'chip':12} {'Programs':22} {'n':>3} {'mean':>6} {'std':>5} {'sem':>5} {'devices':>8}  counts (chip 0)"]
    rows = []
    for chip_label in config["chips"]:
        for label in dict.fromkeys(r["label"] for r in results):
            runs = [r for r in results if r["label"] == label and r["chip_label"] == chip_label and "accuracy" in r]
            if not runs:
                continue
            acc = np.array([a for r in runs for a in r["accuracy"]])
            devices = float(np.mean([r["devices_used"] for r in runs]))
            counts = ",".join(f"{n}={c}" for n, c in runs[0]["counts"].items())
            std = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
            rows.append({"chip": chip_label, "programs": label, "kind": runs[0]["kind"],
                         "budget_k": runs[0]["budget_k"], "n": int(acc.size), "mean": float(acc.mean()), "std": std,
                         "sem": std / np.sqrt(acc.size), "devices": devices, "counts_chip0": runs[0]["counts"]})
            lines.append(f"{chip_label:12} {label:22} {acc.size:>3} {100 * acc.mean():6.1f} {100 * std:5.1f} "
                         f"{100 * rows[-1]['sem']:5.1f} {devices:8.0f}  {counts}")
    software = next((r["software_accuracy"] for r in results if r.get("software_accuracy") is not None), None)
    if software is not None:
        lines.append(f"software (onnxruntime): {100 * software:.1f}%; one copy of every layer: {per_copy} devices")
    seconds = [r["seconds"] for r in results if r.get("kind") == "auto" and "seconds" in r]
    if seconds:
        lines.append(f"-k auto compile + simulation: median {np.median(seconds):.1f} s per Program, 1 thread")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / f"allocation_{args.config}"
    command = " ".join(["python benchmarks/bench_allocation.py", *sys.argv[1:]])
    out.with_suffix(".txt").write_text(f"$ {command}\n{text}\n")
    out.with_suffix(".json").write_text(json.dumps({"benchmark": "allocation", "config": args.config,
                                                    "command": command, "seconds": time.perf_counter() - start,
                                                    "rows": rows, "runs": results}, indent=1) + "\n")
    print(f"wrote {out}.json and .txt", file=sys.stderr)


def plot() -> None:
    """Accuracy against devices, uniform k and -k auto, one panel per model and chip, from the stored results."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = ROOT / "benchmarks" / "results"
    panels = []
    for config in ("digits", "cnn", "yinyang"):
        path = results / f"allocation_{config}.json"
        if path.exists():
            rows = json.loads(path.read_text())["rows"]
            panels += [(config, chip, [r for r in rows if r["chip"] == chip]) for chip in dict.fromkeys(
                r["chip"] for r in rows)]
    names = {"digits": "digits MLP", "cnn": "digits CNN", "yinyang": "Yin-Yang MLP"}
    columns = 3
    figure, axes = plt.subplots((len(panels) + columns - 1) // columns, columns, squeeze=False,
                                figsize=(4.2 * columns, 3.4 * ((len(panels) + columns - 1) // columns)))
    for axis, (config, chip, rows) in zip(axes.flat, panels, strict=False):
        for kind, style, name in (("uniform", "o-", "uniform -k K"), ("auto", "s--", "-k auto at K's devices")):
            points = sorted((r["devices"], 100 * r["mean"], 100 * r["sem"], r["budget_k"]) for r in rows
                            if r["kind"] == kind)
            if points:
                x, y, err, ks = zip(*points, strict=True)
                axis.errorbar(x, y, yerr=err, fmt=style, capsize=3, label=name)
                if kind == "uniform":
                    for xi, yi, k in zip(x, y, ks, strict=True):
                        axis.annotate(f"k={k}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
        axis.set_title(f"{names[config]}, {chip}", fontsize=10)
        axis.set_xlabel("devices used")
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
        axis.set_ylabel("test accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    figure.suptitle("Accuracy against devices: mean and its standard error over chips x noise draws", fontsize=11)
    figure.tight_layout()
    figure.savefig(results / "allocation.png", dpi=110)
    print(f"wrote {results / 'allocation.png'}", file=sys.stderr)


def yinyang_calibration(path: Path, samples: int = 2000, seed: int = 0) -> str:
    """Unlabelled Yin-Yang inputs for calibration: uniform points of the square as task 1 features
    (x, y, 1-x, 1-y) and task 2 features (x+1, y+1, 1-x, 1-y), half each (the labels are zeros, unused). A
    calibration on task 1 alone would fit the input range to [0, 1] and clip task 2's inputs."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, (samples, 2))
    task1 = np.hstack([p, 1 - p])
    task2 = np.hstack([p + 1, 1 - p])
    x = np.vstack([task1[: samples // 2], task2[samples // 2:]]).astype(np.float32)
    np.savez(path, x=x, y=np.zeros(len(x), dtype=np.int64))
    return str(path)


def _per_copy(config: dict[str, Any]) -> int:
    """Devices of one copy of every crossbar layer (digital bias), as leac inspect counts them."""
    from lea_compiler.analysis import crossbar_layers, total_devices
    from lea_compiler.onnx_frontend import load_model

    return total_devices(crossbar_layers(load_model(config["model"])), 1)


if __name__ == "__main__":
    main()
