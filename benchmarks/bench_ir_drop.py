"""IR drop (issue 21): the solve's error and cost, the simulator's slowdown, and the digits MLP and CNN on 128 x 128
arrays with line resistance, with and without IR-drop-aware placement and compensation.

1. Method: `irdrop.region_map` (exact block elimination, docs/simulator.md) against a dense nodal solve
   (`irdrop.nodal_currents`, numpy.linalg.solve of all 2 rows cols nodes) on random regions up to 24 x 24 at
   random places of a 128-row array; and the placement's term (`placement.costs.ir_drop_costs`, the first order
   saturated at the region's conductance)
   against the exact current loss of a 128 x 128 region.
2. Cost: seconds (wall and CPU) and peak memory of `region_map` per region of 32 x 32 to 256 x 256 (median of 3),
   and the seconds of the dense solve.
3. Slowdown: `simulate` of the same Program on the chip without and with line resistance (median of 3).
4. Accuracy: chips `synth_chip(arrays=16, rows=128, cols=128, seed=s)` (2.5% stuck high, 0.5% stuck low, the
   paper's levels 133-233 uS and noise), k = 3. "unaware": compiled for the chip without lines, simulated on
   the chip with lines; "aware": compiled for the chip with lines (placement costs the expected IR drop; with
   --calibrate the compensation is fitted against the IR-drop-aware matrices). Each with and without
   --calibrate, so "no calibration" isolates the placement. Word- and bit-line segments of R ohms each, no
   driver or sense resistance. Every Program is simulated with --trials seeds; means and spreads over
   chips x trials.

5. `--clean`: instead of the above, each model on a chip without stuck devices or noise (calibrated, k = 3), with
   ideal lines and with R ohm lines, aware: what IR drop leaves when nothing else competes with it in placement.

    python benchmarks/bench_ir_drop.py --chips 3 --trials 3
    python benchmarks/bench_ir_drop.py --clean --ohms 1.0 2.5

Results go to benchmarks/results/ir_drop.json and .txt (ir_drop_clean.json and .txt with --clean).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lea_compiler.backends.sim import load_data, simulate  # noqa: E402
from lea_compiler.chip import Chip, LineModel, synth_chip  # noqa: E402
from lea_compiler.compiler import compile_model  # noqa: E402
from lea_compiler.irdrop import lead_ohm, nodal_currents, read_maps, region_map  # noqa: E402
from lea_compiler.options import CompileOptions  # noqa: E402
from lea_compiler.placement.costs import ir_drop_costs  # noqa: E402
from lea_compiler.schedule.plan import schedule_of  # noqa: E402

DATA = ROOT / "examples" / "data"
MODELS = {
    "mlp": (DATA / "digits_mlp_float.onnx", DATA / "digits_test.npz", DATA / "digits_calib.npz"),
    "cnn": (DATA / "digits_cnn_float.onnx", DATA / "digits_test_images.npz", DATA / "digits_calib_images.npz"),
}
LEVELS = (133.0, 233.0)


def with_lines(chip: Chip, ohm: float) -> Chip:
    return dataclasses.replace(chip, periphery=dataclasses.replace(chip.periphery, lines=LineModel(ohm, ohm)))


def method_error(seed: int = 0) -> dict[str, Any]:
    """Max relative error of V @ region_map against the dense nodal solve, and the placement's term (saturated
    first order) against the exact loss."""
    rng = np.random.default_rng(seed)
    rows_out = []
    for size in (2, 4, 8, 16, 24):
        for ohm in (1.0, 2.5):
            worst = 0.0
            for _ in range(4):
                g = rng.uniform(*LEVELS, size=(size, size))
                row, col = int(rng.integers(0, 128 - size + 1)), int(rng.integers(0, 128 - size + 1))
                lines = LineModel(ohm, ohm)
                v = rng.uniform(-0.2, 0.2, size=(8, size))
                r_in, r_out = lead_ohm(lines, row=row, col=col, rows=size, array_rows=128)
                exact = nodal_currents(g, v, ohm, ohm, r_in, r_out)
                got = v @ region_map(g, lines, row=row, col=col, array_rows=128)
                worst = max(worst, float(np.abs(got - exact).max() / np.abs(exact).max()))
            rows_out.append({"size": size, "ohm": ohm, "max_relative_error": worst})
    first_order = []
    for ohm in (0.01, 0.1, 1.0, 2.5):
        g = rng.uniform(*LEVELS, size=(128, 128))
        exact_loss = float(g.sum() - region_map(g, LineModel(ohm, ohm), row=0, col=0, array_rows=128).sum())
        term = float(ir_drop_costs(g[None], LineModel(ohm, ohm), 128, 128)[0, 0, 0])
        first_order.append({"ohm": ohm, "exact_loss_uS": exact_loss, "placement_term_uS": term,
                            "loss_share": exact_loss / float(g.sum())})
    return {"solve": rows_out, "placement_term": first_order}


def method_cost() -> dict[str, Any]:
    """Wall and CPU seconds (median of 3) and the peak of numpy's allocations (tracemalloc) of one region_map."""
    rng = np.random.default_rng(1)
    out = []
    for size in (32, 64, 128, 256):
        g = rng.uniform(*LEVELS, size=(size, size))
        times, cpu = [], []
        tracemalloc.start()
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            region_map(g, LineModel(2.5, 2.5), row=0, col=0, array_rows=256)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out.append({"size": size, "region_map_s": float(np.median(times)), "region_map_cpu_s": float(np.median(cpu)),
                    "peak_MB": peak / 1e6})
    g = rng.uniform(*LEVELS, size=(24, 24))
    start = time.perf_counter()
    nodal_currents(g, np.ones((1, 24)), 2.5, 2.5, 2.5, 2.5)
    out.append({"size": 24, "dense_nodal_s": time.perf_counter() - start})
    return {"per_region": out}


