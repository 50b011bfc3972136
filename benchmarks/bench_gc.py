"""What Python's garbage collector costs a simulation, with and without `gc.freeze()` (issue 19).

Two measurements, one BLAS thread:

- the `leac simulate` process of the README's main job (the bundled Yin-Yang MLP compiled at k = 3 for the
  bundled chip, simulated on both bundled test sets, `--json`): fresh processes running `cli.main` with
  `freeze_imports` on (what `leac` does: `gc.freeze()` once the command's modules are imported) and off,
  alternating; per process its wall and CPU time and every collection the collector made after the imports
  (counted per generation, timed with `gc.callbacks`);
- `simulate()` in one process on the anchor workload of bench_sim.py (784-150-10 tanh MLP, 2%-stuck chip of
  25 x 25 arrays, k = 6, 1,000 samples): `--calls` calls as they are, the same with `gc.disable()` around each
  call (restored after it: what a library could do), and after `gc.freeze()`; the collections during the calls
  per generation with their time, and the CPU time of each call.

Run:  python benchmarks/bench_gc.py [--repeats 7] [--calls 4]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

_PROCESS = """
import gc, json, sys, time
from lea_compiler.cli import main
events, started = [], {}
def watch(phase, info):
    if phase == "start":
        started["t"] = time.perf_counter()
    else:
        events.append((info["generation"], time.perf_counter() - started["t"]))
freeze, out = sys.argv[1] == "freeze", sys.argv[2]
gc.callbacks.append(watch)
status = main(sys.argv[3:], freeze_imports=freeze)
with open(out, "w") as f:
    json.dump({"status": status, "collections": events, "frozen": gc.get_freeze_count()}, f)
"""


class Collections:
    """Every collection the collector makes while watching: (generation, seconds)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.events.append((info["generation"], time.perf_counter() - self._start))

    def summary(self) -> dict[str, Any]:
        return summarise(self.events)


def summarise(events: list[tuple[int, float]]) -> dict[str, Any]:
    """Collections per generation and their total ms."""
    return {f"gen{g}": {"count": sum(1 for e in events if e[0] == g),
                        "ms": round(1e3 * sum(s for e, s in events if e == g), 2)} for g in (0, 1, 2)}


def process_runs(repeats: int, work: Path) -> dict[str, Any]:
    """The README's main job's `leac simulate` process, with and without freezing its imports, alternating."""
    from lea_compiler.chip import load_chip
    from lea_compiler.compiler import compile_model
    from lea_compiler.pipeline import CompileOptions

    program = work / "yinyang.leac"
    compile_model(DATA / "yinyang_mlp.onnx", load_chip(DATA / "paper_chip.json"), CompileOptions(k=3)).program.save(
        program)
    argv = ["simulate", str(program), "--data", str(DATA / "yinyang_task1_test.npz"), "--data",
            str(DATA / "yinyang_task2_test.npz"), "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    runs: dict[str, list[dict[str, Any]]] = {"freeze": [], "no_freeze": []}
    reports = {}
    for _ in range(repeats):
        for mode in runs:
            out = work / f"{mode}.json"
            before = os.times()
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", _PROCESS, mode, str(out), *argv], env=env,
                                  capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            after = os.times()
            got = json.loads(out.read_text())
            report = json.loads(done.stdout)
            report.pop("seconds", None)
            reports[mode] = report
            runs[mode].append({"wall_s": wall, "cpu_s": after.children_user + after.children_system
                               - before.children_user - before.children_system, "status": got["status"],
                               "frozen_objects": got["frozen"], **summarise(got["collections"])})
    result: dict[str, Any] = {"same_report": reports["freeze"] == reports["no_freeze"]}
    for mode, rows in runs.items():
        result[mode] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in rows),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in rows),
            "cpu_s_min": min(r["cpu_s"] for r in rows),
            "frozen_objects": rows[0]["frozen_objects"],
            **{f"gen{g}_collections_median": statistics.median(r[f"gen{g}"]["count"] for r in rows) for g in (0, 1, 2)},
            **{f"gen{g}_ms_median": statistics.median(r[f"gen{g}"]["ms"] for r in rows) for g in (0, 1, 2)},
        }
    return result


def api_runs(calls: int, work: Path) -> dict[str, Any]:
    """`simulate()` on the anchor workload (25 x 25, k = 6): as it is, with the collector off around each call,
    and after `gc.freeze()`."""
    from bench_sim import anchor_mlp, anchor_program, ideal_forward
    from threadpoolctl import threadpool_limits

    from lea_compiler.backends.sim import Dataset, simulate

    weights, biases = anchor_mlp(work / "mlp.onnx")
    program = anchor_program(work / "mlp.onnx", 25, 6)
    x = np.random.default_rng(1).uniform(0, 1, size=(1000, 784)).astype(np.float32)
    data = [Dataset("random", x, ideal_forward(x, weights, biases, 1).argmax(axis=1))]
    result = {}
    with threadpool_limits(limits=1):
        simulate(program, data, seed=0)  # warm: lazy imports and tables
        for mode in ("as_is", "disabled_per_call", "frozen"):
            if mode == "frozen":
                gc.freeze()
            watch = Collections()
            gc.callbacks.append(watch)
            cpu = []
            try:
                for _ in range(calls):
                    start = time.process_time()
                    if mode == "disabled_per_call":
                        gc.disable()
                    try:
                        simulate(program, data, seed=0)
                    finally:
                        gc.enable()
                    cpu.append(1e3 * (time.process_time() - start))
            finally:
                gc.callbacks.remove(watch)
                gc.unfreeze()
            result[mode] = {"simulate_cpu_ms": [round(c, 1) for c in cpu], **watch.summary()}
            print(mode, result[mode], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="processes of each kind")
    parser.add_argument("--calls", type=int, default=4, help="simulate() calls of each kind")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here too")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        process = process_runs(args.repeats, Path(tmp))
        print(json.dumps(process, indent=1), flush=True)
        api = api_runs(args.calls, Path(tmp))
    result = {"process": process, "api": api, "load_average": [load, os.getloadavg()]}
    print(f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
