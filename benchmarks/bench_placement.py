"""Benchmark of the placement solver against the greedy and random baselines.

Run from the repository root:

    python benchmarks/bench_placement.py            # full run
    python benchmarks/bench_placement.py --quick    # a few seeds, a smaller scale instance

Sections:

1. yinyang: the seed paper's hardware set-up. A chip like Daffodil (32 arrays of
   25 x 25, 2.5% stuck high, 0.5% stuck low; `synth_chip`) and the Yin-Yang
   4-12-6-3 MLP: blocks 5 x 12, 13 x 6 and 7 x 3 (one bias row each), a G+ and
   a G- pattern per block (random targets from the levels 133/167/200/233 uS),
   k = 4 copies: 24 items. 20 chip seeds.
2. yinyang-dense and yinyang-tight (extra): the same network on 10% stuck-high
   devices, and on only 4 arrays with 5% stuck high (the copies fill half the
   chip), where greedy is not optimal and the exact solver has to search.
3. scale: 1024 arrays of 128 x 128 with 5% stuck devices (half high, half low)
   and an MLP 1024-1024-1024-10 (a bias row per layer: 1025 rows, so 9 row
   blocks of at most 114 rows; 128-column blocks), G+ and G- patterns, k = 3:
   918 items.

BLAS and OpenMP are limited to one thread (set below, before numpy loads);
CP-SAT runs with `placement.CPSAT_WORKERS` workers. Writes
benchmarks/results/placement.json and prints one table per section.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lea_compiler import placement  # noqa: E402
from lea_compiler.chip import Chip, synth_chip  # noqa: E402
from lea_compiler.errors import DoesNotFitError  # noqa: E402
from lea_compiler.placement import PLACERS, Item, Pattern, PlacementProblem  # noqa: E402

LEVELS_uS = np.array([133.0, 167.0, 200.0, 233.0])
YINYANG_BLOCKS = [(5, 12), (13, 6), (7, 3)]
RESULTS = Path(__file__).resolve().parent / "results" / "placement.json"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def yinyang_problem(chip: Chip, seed: int, k: int = 4) -> PlacementProblem:
    rng = np.random.default_rng(10_000 + seed)
    patterns, items = [], []
    for layer, shape in enumerate(YINYANG_BLOCKS):
        for polarity in "+-":
            patterns.append(Pattern(f"L{layer}{polarity}", rng.choice(LEVELS_uS, size=shape)))
            items += [Item(f"L{layer}{polarity}/c{c}", len(patterns) - 1) for c in range(k)]
    return PlacementProblem(tuple(patterns), tuple(items), chip)


def mlp_problem(chip: Chip, widths: list[int], k: int, block_rows: int, block_cols: int, seed: int) -> PlacementProblem:
    """Blocks of each layer's (inputs + 1 bias row) x outputs matrix, G+ and G- patterns."""
    rng = np.random.default_rng(seed)
    patterns, items = [], []
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        rows = fan_in + 1
        for polarity in "+-":
            target = rng.choice(LEVELS_uS, size=(rows, fan_out))
            for r0 in range(0, rows, block_rows):
                for c0 in range(0, fan_out, block_cols):
                    block = target[r0 : r0 + block_rows, c0 : c0 + block_cols]
                    name = f"L{layer}/r{r0}c{c0}{polarity}"
                    patterns.append(Pattern(name, block))
                    items += [Item(f"{name}/c{c}", len(patterns) - 1) for c in range(k)]
    return PlacementProblem(tuple(patterns), tuple(items), chip)


def obj(row: dict[str, Any]) -> float:
    """A result's objective, NaN when it found no placement."""
    return float(row.get("objective_uS", float("nan")))


