"""`Program.load` time on bench_sim.py's anchor Programs, per `.leac` format version (issue 19, last part).

The anchor workload of bench_sim.py (the 784-150-10 tanh MLP compiled with the greedy placer for a 2%-stuck
chip of 128 x 128 or 25 x 25 arrays, at k = 1 and k = 6) saved as the tree under test saves it (`Program.save`),
and, where the tree can still write version 1 (`program_bytes(program, version=1)`, byte-identical to what leac
wrote before version 2: tests/test_program_format.py checks it against a file the old code wrote), as a
version-1 file too. Each file is loaded `--repeats` times with one BLAS thread, the two files in turn, and the
fastest CPU time is kept (the machine is shared; the minimum is the least disturbed run), with the full checks
(`program_problems`), as `leac simulate` and `leac emit` pay it: the compiled Program dropped and the objects
left frozen first (`gc.freeze()`, as `leac` freezes its imports), so that the garbage collector's passes during
a load see what a `leac` process would hold, not this script's compiles.

`PYTHONPATH=OTHER_TREE python benchmarks/bench_program_load.py` measures another tree (e.g. a `git archive` of
the commit before a change; it writes only what it saves, version 1 before version 2 existed).

Run:  python benchmarks/bench_program_load.py [--repeats 10] [--out benchmarks/results/program_load.txt]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

from bench_sim import ARRAYS, COPIES, anchor_mlp, anchor_program
from threadpoolctl import threadpool_limits

import lea_compiler
from lea_compiler.program import Program
from lea_compiler.program import file as program_file

ROOT = Path(__file__).resolve().parents[1]
TREE = Path(lea_compiler.__file__).resolve().parents[1]  # the tree under test


def load_cpu_ms(paths: list[Path], repeats: int) -> list[float]:
    """The fastest of `repeats` `Program.load` of each of `paths`, CPU ms of the process, one BLAS thread; the
    files loaded in turn, so that a busy spell on the machine falls on each alike."""
    times: list[list[float]] = [[] for _ in paths]
    with threadpool_limits(limits=1):
        for _ in range(repeats):
            for path, kept in zip(paths, times, strict=True):
                start = time.process_time()
                Program.load(path)
                kept.append(time.process_time() - start)
    return [1e3 * min(kept) for kept in times]


def file_facts(path: Path) -> tuple[int, int, int]:
    """A `.leac` file's format version, zip members and bytes."""
    with zipfile.ZipFile(path) as archive:
        version = json.loads(archive.read("program.json"))["version"]
        return int(version), len(archive.namelist()), path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "program_load.txt"))
    args = parser.parse_args()
    writes_v1 = "version" in program_file.program_bytes.__code__.co_varnames
    lines = [f"Program.load, fastest of {args.repeats}, CPU ms, 1 BLAS thread; tree {TREE}",
             "| arrays | k | copy halves | file (version, members, bytes) | load ms | "
             "version-1 file (members, bytes) | load ms |", "| --- | --- | --- | --- | --- | --- | --- |"]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        anchor_mlp(tmp / "mlp.onnx")
        for size in ARRAYS:
            for k in COPIES:
                program = anchor_program(tmp / "mlp.onnx", size, k)
                halves = sum(2 * len(block.copies) for layer in program.layers for block in layer.blocks)
                saved, old = tmp / f"p_{size}_{k}.leac", tmp / f"p_{size}_{k}_v1.leac"
                program.save(saved)
                version, members, size_bytes = file_facts(saved)
                if writes_v1 and version != 1:
                    old.write_bytes(program_file.program_bytes(program, version=1))
                del program
                gc.collect()
                gc.freeze()  # as `leac` does once its modules are imported: the collector sees only the load's objects
                try:
                    times = load_cpu_ms([saved, old] if old.exists() else [saved], args.repeats)
                finally:
                    gc.unfreeze()
                row = [f"{size} x {size}", str(k), str(halves), f"v{version}, {members}, {size_bytes}",
                       f"{times[0]:.1f}"]
                if old.exists():
                    _, members, size_bytes = file_facts(old)
                    row += [f"{members}, {size_bytes}", f"{times[1]:.1f}"]
                else:
                    row += ["-", "-"]
                lines.append("| " + " | ".join(row) + " |")
                print(lines[-1], flush=True)
    lines.append(f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
