"""Fuzzing benchmark (issue 6): thousands of corrupted input files through the `leac` command line.

For each reader (ONNX models, chip files, .npz data files, .leac Programs),
`--cases` seeded cases (default 2,000): a valid file is corrupted (truncated,
bit flips, overwritten or inserted bytes; structural changes: wrong opset,
missing initializers, zero-sized, dynamic or huge shapes, NaN or huge weights;
JSON nodes deleted, retyped or duplicated; wrong .npz keys, dtypes, shapes,
pickles, huge declared arrays; Program entries removed, arrays or JSON
changed...) and one `leac` command runs on it in-process
(`lea_compiler.cli.main`). Every case is checked against the contract in
tests/fuzzing.py: an allowed exit status, no traceback, a `leac: error:`
message on failure, no output or temporary file after a failure, a complete
and valid output after a success. The test suite runs a derandomized sample of
the same cases (tests/test_fuzz.py).

Run:  nice python benchmarks/bench_fuzz.py [--cases 2000] [--seed 0] [--jobs 1] [--out benchmarks/results/fuzz.json]

Case i of a reader uses random.Random(f"{seed}-{reader}-{i}"), so a run is
reproducible and a violation can be replayed alone:
`python benchmarks/bench_fuzz.py --reader data --only 123`.
Writes counts per reader, per command and per outcome, the corruption kinds
tried, the time per case, and every violation (there should be none).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzzing import READERS, ContractViolation, make_bases, run_case  # noqa: E402

MAX_VIOLATIONS_KEPT = 50


def fuzz_reader(reader: str, cases: int, seed: int, only: int | None = None) -> dict:
    """Run one reader's cases in this process; return its counts."""
    outcomes: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    violations = []
    indices = [only] if only is not None else range(cases)
    with tempfile.TemporaryDirectory(prefix=f"leac-fuzz-{reader}-") as folder:
        bases = make_bases(Path(folder) / "bases")
        start = time.perf_counter()
        for i in indices:
            rnd = random.Random(f"{seed}-{reader}-{i}")
            try:
                outcome = run_case(reader, bases, Path(folder) / "work", rnd)
            except ContractViolation as exc:
                outcomes["violation"] += 1
                if len(violations) < MAX_VIOLATIONS_KEPT:
                    violations.append({"case": i, "problem": str(exc)[:4000]})
                continue
            except Exception as exc:  # a bug in the fuzzer itself: count it, keep going
                outcomes["harness_error"] += 1
                if len(violations) < MAX_VIOLATIONS_KEPT:
                    violations.append({"case": i, "problem": f"harness: {type(exc).__name__}: {exc}"})
                continue
            outcomes[outcome.label] += 1
            commands[f"{outcome.command}: {outcome.label}"] += 1
            kinds[outcome.corruption.split(":")[0].split("+")[0]] += 1
        seconds = time.perf_counter() - start
    return {
        "reader": reader,
        "cases": len(indices),
        "outcomes": dict(sorted(outcomes.items())),
        "by_command": dict(sorted(commands.items())),
        "corruptions": dict(sorted(kinds.items())),
        "violations": violations,
        "seconds": round(seconds, 1),
        "ms_per_case": round(1000 * seconds / max(len(indices), 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per reader (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reader", choices=READERS, action="append", help="only these readers (repeatable)")
    parser.add_argument("--only", type=int, help="replay one case index (with --reader)")
    parser.add_argument("--jobs", type=int, default=1, help="readers fuzzed in parallel processes (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    args = parser.parse_args()
    readers = args.reader or list(READERS)
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(fuzz_reader, readers, [args.cases] * len(readers), [args.seed] * len(readers),
                                    [args.only] * len(readers)))
    else:
        results = [fuzz_reader(reader, args.cases, args.seed, args.only) for reader in readers]
    report = {
        "benchmark": "fuzz",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "cases_per_reader": args.cases,
        "total_cases": sum(r["cases"] for r in results),
        "total_violations": sum(r["outcomes"].get("violation", 0) for r in results),
        "total_harness_errors": sum(r["outcomes"].get("harness_error", 0) for r in results),
        "seconds": round(time.perf_counter() - start, 1),
        "readers": results,
    }
    for r in results:
        print(f"{r['reader']:8} {r['cases']:5} cases  {r['ms_per_case']:6.1f} ms/case  "
              + "  ".join(f"{k} {v}" for k, v in r["outcomes"].items()))
        for v in r["violations"][:3]:
            print(f"  violation, case {v['case']}: {v['problem'][:500]}")
    print(f"total: {report['total_cases']} cases, {report['total_violations']} violations, {report['seconds']} s")
    if args.only is None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
