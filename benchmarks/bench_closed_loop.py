"""Open loop against closed loop: what programming with the read-back buys, and what it costs (issue 15).

Every case compiles a model for a seeded synthetic chip (the paper's noise model: write noise N(0, 16.66 uS),
read noise U(-10, 10) uS, unless the config says otherwise), then for each programming variant and each trial
programs the chip on the simulated board (`leac.program_chip`, board seed = 1000 * chip seed + trial) and
simulates the as-programmed Program (read noise seed = trial). A variant is a strategy (open-loop or
closed-loop), the writes allowed per device (`attempts`) and the reads averaged per read-back; the reads per
inference (`--reads`) are a compile option of the config.

    python benchmarks/bench_closed_loop.py --config yinyang-ab --chips 10 --trials 3
    python benchmarks/bench_closed_loop.py --config yinyang-float --chips 10 --trials 3
    python benchmarks/bench_closed_loop.py --config cnn --chips 10 --trials 2
    python benchmarks/bench_closed_loop.py --config digits-20 --chips 10 --trials 2
    python benchmarks/bench_closed_loop.py --config pareto --chips 5 --trials 2   # + PNG of accuracy vs cost

Means and standard deviations are over all chips x trials; `within` is the fraction of programmed chips
(chip x trial) whose accuracy is within the config's gap of software. Results go to
benchmarks/results/closed_loop_<config>.json and .txt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from lea_runs import DATA, EXAMPLES, ROOT, compile_case, pyplot, run_all, save_png, with_noise

# (strategy, attempts, reads per read-back, compensation refitted, tolerance uS or None for the default 8.25)
Variant = tuple[str, int, int, bool, float | None]
OPEN, CLOSED = ("open-loop", 1, 1, False, None), ("closed-loop", 1, 1, False, None)
OPEN_FULL, CLOSED_FULL = ("open-loop", 10, 8, False, None), ("closed-loop", 10, 8, False, None)  # re-programming
CLOSED_TIGHT = ("closed-loop", 30, 16, False, 4.0)
CLOSED_REFIT = ("closed-loop", 10, 8, True, None)  # a tighter verify window, more writes and read-back reads
ALL = [OPEN, CLOSED, ("closed-loop", 1, 8, False, None), OPEN_FULL, CLOSED_FULL]
_YY = [str(DATA / "yinyang_task1_test.npz"), str(DATA / "yinyang_task2_test.npz")]
_DEAD = {"dead_rows": 0.02, "dead_cols": 0.02}  # about one dead line per array, as bench_alpha_beta.py
CONFIGS: dict[str, dict[str, Any]] = {
    # the ternary Yin-Yang network of the paper, on paper-like chips, over the (alpha, beta) grid
    "yinyang-ab": {"model": str(DATA / "yinyang_mlp.onnx"), "data": _YY, "chip": _DEAD,
                   "options": [{"k": a, "beta": b} for a, b in ((2, 2), (3, 3), (4, 4))],
                   "variants": ALL, "gap": 0.01, "breakdown": True},
    # ... and with 4 reads per inference, the lever against read noise
    "yinyang-ab-reads": {"model": str(DATA / "yinyang_mlp.onnx"), "data": _YY, "chip": _DEAD,
                         "options": [{"k": a, "beta": b, "reads": 4} for a, b in ((3, 3), (4, 4))],
                         "variants": [OPEN, CLOSED_FULL, CLOSED_TIGHT], "gap": 0.01, "breakdown": True},
    # a float Yin-Yang MLP at k = 6 on paper-like chips
    "yinyang-float": {"model": str(DATA / "yinyang_mlp_float.onnx"), "data": _YY, "chip": _DEAD,
                      "options": [{"k": 6}, {"k": 6, "reads": 4}],
                      "variants": ALL, "gap": 0.01, "ideal": True},
    # the digits CNN with float weights, paper-like chips, k = 3
    "cnn": {"model": str(EXAMPLES / "digits_cnn_float.onnx"), "data": [str(EXAMPLES / "digits_test_images.npz")],
            "calibrate": str(EXAMPLES / "digits_calib_images.npz"), "chip": {"arrays": 400},
            "options": [{"k": 3}, {"k": 3, "reads": 4}],
            "variants": [OPEN, CLOSED, CLOSED_FULL, CLOSED_REFIT], "gap": 0.02, "breakdown": True},
    # the digits MLP (ternary, the paper's architecture; README) at 20% stuck devices, k = 6, and with float weights
    **{name: {"model": str(EXAMPLES / model), "data": [str(EXAMPLES / "digits_test.npz")],
              "calibrate": str(EXAMPLES / "digits_calib.npz"),
              "chip": {"arrays": 400, "stuck_high": 0.1, "stuck_low": 0.1 / 0.9},
              "options": [{"k": 6}, {"k": 6, "reads": 4}], "variants": [OPEN, CLOSED, CLOSED_FULL, CLOSED_REFIT],
              "gap": 0.01, "breakdown": True}
       for name, model in (("digits-20", "digits_mlp.onnx"), ("digits-float-20", "digits_mlp_float.onnx"))},
    # accuracy against programming and inference cost: the front a user picks from
    "pareto": {"model": str(DATA / "yinyang_mlp_float.onnx"), "data": _YY, "chip": _DEAD,
               "options": [{"k": k, "reads": r} for k in (2, 4, 6) for r in (1, 4)],
               "variants": [OPEN, ("open-loop", 3, 4, False, None), CLOSED, ("closed-loop", 1, 8, False, None),
                            ("closed-loop", 3, 4, False, None), CLOSED_FULL],
               "gap": 0.01,
               "ideal": True},
}


def run(case: dict[str, Any]) -> dict[str, Any]:
    """Compile once, then program + simulate every variant `trials` times (module docstring)."""
    from lea_compiler.backends.sim import load_data, simulate
    from lea_compiler.errors import DoesNotFitError
    from lea_compiler.programming.board import SimulatedBoard, with_readback_reads
    from lea_compiler.programming.loop import program_chip

    start = time.perf_counter()
    try:
        chip, result, datasets = compile_case(case)
    except DoesNotFitError as exc:
        return {**case, "error": str(exc)}
    program = result.program
    out: dict[str, Any] = {**case, "devices_used": program.devices_used, "variants": []}
    if case.get("ideal"):
        out["accuracy_ideal"] = simulate(program, datasets, ideal=True).accuracy
    if case.get("breakdown"):  # what is left without write noise, and without any noise (stuck devices stay)
        out["accuracy_no_noise"] = simulate(program, datasets, chip=with_noise(chip, 0.0, 0.0)).accuracy
        out["accuracy_read_noise_only"] = float(np.mean([
            simulate(program, datasets, chip=with_noise(chip, 0.0, chip.device.read_noise_uS), seed=t).accuracy
            for t in range(case["trials"])]))
    seed = case["chip"]["seed"]
    reads = case["options"].get("reads", 1)
    calibration = load_data(case["calibrate"], program.graph).x if case.get("calibrate") else None
    for strategy, attempts, readback_reads, refit, tolerance in case["variants"]:
        accuracy, costs = [], []
        board_chip = with_readback_reads(chip, readback_reads)
        for trial in range(case["trials"]):
            done = program_chip(program, SimulatedBoard(board_chip, 1000 * seed + trial), strategy=strategy,
                                attempts=attempts, tolerance_uS=tolerance,
                                calibration=calibration if refit else None)
            report = simulate(done.program, datasets, seed=trial)
            out["software_accuracy"] = report.software_accuracy
            out["cycles_per_inference"] = report.cost.cycles_per_inference
            out["energy_pJ_per_inference"] = report.cost.energy_pJ_per_inference
            accuracy.append(report.accuracy)
            costs.append(done.cost.to_json())
        out["variants"].append({"strategy": strategy, "attempts": attempts, "readback_reads": readback_reads,
                                "refit": refit, "tolerance_uS": tolerance, "reads": reads, "accuracy": accuracy,
                                "cost": {key: float(np.mean([c[key] for c in costs])) for key in costs[0]}})
    out["seconds"] = time.perf_counter() - start
    return out


def summarise(results: list[dict[str, Any]], gap: float) -> list[dict[str, Any]]:
    """One row per (options, variant): accuracy mean, std, min, max over chips x trials, and the cost."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in results:
        if "error" in r:
            continue
        for v in r["variants"]:
            key = (json.dumps({k: x for k, x in r["options"].items() if k != "time_limit_s"}, sort_keys=True),
                   v["strategy"], v["attempts"], v["readback_reads"], v["refit"], v["tolerance_uS"], v["reads"])
            row = rows.setdefault(key, {"options": json.loads(key[0]), "strategy": v["strategy"],
                                        "attempts": v["attempts"], "readback_reads": v["readback_reads"],
                                        "refit": v["refit"], "tolerance_uS": v["tolerance_uS"],
                                        "reads": v["reads"], "accuracy": [],
                                        "no_noise": [], "read_noise_only": [],
                                        "software": r["software_accuracy"], "ideal": [], "costs": [],
                                        "cycles_per_inference": r["cycles_per_inference"],
                                        "energy_pJ_per_inference": r["energy_pJ_per_inference"]})
            row["accuracy"].extend(v["accuracy"])
            row["costs"].append(v["cost"])
            if "accuracy_ideal" in r:
                row["ideal"].append(r["accuracy_ideal"])
            if "accuracy_no_noise" in r:
                row["no_noise"].append(r["accuracy_no_noise"])
                row["read_noise_only"].append(r["accuracy_read_noise_only"])
    out = []
    for row in rows.values():
        acc = np.asarray(row.pop("accuracy"))
        costs = row.pop("costs")
        ideal = row.pop("ideal")
        no_noise, read_only = row.pop("no_noise"), row.pop("read_noise_only")
        software = row["software"]
        out.append({**row, "n": int(acc.size), "mean": float(acc.mean()), "std": float(acc.std(ddof=1)),
                    "min": float(acc.min()), "max": float(acc.max()),
                    "within_gap": float(np.mean(acc >= software - gap)) if software is not None else None,
                    "ideal_mean": float(np.mean(ideal)) if ideal else None,
                    "no_noise_mean": float(np.mean(no_noise)) if no_noise else None,
                    "read_noise_only_mean": float(np.mean(read_only)) if read_only else None,
                    "cost": {key: float(np.mean([c[key] for c in costs])) for key in costs[0]}})
    return out


