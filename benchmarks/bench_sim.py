"""Simulator throughput (issue: backends).

A 64-150-10 tanh MLP with ternary weights (the size of the paper's MNIST
network on the 8 x 8 digits) is compiled at k = 1 and k = 6 for a synthetic
chip of 25 x 25 arrays (paper-like defects) and simulated on 10,000 random
samples. Reported: samples/s of `simulate` (everything it does: lowering the
Program to its schedule, the crossbar simulation, the digital reference it compares layer outputs
with, onnxruntime's software accuracy), and of the crossbar forward alone; the
ratio to an ideal float32 numpy forward pass of the same network with all k
copies (x @ W for every copy, then the activation); peak memory.

Also timed: the crossbar forward at 1 and 2 simulator worker threads
(`simulate(threads=...)`; results are identical), and the matrix products
alone that the crossbars stand for (every row block, copy and polarity: x @ G),
which is the floor of any simulation that keeps the ADC per column read.

Run:  python benchmarks/bench_sim.py [--samples 10000] [--out benchmarks/results/sim.json]

BLAS threads: OMP/OPENBLAS set to 1 before numpy loads (faster than 2 threads
for these sizes on this machine; `--blas-threads 2` to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

_threads = sys.argv[sys.argv.index("--blas-threads") + 1] if "--blas-threads" in sys.argv else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads

import numpy as np  # noqa: E402
from models import save_tanh_mlp  # noqa: E402

from lea_compiler import interpreter  # noqa: E402
from lea_compiler.backends.sim import CrossbarLayer, Dataset, EventCounts, simulate  # noqa: E402
from lea_compiler.chip import synth_chip  # noqa: E402
from lea_compiler.compiler import compile_model  # noqa: E402
from lea_compiler.pipeline import CompileOptions  # noqa: E402
from lea_compiler.schedule.plan import schedule_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def ternary_mlp(path: Path, sizes: tuple[int, ...] = (64, 150, 10), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = [(rng.integers(-1, 2, size=(m, n)) * 0.1).astype(np.float32)
               for m, n in zip(sizes[:-1], sizes[1:], strict=True)]
    save_tanh_mlp(path, weights)
    return weights


def ideal_forward(x: np.ndarray, weights: list[np.ndarray], k: int) -> np.ndarray:
    """The float32 baseline: every copy's x @ W, averaged, tanh between layers."""
    h = x
    for i, w in enumerate(weights):
        copies = [h @ w for _ in range(k)]
        h = sum(copies) / k
        if i < len(weights) - 1:
            h = np.tanh(h)
    return h


def best_of(fn, *args, repeats: int = 3, **kwargs) -> float:
    """Fastest of `repeats` calls of fn(*args, **kwargs), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def crossbar_kernels(layers: dict, noise: np.random.Generator, counts: EventCounts, threads: int) -> dict:
    return {name: (lambda s: (lambda node, inputs: [s.forward(inputs[0], noise, counts, threads=threads)]))(sim)
            for name, sim in layers.items()}


def crossbar_products(x: np.ndarray, layers: list) -> None:
    """Only the products the crossbars compute (x @ [G+ G-] of every copy, per row block), tanh between."""
    h = x
    for i, sim in enumerate(layers):
        executor = sim.executor
        if executor.rows > executor.inputs:
            h = np.hstack([h, np.ones((h.shape[0], 1), np.float32)])
        out = 0
        for band in executor._bands():
            out = out + (h[:, band.r0:band.r1] @ band.g)[:, : executor.cols]
        h = np.tanh(out) if i < len(layers) - 1 else out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--blas-threads", default="1")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sim.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(args.samples, 64)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlp.onnx"
        weights = ternary_mlp(path)
        labels = ideal_forward(x, weights, 1).argmax(axis=1)
        data = Dataset("random", x, labels)
        chip = synth_chip(arrays=400, rows=25, cols=25, seed=0)
        for k in (1, 6):
            program = compile_model(path, chip, CompileOptions(k=k, time_limit_s=5)).program
            baseline = best_of(ideal_forward, x, weights, k)
            whole = best_of(simulate, program, [data], seed=0, repeats=1)
            # the crossbar forward alone: what the simulator adds per sample over the digital graph
            schedule = schedule_of(program)
            layers = {name: CrossbarLayer(plan, schedule, chip, np.random.default_rng(0), ideal=False,
                                          exact_read_noise=False)
                      for name, plan in schedule.layers.items()}
            products = best_of(crossbar_products, x, list(layers.values()))
            crossbar = {}
            for threads in (1, 2):
                kernels = crossbar_kernels(layers, np.random.default_rng(0), EventCounts(), threads)
                crossbar[threads] = best_of(interpreter.run, program.graph, {"x": x}, kernels=kernels)
            row = {
                "k": k, "samples": args.samples, "devices": program.devices_used,
                "ideal_numpy_s": baseline, "ideal_numpy_samples_per_s": args.samples / baseline,
                "simulate_s": whole, "simulate_samples_per_s": args.samples / whole,
                "crossbar_products_s": products, "ratio_products_to_ideal": products / baseline,
                "ratio_simulate_to_ideal": whole / baseline,
            }
            for threads, seconds in crossbar.items():
                row[f"crossbar_forward_{threads}t_s"] = seconds
                row[f"crossbar_forward_{threads}t_samples_per_s"] = args.samples / seconds
                row[f"ratio_forward_{threads}t_to_ideal"] = seconds / baseline
            rows.append(row)
            print(f"k={k}: ideal numpy {row['ideal_numpy_samples_per_s']:,.0f} samples/s; "
                  f"crossbar products alone {row['ratio_products_to_ideal']:.2f}x; crossbar forward "
                  f"{row['crossbar_forward_1t_samples_per_s']:,.0f} samples/s ({row['ratio_forward_1t_to_ideal']:.2f}x)"
                  f", 2 threads {row['crossbar_forward_2t_samples_per_s']:,.0f} samples/s "
                  f"({row['ratio_forward_2t_to_ideal']:.2f}x); whole simulate (1 thread) "
                  f"{row['simulate_samples_per_s']:,.0f} samples/s ({row['ratio_simulate_to_ideal']:.2f}x)",
                  flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"rows": rows, "peak_rss_MiB": peak, "blas_threads": int(args.blas_threads)}
    print(f"peak memory {peak:.0f} MiB, BLAS threads {args.blas_threads}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
