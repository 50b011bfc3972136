"""Fuzzing benchmark (issues 6 and 13): thousands of corrupted and hostile inputs through the `leac` command line.

For each reader (ONNX models, chip files, .npz data files, .leac Programs),
`--cases` seeded cases (default 2,000), spread over the case classes of
tests/fuzzing_run.py:

    corrupt        a valid file corrupted at random: bytes, JSON, ONNX, .npz and Program structure (issue 6)
    bomb           (data, program) zip members inflating to GiBs from a few MB
    size_lie       zip sizes and CRCs, .npy headers, duplicate names, shared references, 90-byte huge chips,
                   ONNX dims, external data and exploding intermediates that declare more than they hold
    special_input  the input is a FIFO, a device node, a symlink to one, a directory, a socket, a loop
    output_path    -o is a FIFO, a device node, a socket, a directory, a missing folder, an input...

Every case's command runs in a forked child of this process (the modules are
imported once) with the case's folder as its current directory, an address
space limit (`--memory-limit-gib`, default 3: RLIMIT_AS) and a time limit
(`--timeout`, default 20 s: the child's process group is killed). Its exit is
checked against the contract (tests/fuzzing_run.py, `check_case`): an allowed
status, no traceback, no MemoryError, a one-line `leac: error:` message, the
case's folder unchanged on failure (special files unchanged in kind), a
complete output on success; a child killed by the time limit or by a signal
(the kernel's, when the address-space limit hits C code) is a violation too.
Device nodes are made with os.mknod inside the case's folder when running as
root (a FIFO stands in otherwise); everything is made and removed inside this
run's temporary folder, and the base files are checked unchanged after every case.

Run:  nice python benchmarks/bench_fuzz.py [--cases 2000] [--seed 0] [--jobs 1] [--out benchmarks/results/fuzz.json]

Case i of a reader uses random.Random(f"{seed}-{reader}-{i}"), so a run is
reproducible and a violation can be replayed alone:
`python benchmarks/bench_fuzz.py --reader data --only 123` (add `--class bomb`
when the run was restricted to classes). Writes counts per reader, class,
command and outcome, the generators tried, the time per case, the peak
resident memory of the run (the largest child: getrusage(RUSAGE_CHILDREN)) and
per class, and every violation (there should be none).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzzing_hostile import can_make_devices  # noqa: E402
from tests.fuzzing_run import (  # noqa: E402
    CLASSES,
    READERS,
    ContractViolation,
    check_case,
    classes_for,
    clear_folder,
    make_bases,
    make_case,
    run_sandboxed,
    snapshot,
)

MAX_VIOLATIONS_KEPT = 50


def fuzz_reader(reader: str, cases: int, seed: int, only: int | None, classes: tuple[str, ...], timeout_s: float,
                memory_limit: int) -> dict:
    """Run one reader's cases, each in a sandboxed child; return its counts."""
    outcomes: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    class_rss: dict[str, int] = defaultdict(int)
    class_seconds: dict[str, float] = defaultdict(float)
    violations = []
    heaviest: list[tuple[int, int, str, str]] = []
    mine = tuple(c for c in classes if c in classes_for(reader))
    indices = [only] if only is not None else range(cases)
    with tempfile.TemporaryDirectory(prefix=f"leac-fuzz-{reader}-") as folder:
        base_folder = Path(folder) / "bases"
        bases = make_bases(base_folder)
        pristine = snapshot(base_folder)
        workdir, scratch = Path(folder) / "work", Path(folder) / "scratch"
        scratch.mkdir()
        start = time.perf_counter()
        for i in indices:
            rnd = random.Random(f"{seed}-{reader}-{i}")
            klass = rnd.choice(mine)
            try:
                clear_folder(workdir)
                case = make_case(reader, klass, bases, workdir, rnd)
                before = snapshot(workdir)
                ran = run_sandboxed(case, timeout_s, memory_limit, scratch)
                class_rss[klass] = max(class_rss[klass], ran.peak_rss_kb)
                class_seconds[klass] += ran.seconds
                heaviest.append((ran.peak_rss_kb, i, klass, case.kind))
                outcome = check_case(case, ran, before, snapshot(workdir))
                if snapshot(base_folder) != pristine:
                    raise ContractViolation(f"{case.describe()}: changed the shared base files", "wrote outside")
            except ContractViolation as exc:
                outcomes["violation"] += 1
                per_class[klass][f"violation: {exc.why[:60]}"] += 1
                if len(violations) < MAX_VIOLATIONS_KEPT:
                    violations.append({"case": i, "class": klass, "why": exc.why, "problem": str(exc)[:4000]})
                continue
            except Exception as exc:  # a bug in the fuzzer itself: count it, keep going
                outcomes["harness_error"] += 1
                per_class[klass]["harness_error"] += 1
                if len(violations) < MAX_VIOLATIONS_KEPT:
                    violations.append({"case": i, "class": klass, "why": "harness",
                                       "problem": f"harness: {type(exc).__name__}: {exc}"})
                continue
            outcomes[outcome.label] += 1
            per_class[klass][outcome.label] += 1
            commands[f"{outcome.command}: {outcome.label}"] += 1
            kinds[f"{klass}:{outcome.corruption.split(':')[0].split('+')[0]}"] += 1
        seconds = time.perf_counter() - start
        clear_folder(workdir)  # FIFOs, device nodes and sockets go with the folder
    heaviest.sort(reverse=True)
    return {
        "reader": reader,
        "cases": len(indices),
        "outcomes": dict(sorted(outcomes.items())),
        "by_class": {k: dict(sorted(v.items())) for k, v in sorted(per_class.items())},
        "by_command": dict(sorted(commands.items())),
        "generators": dict(sorted(kinds.items())),
        "peak_rss_mib_by_class": {k: round(v / 1024, 1) for k, v in sorted(class_rss.items())},
        "seconds_by_class": {k: round(v, 1) for k, v in sorted(class_seconds.items())},
        "heaviest_cases": [{"case": i, "class": k, "generator": g, "peak_rss_mib": round(rss / 1024, 1)}
                           for rss, i, k, g in heaviest[:5]],
        "violations": violations,
        "seconds": round(seconds, 1),
        "ms_per_case": round(1000 * seconds / max(len(indices), 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per reader (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reader", choices=READERS, action="append", help="only these readers (repeatable)")
    parser.add_argument("--class", dest="classes", choices=CLASSES, action="append",
                        help="only these case classes (repeatable; default all)")
    parser.add_argument("--only", type=int, help="replay one case index (with --reader)")
    parser.add_argument("--jobs", type=int, default=1, help="readers fuzzed in parallel processes (default 1)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a case is killed (default 20)")
    parser.add_argument("--memory-limit-gib", type=float, default=3.0,
                        help="address space of a case's process, GiB (RLIMIT_AS; default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    args = parser.parse_args()
    readers = args.reader or list(READERS)
    classes = tuple(args.classes or CLASSES)
    memory_limit = int(args.memory_limit_gib * 2**30)
    start = time.perf_counter()
    jobs = [(r, args.cases, args.seed, args.only, classes, args.timeout, memory_limit) for r in readers]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(fuzz_reader, *zip(*jobs, strict=True)))
    else:
        results = [fuzz_reader(*job) for job in jobs]
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = {
        "benchmark": "fuzz",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "cases_per_reader": args.cases,
        "classes": list(classes),
        "timeout_s": args.timeout,
        "memory_limit_gib": args.memory_limit_gib,
        "device_nodes": can_make_devices(),
        "total_cases": sum(r["cases"] for r in results),
        "total_violations": sum(r["outcomes"].get("violation", 0) for r in results),
        "total_harness_errors": sum(r["outcomes"].get("harness_error", 0) for r in results),
        "peak_rss_mib": round(peak_children / 1024, 1),
        "peak_rss_note": "largest resident set of any process of the run: getrusage(RUSAGE_CHILDREN).ru_maxrss "
                         "(every case runs in a child; a child starts with the harness's pages)",
        "harness_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "readers": results,
    }
    for r in results:
        print(f"{r['reader']:8} {r['cases']:5} cases  {r['ms_per_case']:7.1f} ms/case  "
              + "  ".join(f"{k} {v}" for k, v in r["outcomes"].items()))
        for klass, counts in r["by_class"].items():
            print(f"    {klass:14} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
        for v in r["violations"][:3]:
            print(f"  violation, case {v['case']}: {v['problem'][:500]}")
    print(f"total: {report['total_cases']} cases, {report['total_violations']} violations, "
          f"peak RSS {report['peak_rss_mib']} MiB, {report['seconds']} s")
    if args.only is None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
