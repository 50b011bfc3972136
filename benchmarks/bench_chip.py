"""Chip-file benchmarks: synthesise, save, load, validate and query large chips.

Sizes (5% stuck devices, half high and half low, seed 0, like the compile
scale benchmark's chip):

    32 x 25 x 25      the seed paper's chip
    256 x 128 x 128   ~210,000 defect entries, ~13 MiB of JSON
    1024 x 128 x 128  ~840,000 defect entries, ~52 MiB of JSON (the compile scale benchmark)

For each size: `synth_chip`, `save_chip`, `load_chip`, the `Chip`
constructor's validation (rebuilding a chip from its arrays and defects),
`stuck_map` of every array, `defect_counts()` and `fingerprint()` on a freshly
loaded chip (nothing cached), the file size and the peak memory (maxrss) of
the process. Each size runs in its own child process so that peak memory is
that size's alone.

Run:  python benchmarks/bench_chip.py [--quick] [--repeat N] [--out benchmarks/results/chip.json]

`--quick` skips the 1024-array chip. Times are the best of `--repeat` runs
(default 1). Only wall time depends on the machine; the chips are fixed by
their seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(32, 25, 25), (256, 128, 128), (1024, 128, 128)]
STEPS = ("synth", "save", "load", "construct", "stuck_maps", "defect_counts", "fingerprint")


def run_one(arrays: int, rows: int, cols: int, repeat: int) -> dict:
    """Time every step on one chip size in this process."""
    sys.path.insert(0, str(ROOT))
    from lea_compiler.chip import Chip, load_chip, save_chip, synth_chip

    times: dict[str, float] = {}

    def timed(step: str, fn):  # noqa: ANN001, ANN202
        best, result = float("inf"), None
        for _ in range(repeat):
            start = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - start)
        times[step] = best
        return result

    chip = timed(
        "synth",
        lambda: synth_chip(
            arrays=arrays, rows=rows, cols=cols, stuck_high=0.025, stuck_low=0.025, seed=0
        ),
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chip.json"
        timed("save", lambda: save_chip(chip, path))
        size = path.stat().st_size
        loaded = timed("load", lambda: load_chip(path))
    assert loaded == chip
    timed(
        "construct",
        lambda: Chip(
            arrays=chip.arrays,
            defects=chip.defects,
            device=chip.device,
            periphery=chip.periphery,
            name=chip.name,
            grid=chip.grid,
        ),
    )
    # The queries on chips with nothing cached yet (a fresh load each repeat would
    # cost a load; a fresh construct is the same object state).
    fresh = [
        Chip(arrays=chip.arrays, defects=chip.defects, grid=chip.grid) for _ in range(3 * repeat)
    ]
    ids = [a.id for a in chip.arrays]

    def all_maps() -> None:
        fresh_chip = fresh.pop()
        for i in ids:
            fresh_chip.stuck_map(i)

    timed("stuck_maps", all_maps)
    timed("defect_counts", lambda: fresh.pop().defect_counts())
    timed("fingerprint", lambda: fresh.pop().fingerprint())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "arrays": arrays,
        "rows": rows,
        "cols": cols,
        "defect_entries": len(chip.defects),
        "file_MiB": round(size / 2**20, 2),
        "seconds": {k: round(v, 4) for k, v in times.items()},
        "peak_MiB": round(peak_kib / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1024-array chip")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per step")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "chip.json"))
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        arrays, rows, cols = args.child
        print(json.dumps(run_one(arrays, rows, cols, args.repeat)))
        return
    sizes = SIZES[:2] if args.quick else SIZES
    results = []
    header = f"{'chip':>18} {'defects':>8} {'MiB':>6} " + " ".join(f"{s:>13}" for s in STEPS)
    print(header + f" {'peak MiB':>9}")
    for arrays, rows, cols in sizes:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(arrays), str(rows), str(cols),
             "--repeat", str(args.repeat)],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(row)
        secs = row["seconds"]
        print(
            f"{f'{arrays}x{rows}x{cols}':>18} {row['defect_entries']:>8} {row['file_MiB']:>6} "
            + " ".join(f"{secs[s]:>13.3f}" for s in STEPS)
            + f" {row['peak_MiB']:>9}",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "chip",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