def table(rows: list[dict[str, Any]], gap: float) -> str:
    lines = [f"{'options':24} {'variant (attempts, reads per read-back)':38} {'n':>3} {'mean':>6} {'std':>5} "
             f"{'min':>6} {'max':>6} "
             f"{'<=' + format(100 * gap, 'g') + 'pt':>6} {'ideal':>6} {'writes/dev':>10} {'prog. s':>8} "
             f"{'cycles':>7}"]
    for r in rows:
        variant = (f"{r['strategy']} a{r['attempts']} rb{r['readback_reads']}{' refit' if r['refit'] else ''}"
                   f"{'' if r['tolerance_uS'] is None else ' tol ' + format(r['tolerance_uS'], 'g')}")
        ideal = f"{100 * r['ideal_mean']:.1f}" if r["ideal_mean"] is not None else "-"
        within = f"{100 * r['within_gap']:.0f}%" if r["within_gap"] is not None else "-"
        lines.append(f"{json.dumps(r['options']):24} {variant:38} {r['n']:>3} {100 * r['mean']:6.1f} "
                     f"{100 * r['std']:5.1f} {100 * r['min']:6.1f} {100 * r['max']:6.1f} {within:>6} {ideal:>6} "
                     f"{r['cost']['writes_per_device']:10.2f} {r['cost']['time_s']:8.3f} "
                     f"{r['cycles_per_inference']:7.0f}")
    for r in rows:
        if r["no_noise_mean"] is not None and r["strategy"] == "open-loop" and r["attempts"] == 1:
            lines.append(f"{json.dumps(r['options'])}: without noise (stuck devices only) "
                         f"{100 * r['no_noise_mean']:.1f}%, read noise only {100 * r['read_noise_only_mean']:.1f}%")
    software = rows[0]["software"] if rows else None
    if software is not None:
        lines.append(f"software (onnxruntime): {100 * software:.1f}%")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against the two costs a user pays: programming time per device (writes, read-backs) and energy
    per inference (k, reads per inference). Colour: k; marker: strategy; hollow: 4 reads per inference. The
    line joins the points no other point beats on both accuracy and that cost (the Pareto front)."""
    plt = pyplot()
    if plt is None:
        return
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    ks = sorted({r["options"]["k"] for r in rows})
    colors = dict(zip(ks, plt.get_cmap("viridis")(np.linspace(0, 0.85, len(ks))), strict=True))
    markers = {"open-loop": "o", "closed-loop": "^"}
    costs = (("programming time per device (us)", lambda r: r["cost"]["time_s"] / max(r["cost"]["devices"], 1) * 1e6),
             ("energy per inference (pJ)", lambda r: r["energy_pJ_per_inference"]))
    for ax, (label, cost) in zip(axes, costs, strict=True):
        for r in rows:
            color = colors[r["options"]["k"]]
            ax.errorbar(cost(r), 100 * r["mean"], yerr=100 * r["std"], fmt=markers[r["strategy"]], color=color,
                        mfc="none" if r["reads"] > 1 else color, capsize=2, alpha=0.85)
        points = sorted(rows, key=lambda r: (cost(r), -r["mean"]))
        front, best = [], -1.0
        for r in points:
            if r["mean"] > best:
                front.append(r)
                best = r["mean"]
        ax.plot([cost(r) for r in front], [100 * r["mean"] for r in front], color="tab:red", lw=1, label="Pareto front")
        if rows[0]["software"] is not None:
            ax.axhline(100 * rows[0]["software"], color="k", ls="--", lw=1, label="software")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(label)
    handles = [plt.Line2D([], [], color=colors[k], marker="s", ls="", label=f"k = {k}") for k in ks]
    handles += [plt.Line2D([], [], color="gray", marker=m, ls="", label=name) for name, m in markers.items()]
    handles += [plt.Line2D([], [], color="gray", marker="o", mfc="none", ls="", label="4 reads per inference")]
    axes[0].legend(handles=handles, fontsize=7, loc="lower right")
    axes[1].legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("accuracy (%), mean +- std over chips x trials")
    fig.suptitle("float Yin-Yang MLP, paper-like chips: accuracy against cost (attempts and read-back reads vary "
                 "along x on the left)", fontsize=9)
    save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), required=True)
    parser.add_argument("--chips", type=int, default=10, help="chip seeds 0 .. N - 1 (default 10)")
    parser.add_argument("--trials", type=int, default=3, help="programming draws per chip and variant (default 3)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--time-limit", type=float, default=5.0, help="CP-SAT budget per compile (s)")
    args = parser.parse_args()
    config = CONFIGS[args.config]
    base = {key: config[key] for key in ("model", "data", "calibrate") if key in config}
    cases = [{**base, "config": args.config, "chip": {**config["chip"], "seed": seed},
              "options": {**options, "time_limit_s": args.time_limit}, "variants": config["variants"],
              "trials": args.trials, "ideal": config.get("ideal", False),
              "breakdown": config.get("breakdown", False)}
             for options in config["options"] for seed in range(args.chips)]
    start = time.perf_counter()
    results = run_all(cases, args.jobs, run)
    rows = summarise(results, config["gap"])
    text = table(rows, config["gap"])
    print(text)
    out = ROOT / "benchmarks" / "results" / f"closed_loop_{args.config}"
    command = " ".join(["python benchmarks/bench_closed_loop.py", *sys.argv[1:]])
    out.with_suffix(".txt").write_text(f"$ {command}\n{text}\n")
    out.with_suffix(".json").write_text(json.dumps({"benchmark": "closed_loop", "config": args.config,
                                                    "command": command, "chips": args.chips, "trials": args.trials,
                                                    "seconds": time.perf_counter() - start, "rows": rows,
                                                    "runs": results}, indent=1) + "\n")
    print(f"wrote {out}.json and .txt", file=sys.stderr)
    if args.config == "pareto":
        plot(rows, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