def slowdown(model: str) -> dict[str, Any]:
    onnx_path, data, _ = MODELS[model]
    chip = synth_chip(arrays=16, rows=128, cols=128, seed=0)
    program = compile_model(onnx_path, chip, CompileOptions(k=3, time_limit_s=5.0)).program
    datasets = [load_data(data, program.graph)]
    lined = with_lines(chip, 2.5)
    seconds = {}
    for label, target in (("ideal lines", chip), ("2.5 ohm lines", lined)):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            simulate(program, datasets, seed=0, chip=target)
            times.append(time.perf_counter() - start)
        seconds[label] = float(np.median(times))
    schedule = schedule_of(program)
    regions = sum(len(plan.reads) for plan in schedule.layers.values())
    start = time.perf_counter()
    for plan in schedule.layers.values():
        read_maps(plan, [np.full((read.rows, read.cols), 200.0) for read, _ in plan.reads], lined)
    return {"model": model, "samples": int(sum(len(d.y) for d in datasets)), "regions": regions,
            "seconds": seconds, "slowdown": seconds["2.5 ohm lines"] / seconds["ideal lines"],
            "read_maps_s": time.perf_counter() - start}


def accuracy(model: str, ohms: list[float], chips: int, trials: int, time_limit: float) -> list[dict[str, Any]]:
    onnx_path, data, calibration = MODELS[model]
    runs = []
    for seed in range(chips):
        chip = synth_chip(arrays=16, rows=128, cols=128, seed=seed)
        for calibrate in (False, True):
            options = CompileOptions(k=3, time_limit_s=time_limit)
            cal = calibration if calibrate else None
            start = time.perf_counter()
            unaware = compile_model(onnx_path, chip, options, calibrate_on=cal).program
            unaware_s = time.perf_counter() - start
            datasets = [load_data(data, unaware.graph)]
            acc = [simulate(unaware, datasets, seed=t, chip=chip).accuracy for t in range(trials)]
            runs.append({"model": model, "chip": seed, "calibrate": calibrate, "ohm": 0.0, "placement": "unaware",
                         "accuracy": acc, "compile_s": unaware_s})
            for ohm in ohms:
                lined = with_lines(chip, ohm)
                acc = [simulate(unaware, datasets, seed=t, chip=lined).accuracy for t in range(trials)]
                runs.append({"model": model, "chip": seed, "calibrate": calibrate, "ohm": ohm,
                             "placement": "unaware", "accuracy": acc, "compile_s": unaware_s})
                start = time.perf_counter()
                aware = compile_model(onnx_path, lined, options, calibrate_on=cal).program
                aware_s = time.perf_counter() - start
                acc = [simulate(aware, datasets, seed=t, chip=lined).accuracy for t in range(trials)]
                runs.append({"model": model, "chip": seed, "calibrate": calibrate, "ohm": ohm, "placement": "aware",
                             "accuracy": acc, "compile_s": aware_s})
                print(f"{model} chip {seed} cal={calibrate} {ohm} ohm: unaware "
                      f"{100 * np.mean(runs[-2]['accuracy']):.1f}%, aware {100 * np.mean(acc):.1f}%",
                      file=sys.stderr)
    return runs