def run(problem: PlacementProblem, placer: str, time_limit_s: float, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        result = PLACERS[placer](problem, time_limit_s=time_limit_s, seed=seed)
    except DoesNotFitError as err:
        return {
            "placer": placer,
            "status": "DOES_NOT_FIT",
            "error": str(err),
            "seconds": time.perf_counter() - t0,
        }
    return {
        "placer": placer,
        "status": result.status,
        "method": result.method,
        "objective_uS": result.objective_uS,
        "bound_uS": result.bound_uS,
        "gap": result.gap,
        "seconds": result.seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def seeds_section(name: str, seeds: list[int], chip_args: dict[str, Any], time_limit_s: float) -> dict[str, Any]:
    rows = []
    for s in seeds:
        chip = synth_chip(seed=s, **chip_args)
        problem = yinyang_problem(chip, s)
        row: dict[str, Any] = {"seed": s, "items": len(problem.items)}
        for placer in ("cpsat", "greedy", "random"):
            row[placer] = run(problem, placer, time_limit_s, seed=s)
        rows.append(row)
        c, g, r = (row[p] for p in ("cpsat", "greedy", "random"))
        print(
            f"  seed {s:2d}: cpsat {c['status']:8s} {obj(c):9.0f} uS ({c['seconds']:5.2f} s, "
            f"{c.get('method', '-')}), greedy {obj(g):9.0f}, random {obj(r):9.0f}",
            flush=True,
        )
    summary = summarise(rows)
    print(
        f"{name}: {summary['cpsat_optimal']}/{len(rows)} proved optimal; median time "
        f"cpsat {summary['median_seconds']['cpsat']:.2f} s, greedy "
        f"{summary['median_seconds']['greedy']:.2f} s, random "
        f"{summary['median_seconds']['random']:.2f} s; "
        f"median objective cpsat {summary['median_objective_uS']['cpsat']:.0f} / greedy "
        f"{summary['median_objective_uS']['greedy']:.0f} / random "
        f"{summary['median_objective_uS']['random']:.0f} uS (medians over the runs that placed "
        f"everything); greedy worse than cpsat on {summary['greedy_worse']} seeds, found no "
        f"packing on {summary['greedy_failed']}\n",
        flush=True,
    )
    return {"chip": chip_args, "time_limit_s": time_limit_s, "rows": rows, "summary": summary}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(placer: str, key: str) -> float:
        values = [r[placer][key] for r in rows if key in r[placer]]
        return statistics.median(values) if values else float("nan")

    return {
        "cpsat_optimal": sum(r["cpsat"]["status"] == "OPTIMAL" for r in rows),
        "median_seconds": {p: med(p, "seconds") for p in ("cpsat", "greedy", "random")},
        "median_objective_uS": {p: med(p, "objective_uS") for p in ("cpsat", "greedy", "random")},
        "greedy_worse": sum(
            r["greedy"]["status"] != "DOES_NOT_FIT"
            and r["greedy"]["objective_uS"] > r["cpsat"].get("objective_uS", float("inf")) + 1e-6
            for r in rows
        ),
        "greedy_failed": sum(r["greedy"]["status"] == "DOES_NOT_FIT" for r in rows),
    }


def scale_section(quick: bool, time_limit_s: float) -> dict[str, Any]:
    arrays, widths = (128, [256, 256, 256, 10]) if quick else (1024, [1024, 1024, 1024, 10])
    t0 = time.perf_counter()
    chip = synth_chip(arrays=arrays, rows=128, cols=128, stuck_high=0.025, stuck_low=0.025, seed=0)
    chip_seconds = time.perf_counter() - t0
    problem = mlp_problem(chip, widths, k=3, block_rows=114, block_cols=128, seed=0)
    shapes = sorted({p.target_uS.shape for p in problem.patterns})
    base = peak_rss_mb()
    print(
        f"scale: {arrays} arrays of 128 x 128 (5% stuck), MLP {'-'.join(map(str, widths))}, "
        f"{len(problem.patterns)} patterns of shapes {shapes}, {len(problem.items)} items "
        f"(chip built in {chip_seconds:.1f} s; peak RSS {base:.0f} MB before placing)",
        flush=True,
    )
    out: dict[str, Any] = {
        "arrays": arrays,
        "widths": widths,
        "patterns": len(problem.patterns),
        "items": len(problem.items),
        "pattern_shapes": [list(s) for s in shapes],
        "chip_seconds": chip_seconds,
        "peak_rss_mb_before": base,
        "time_limit_s": time_limit_s,
    }
    for placer in ("cpsat", "greedy", "random"):
        row = run(problem, placer, time_limit_s, seed=0)
        out[placer] = row
        print(
            f"  {placer:6s}: {row['status']:9s} {row.get('method', ''):60s} objective "
            f"{obj(row):.6g} uS, bound {row.get('bound_uS', float('nan')):.6g} uS, "
            f"gap {row.get('gap', float('nan')):.3%}, {row['seconds']:.1f} s, peak RSS so far "
            f"{row.get('peak_rss_mb', float('nan')):.0f} MB",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few seeds, a smaller scale instance")
    parser.add_argument("--time-limit", type=float, default=10.0, help="per placer call, seconds")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the scale instance")
    args = parser.parse_args()
    print(
        f"placement benchmark: BLAS/OpenMP threads 1, CP-SAT workers {placement.CPSAT_WORKERS}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, time limit "
        f"{args.time_limit} s per call\n",
        flush=True,
    )
    report: dict[str, Any] = {
        "threads": {
            "blas_openmp": 1,
            "cpsat_workers": placement.CPSAT_WORKERS,
            "cpus": os.cpu_count(),
        },
        "quick": args.quick,
    }
    n = 5 if args.quick else 20
    yinyang = {"arrays": 32, "rows": 25, "cols": 25, "stuck_high": 0.025}
    print("yinyang (32 x 25 x 25, 2.5% stuck high, k = 4):")
    report["yinyang"] = seeds_section("yinyang", list(range(n)), yinyang, args.time_limit)
    m = 3 if args.quick else 10
    print("yinyang-dense (32 x 25 x 25, 10% stuck high, k = 4):")
    report["yinyang_dense"] = seeds_section(
        "yinyang-dense", list(range(m)), {**yinyang, "stuck_high": 0.10}, args.time_limit
    )
    print("yinyang-tight (4 x 25 x 25, 5% stuck high, k = 4):")
    report["yinyang_tight"] = seeds_section(
        "yinyang-tight",
        list(range(m)),
        {**yinyang, "arrays": 4, "stuck_high": 0.05},
        args.time_limit,
    )
    if not args.skip_scale:
        report["scale"] = scale_section(args.quick, args.time_limit)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(RESULTS)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
