"""Whole-compile benchmarks for `leac compile` (issue: compile).

(a) The seed paper's Yin-Yang 4-12-6-3 MLP on synthetic paper-like chips
    (32 arrays of 25 x 25, 2.5% stuck-high, 0.5% stuck-low) with k = 4, over
    20 chip seeds: time of the whole `leac compile` process, the solver's
    status, and the mapping error of cpsat vs greedy vs random.
(b) Scale: an MLP 1024-1024-1024-10 (random weights) on a synthetic chip of
    1024 arrays of 128 x 128 with 5% stuck devices (half high, half low),
    k = 3: whole-process time, peak memory (maxrss of the child process),
    status and gap. A small table of how compile time grows with the model
    and the chip.

Run:  python benchmarks/bench_compile.py [--quick] [--out benchmarks/results/compile.json]

Every compile runs as its own `leac compile` process (what a user times),
with OMP/OPENBLAS threads set to 1 (faster than threads at these sizes on 2
cores). Seeds are fixed; the numbers vary with the machine only in time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from models import save_tanh_mlp

from lea_compiler.chip import save_chip, synth_chip

ROOT = Path(__file__).resolve().parents[1]
YINYANG = ROOT / "lea_compiler" / "data" / "yinyang_mlp.onnx"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mlp_onnx(sizes: list[int], path: Path, seed: int = 0) -> None:
    """A tanh MLP with random weights and biases, like the scale benchmark's 1024-1024-1024-10."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for m, n in zip(sizes[:-1], sizes[1:], strict=True):
        weights.append((rng.standard_normal((n, m)) / np.sqrt(m)).T)
        biases.append(rng.standard_normal(n) * 0.1)
    save_tanh_mlp(path, weights, biases)


def leac_compile(model: Path, chip: Path, out: Path, *args: str) -> dict:
    """Run `leac compile --json` as a process; return its report plus wall time and its peak memory."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "lea_compiler", "compile", str(model), "--chip", str(chip), "-o", str(out),
             "--json", *args],
            stdout=stdout, stderr=stderr, env=ENV,
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage: its peak RSS
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"leac compile failed ({child.returncode}): {stderr.read().decode()}")
        report = json.loads(stdout.read())
    report["wall_seconds"] = wall
    report["peak_rss_MiB"] = usage.ru_maxrss / 1024
    return report


def yinyang(seeds: int, work: Path) -> dict:
    rows = []
    for seed in range(seeds):
        chip = work / f"yy_chip{seed}.json"
        save_chip(synth_chip(seed=seed), chip)
        result = {"seed": seed}
        for placer in ("cpsat", "greedy", "random"):
            report = leac_compile(YINYANG, chip, work / f"yy{seed}_{placer}.leac", "-k", "4", "--placer", placer)
            result[placer] = {
                "mapping_error_uS": report["mapping_error_uS"],
                "status": report["solver_status"],
                "gap": report["optimality_gap"],
                "wall_seconds": report["wall_seconds"],
                "compile_seconds": report["compile_seconds"],
            }
        rows.append(result)
        c = result["cpsat"]
        print(f"  seed {seed:2d}: cpsat {c['status']:<8} {c['mapping_error_uS']:8.1f} uS in {c['wall_seconds']:.2f} s"
              f" (compile {c['compile_seconds']:.2f} s); greedy {result['greedy']['mapping_error_uS']:8.1f} uS; "
              f"random {result['random']['mapping_error_uS']:8.1f} uS", flush=True)
    summary = {
        "proved_optimal": sum(r["cpsat"]["status"] == "OPTIMAL" for r in rows),
        "seeds": seeds,
        "max_wall_seconds": max(r["cpsat"]["wall_seconds"] for r in rows),
        "median_wall_seconds": statistics.median(r["cpsat"]["wall_seconds"] for r in rows),
    }
    for placer in ("cpsat", "greedy", "random"):
        errors = [r[placer]["mapping_error_uS"] for r in rows]
        summary[f"{placer}_median_error_uS"] = statistics.median(errors)
        summary[f"{placer}_mean_error_uS"] = statistics.fmean(errors)
    return {"rows": rows, "summary": summary}


def scale(work: Path, quick: bool) -> dict:
    cases = [([256, 256, 10], 256), ([1024, 1024, 10], 1024)]
    if not quick:
        cases += [([512, 512, 512, 10], 1024), ([1024, 1024, 1024, 10], 1024)]
    rows = []
    for sizes, arrays in cases:
        model = work / f"mlp_{'-'.join(map(str, sizes))}.onnx"
        mlp_onnx(sizes, model)
        chip = work / f"chip_{arrays}.json"
        if not chip.exists():
            start = time.perf_counter()
            save_chip(synth_chip(arrays=arrays, rows=128, cols=128, stuck_high=0.025, stuck_low=0.025, seed=0), chip)
            print(f"  synthesised chip of {arrays} arrays in {time.perf_counter() - start:.1f} s "
                  f"({chip.stat().st_size / 2**20:.1f} MiB)", flush=True)
        report = leac_compile(model, chip, work / "scale.leac", "-k", "3")  # default --time-limit 10
        row = {
            "model": "-".join(map(str, sizes)), "arrays": arrays, "k": 3,
            "wall_seconds": report["wall_seconds"], "compile_seconds": report["compile_seconds"],
            "pass_seconds": report["pass_seconds"], "status": report["solver_status"],
            "method": report["solver_method"], "gap": report["optimality_gap"],
            "copies": report["copies"], "devices_used": report["devices_used"],
            "devices_total": report["devices_total"], "peak_rss_MiB": report["peak_rss_MiB"],
        }
        rows.append(row)
        print(f"  {row['model']:>20} on {arrays} x 128x128: {row['wall_seconds']:6.1f} s wall, "
              f"{row['status']} ({row['method']}) gap {100 * row['gap']:.2f}%, {row['copies']} copies, "
              f"peak {row['peak_rss_MiB']:.0f} MiB", flush=True)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 seeds and the small scale cases only")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compile.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("(a) Yin-Yang 4-12-6-3, k = 4, paper-like chips", flush=True)
        results = {"yinyang": yinyang(5 if args.quick else 20, work)}
        print(json.dumps(results["yinyang"]["summary"], indent=2))
        print("(b) scale, k = 3, 128 x 128 arrays, 5% stuck", flush=True)
        results["scale"] = scale(work, args.quick)
    results["threads"] = {"OMP_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