def clean(models: list[str], ohms: list[float], time_limit: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Accuracy and layer errors on a chip without stuck devices or noise, ideal lines and R ohm lines (aware)."""
    rows, lines = [], ["chip without stuck devices or noise (16 arrays of 128 x 128), k = 3, --calibrate, aware:"]
    for model in models:
        onnx_path, data, calibration = MODELS[model]
        chip = synth_chip(arrays=16, rows=128, cols=128, stuck_high=0.0, stuck_low=0.0, seed=0)
        chip = dataclasses.replace(chip, device=dataclasses.replace(chip.device, write_noise_uS=0.0, read_noise_uS=0.0))
        for ohm in [0.0, *ohms]:
            lined = with_lines(chip, ohm)
            program = compile_model(onnx_path, lined, CompileOptions(k=3, time_limit_s=time_limit),
                                    calibrate_on=calibration).program
            report = simulate(program, [load_data(data, program.graph)], seed=0, chip=lined)
            rows.append({"model": model, "ohm": ohm, "accuracy": report.accuracy, "layer_error": report.layer_error})
            errors = ", ".join(f"{name} {error:.3f}" for name, error in report.layer_error.items())
            lines.append(f"  {model:4} {ohm:4.1f} ohm: {100 * report.accuracy:5.1f}%  layer errors {errors}")
    return rows, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chips", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--ohms", type=float, nargs="+", default=[0.5, 1.0, 2.5])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=sorted(MODELS))
    parser.add_argument("--time-limit", type=float, default=5.0)
    parser.add_argument("--clean", action="store_true", help="only the chip without stuck devices or noise")
    args = parser.parse_args()
    start = time.perf_counter()
    command = " ".join(["python benchmarks/bench_ir_drop.py", *sys.argv[1:]])
    if args.clean:
        rows, lines = clean(args.models, args.ohms, args.time_limit)
        text = "\n".join(lines)
        print(text)
        out = ROOT / "benchmarks" / "results" / "ir_drop_clean"
        out.with_suffix(".txt").write_text(f"$ {command}\n{text}\n")
        out.with_suffix(".json").write_text(json.dumps({"benchmark": "ir_drop_clean", "command": command,
                                                        "rows": rows}, indent=1) + "\n")
        return
    error = method_error()
    cost = method_cost()
    slow = [slowdown(m) for m in args.models]
    runs = [r for m in args.models for r in accuracy(m, args.ohms, args.chips, args.trials, args.time_limit)]
    lines = ["method: exact block elimination vs dense nodal solve (max |error| / max |current|, 8 input vectors x 4 "
             "regions per row)"]
    lines += [f"  {e['size']:3d} x {e['size']:<3d} {e['ohm']:4.1f} ohm: {e['max_relative_error']:.1e}"
              for e in error["solve"]]
    lines.append("placement term (first order, saturated at sum G) vs exact current loss, 128 x 128 region at row 0, "
                 "col 0 of 128 rows:")
    lines += [f"  {p['ohm']:5.2f} ohm: exact {p['exact_loss_uS']:9.1f} uS ({100 * p['loss_share']:.1f}% of sum G), "
              f"placement term {p['placement_term_uS']:9.1f} uS" for p in error["placement_term"]]
    lines.append("cost per region (region_map, median of 3; wall s, CPU s, peak MB): " + ", ".join(
        f"{c['size']} x {c['size']} {c['region_map_s']:.3f} s, {c['region_map_cpu_s']:.3f} s CPU, {c['peak_MB']:.1f} MB"
        for c in cost["per_region"] if "region_map_s" in c)
        + "; dense nodal solve of 24 x 24: " + ", ".join(
        f"{c['dense_nodal_s']:.3f} s" for c in cost["per_region"] if "dense_nodal_s" in c))
    for s in slow:
        lines.append(f"simulator, {s['model']} ({s['samples']} samples, {s['regions']} regions): "
                     f"{s['seconds']['ideal lines']:.2f} s with ideal lines, {s['seconds']['2.5 ohm lines']:.2f} s "
                     f"with 2.5 ohm lines ({s['slowdown']:.1f}x; the read maps {s['read_maps_s']:.2f} s)")
    lines.append(f"accuracy, 16 arrays of 128 x 128, k = 3, {args.chips} chips x {args.trials} trials "
                 "(mean +- std, %); segments of R ohms on word and bit lines:")
    lines.append(f"  {'model':5} {'calibrate':9} {'R':>5} {'unaware':>13} {'aware':>13} "
                 f"{'compile s (unaware/aware)':>26}")
    rows = []
    for model in args.models:
        for calibrate in (False, True):
            for ohm in [0.0, *args.ohms]:
                picked = {p: [r for r in runs if r["model"] == model and r["calibrate"] == calibrate
                              and r["ohm"] == ohm and r["placement"] == p] for p in ("unaware", "aware")}
                stats = {}
                for p, found in picked.items():
                    if found:
                        acc = np.array([a for r in found for a in r["accuracy"]])
                        stats[p] = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
                                    "n": int(acc.size), "compile_s": float(np.median([r["compile_s"] for r in found]))}
                rows.append({"model": model, "calibrate": calibrate, "ohm": ohm, **stats})

                def show(p: str, s: dict[str, Any] = stats) -> str:
                    return f"{100 * s[p]['mean']:5.1f} +- {100 * s[p]['std']:4.1f}" if p in s else f"{'-':>13}"

                times = "/".join(f"{stats[p]['compile_s']:.1f}" for p in ("unaware", "aware") if p in stats)
                lines.append(f"  {model:5} {'yes' if calibrate else 'no':9} {ohm:5.2f} {show('unaware'):>13} "
                             f"{show('aware'):>13} {times:>26}")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "ir_drop"
    out.with_suffix(".txt").write_text(f"$ {command}\n{text}\n")
    out.with_suffix(".json").write_text(json.dumps({
        "benchmark": "ir_drop", "command": command, "seconds": time.perf_counter() - start, "method_error": error,
        "method_cost": cost, "slowdown": slow, "rows": rows, "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}.json and .txt", file=sys.stderr)


if __name__ == "__main__":
    main()
