"""Simulator speed against the arithmetic the chip does (issue 19's table).

The anchor workload (the one CrossSim and aihwkit were timed on): a 784-150-10 tanh MLP (Gaussian weights and
biases, seed 0) on 1,000 random samples in [0, 1), compiled (greedy placer: placement does not change what is
timed) at k = 1 and k = 6 for synthetic 2%-stuck chips (1.5% stuck high, 0.5% stuck low) of 128 x 128 and of
25 x 25 arrays with the default device model (write noise, per-read noise, 8-bit DAC, 8-bit ADC). Each
configuration is timed with 1 and with 2 BLAS threads (threadpoolctl; the simulator's own worker threads stay
at 1), and every row is a ratio to an ideal float32 numpy forward of all k copies (x @ W per copy, averaged, the
bias, tanh between layers) timed in the same run with the same threads:

- products alone: x @ G of every row block, copy and polarity, tanh between (the floor of a simulation that
  keeps the ADC per column read);
- read-noise draws alone: the Gaussian draws the forward makes (`schedule.normal_draws.gaussian`, one per column
  current: samples x row blocks x 2 k columns), in chunks of the forward's size from the forward's per-chunk
  generators (its other floor: the ADC digitises each noisy column current, so each needs its own draw);
- crossbar forward: the graph run in the interpreter with every crossbar layer simulated (stuck devices, write
  noise, per-read noise, DAC, ADC), the devices programmed beforehand: as `simulate()` runs it, with linear
  reads (`schedule.linear_reads`: where a read's rounding is dither, one Gaussian per output column), and with
  every current through the ADC (`CrossbarExecutor(linear=False)`, as before linear reads; in a tree without
  them the two rows are the same forward);
- whole `simulate()`: `lea_compiler.backends.sim.simulate` on the data (programming the devices, the forward,
  the digital reference, the software baseline by onnxruntime, the cost model);
- whole `leac simulate` process: `python -m lea_compiler simulate PROGRAM --data DATA --json` in a fresh
  process with OMP/OPENBLAS threads set, of the tree the benchmark imports `lea_compiler` from;
- `Program.load` of the Program's `.leac` file (CPU ms; the process pays it), with the full checks;
- the cost model: `estimate_cost` as `simulate()` calls it once per run (the lowered schedule given, the
  device-read energy measured), and without data (`leac report`: the full-scale device-read bound), in ms, not
  a ratio (its work does not grow with the samples). `--cost-only` measures only these (one thread), quickly:
  the before/after of a change to the cost model, e.g. with `PYTHONPATH=OTHER_TREE`.

Wall and CPU time (user + system of the process, or of the child process) are both recorded. The ratios with
one thread are of CPU times, which other jobs on a shared machine disturb less than wall times (with one BLAS
thread, the CPU time of a run is its wall time on an idle machine); with two threads they are of wall times.

`PYTHONPATH=OTHER_TREE python benchmarks/bench_sim.py` measures another tree (e.g. a `git archive` of the
commit before a change) with this script.

The fastest of `--repeats` runs is kept (the machine is shared; the minimum is the least disturbed run).

Run:  python benchmarks/bench_sim.py [--samples 1000] [--repeats 5] [--out benchmarks/results/sim.json]
      python benchmarks/bench_sim.py --cost-only [--repeats 20] [--out benchmarks/results/sim_cost.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from models import save_tanh_mlp
from threadpoolctl import threadpool_limits

import lea_compiler
from lea_compiler import interpreter
from lea_compiler.backends.cost import estimate_cost
from lea_compiler.backends.sim import CrossbarLayer, Dataset, EventCounts, simulate
from lea_compiler.chip import synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.schedule import execute
from lea_compiler.schedule.plan import schedule_of

ROOT = Path(__file__).resolve().parents[1]
TREE = Path(lea_compiler.__file__).resolve().parents[1]  # the tree under test
SIZES = (784, 150, 10)
ARRAYS = (128, 25)
COPIES = (1, 6)
THREADS = (1, 2)


def anchor_mlp(path: Path, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The 784-150-10 tanh MLP: weights N(0, 1 / fan-in), biases N(0, 0.1^2)."""
    rng = np.random.default_rng(seed)
    weights = [(rng.normal(size=(m, n)) / np.sqrt(m)).astype(np.float32) for m, n in zip(SIZES[:-1], SIZES[1:],
                                                                                          strict=True)]
    biases = [(0.1 * rng.normal(size=n)).astype(np.float32) for n in SIZES[1:]]
    save_tanh_mlp(path, weights, biases)
    return weights, biases


@contextmanager
def anchor_model() -> Iterator[tuple[Path, list[np.ndarray], list[np.ndarray]]]:
    """The anchor MLP saved in a temporary folder, removed after: its path, weights and biases."""
    with tempfile.TemporaryDirectory() as tmp_name:
        model = Path(tmp_name) / "mlp.onnx"
        weights, biases = anchor_mlp(model)
        yield model, weights, biases


def anchor_samples(samples: int) -> np.ndarray:
    """The anchor workload's inputs: `samples` random vectors in [0, 1), float32, seed 1."""
    return np.random.default_rng(1).uniform(0, 1, size=(samples, SIZES[0])).astype(np.float32)


def ideal_forward(x: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray], k: int) -> np.ndarray:
    """The float32 baseline: every copy's x @ W, averaged, the bias, tanh between layers."""
    h = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = sum(h @ w for _ in range(k)) / np.float32(k) + b
        if i < len(weights) - 1:
            h = np.tanh(h)
    return h


def best_of(fn: Callable[..., Any], *args: Any, repeats: int, **kwargs: Any) -> tuple[float, float]:
    """The fastest of `repeats` calls of fn(*args, **kwargs): (wall seconds, CPU seconds of the process)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(*args, **kwargs)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def crossbar_products(x: np.ndarray, layers: list[CrossbarLayer]) -> None:
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


def noise_draws(layers: list[CrossbarLayer], samples: int) -> None:
    """The read-noise draws of one forward over `samples` samples: per layer, one Gaussian per column current of
    every row band (reads = 1), drawn in the forward's chunks from the forward's generators (or, in a tree
    before `noise_generator`, numpy's default one)."""
    make = getattr(execute, "noise_generator", lambda base, index: np.random.default_rng([base, index]))
    for sim in layers:
        executor = sim.executor
        currents = 2 * executor.alpha * executor.cols
        chunk = max(32, execute._CHUNK_CURRENTS // currents)
        for index, lo in enumerate(range(0, samples, chunk)):
            rng = make(0, index)
            for _ in executor._bands():
                execute.gaussian(rng, (min(chunk, samples - lo), currents))


def crossbar_kernels(layers: list[CrossbarLayer], seed: int = 0) -> dict[str, Callable[..., list[np.ndarray]]]:
    """The interpreter's kernels that simulate each crossbar layer (its read noise seeded by `seed` per call)."""
    return {layer.plan.name: (lambda s: (lambda node, inputs: [s.forward(inputs[0], np.random.default_rng(seed),
                                                                         EventCounts())]))(layer)
            for layer in layers}


def process_seconds(program: Path, data: Path, threads: int, repeats: int) -> tuple[float, float]:
    """The fastest of `repeats` fresh `leac simulate` processes: (wall seconds, CPU seconds, user + system)."""
    env = dict(os.environ, PYTHONPATH=str(TREE), OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    wall, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lea_compiler", "simulate", str(program), "--data", str(data),
                        "--json"], env=env, check=True, capture_output=True)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return min(wall), min(cpu)


def anchor_program(model: Path, size: int, k: int) -> Any:
    """The anchor MLP compiled (greedy placer) for a 2%-stuck chip of `size` x `size` arrays, 10% spare."""
    regions = sum(-(-(m + 1) // size) * -(-n // size) for m, n in zip(SIZES[:-1], SIZES[1:], strict=True)) * 2 * k
    chip = synth_chip(arrays=regions + regions // 10 + 4, rows=size, cols=size, stuck_high=0.015,
                      stuck_low=0.005, seed=0)
    return compile_model(model, chip, CompileOptions(k=k, placer="greedy")).program


def cost_model_ms(program: Any, repeats: int) -> dict[str, float]:
    """CPU ms of `estimate_cost` (the fastest of `repeats`): as `simulate()` calls it (its schedule lowered, the
    measured device-read energy given) and without data (the full-scale bound of every read)."""
    schedule = schedule_of(program)
    measured = {name: 1.0 for name in schedule.layers}
    _, with_data = best_of(estimate_cost, program, program.chip, schedule, device_read_pJ=measured, repeats=repeats)
    _, without = best_of(estimate_cost, program, program.chip, schedule, repeats=repeats)
    return {"cost_model_ms": 1e3 * with_data, "cost_model_full_scale_ms": 1e3 * without}


def measure(tmp: Path, size: int, k: int, x: np.ndarray, labels: np.ndarray, weights: list[np.ndarray],
            biases: list[np.ndarray], model: Path, repeats: int) -> list[dict[str, Any]]:
    program = anchor_program(model, size, k)
    chip = program.chip
    program_path, data_path = tmp / f"mlp_{size}_{k}.leac", tmp / "data.npz"
    program.save(program_path)
    np.savez(data_path, x=x, y=labels)
    data = Dataset("random", x, labels)
    schedule = schedule_of(program)
    layers = [CrossbarLayer(plan, schedule, chip, np.random.default_rng(0), ideal=False, exact_read_noise=False)
              for plan in schedule.layers.values()]
    kernels = crossbar_kernels(layers)

    def forward_through_adc() -> None:
        for sim in layers:
            sim.executor.linear = False
        try:
            interpreter.run(program.graph, {"x": x}, kernels=kernels)
        finally:
            for sim in layers:
                sim.executor.linear = True

    rows = []
    for threads in THREADS:
        with threadpool_limits(limits=threads):
            ideal = best_of(ideal_forward, x, weights, biases, k, repeats=repeats)
            products = best_of(crossbar_products, x, layers, repeats=repeats)
            noise = best_of(noise_draws, layers, len(x), repeats=repeats)
            forward = best_of(interpreter.run, program.graph, {"x": x}, kernels=kernels, repeats=repeats)
            through_adc = best_of(forward_through_adc, repeats=repeats)
            whole = best_of(simulate, program, [data], seed=0, repeats=repeats)
            cost = cost_model_ms(program, repeats)
            load_ms = 1e3 * best_of(Program.load, program_path, repeats=repeats)[1]
        process = process_seconds(program_path, data_path, threads, max(1, repeats // 2))
        row: dict[str, Any] = {"array": f"{size}x{size}", "k": k, "blas_threads": threads, "samples": len(x),
                               "devices": program.devices_used,
                               "regions": sum(len(p.reads) for p in schedule.layers.values()), **cost,
                               "program_load_ms": load_ms}
        for key, (wall, cpu) in (("ideal_numpy", ideal), ("products", products), ("noise_draws", noise),
                                 ("crossbar_forward", forward), ("forward_through_adc", through_adc),
                                 ("simulate", whole), ("process", process)):
            row[f"{key}_s"], row[f"{key}_cpu_s"] = wall, cpu
        # one thread: CPU time, which other jobs on a shared machine disturb less; two: wall time
        clock = "_cpu_s" if threads == 1 else "_s"
        for key in ("products", "noise_draws", "crossbar_forward", "forward_through_adc", "simulate", "process"):
            row[f"{key}_ratio"] = row[f"{key}{clock}"] / row[f"ideal_numpy{clock}"]
        rows.append(row)
        print(f"{size}x{size} k={k} threads={threads}: ideal {row['ideal_numpy' + clock] * 1e3:.1f} ms; products "
              f"{row['products_ratio']:.1f}x; noise draws {row['noise_draws_ratio']:.1f}x; forward "
              f"{row['crossbar_forward' + clock] * 1e3:.1f} ms ({row['crossbar_forward_ratio']:.1f}x; every current "
              f"through the ADC {row['forward_through_adc_ratio']:.1f}x); simulate() "
              f"{row['simulate' + clock] * 1e3:.1f} ms ({row['simulate_ratio']:.1f}x); process "
              f"{row['process' + clock]:.2f} s ({row['process_ratio']:.0f}x); cost model "
              f"{cost['cost_model_ms']:.1f} ms; Program.load {load_ms:.1f} ms", flush=True)
    return rows


def table(rows: list[dict[str, Any]], threads: int) -> str:
    """The issue's table (ratios to the ideal numpy forward) for one thread count, as Markdown."""
    chosen = [r for r in rows if r["blas_threads"] == threads]
    head = " | ".join(f"{r['array'].replace('x', ' x ')}, k = {r['k']}" for r in chosen)
    clock = "_cpu_s" if threads == 1 else "_s"
    lines = [f"| {threads} BLAS thread{'s' if threads > 1 else ''} | {head} |", "| --- |" + " --- |" * len(chosen),
             f"| ideal numpy forward ({'CPU' if threads == 1 else 'wall'} ms) | "
             + " | ".join(f"{r['ideal_numpy' + clock] * 1e3:.1f}" for r in chosen) + " |"]
    for key, label in (("products", "products alone (x @ G, both polarities)"),
                       ("noise_draws", "read-noise draws alone (one per column current)"),
                       ("crossbar_forward", "crossbar forward, all non-idealities"),
                       ("forward_through_adc", "the same, every current through the ADC (no linear reads)"),
                       ("simulate", "whole `leac.simulate()`"), ("process", "whole `leac simulate` process")):
        fmt = "{:.0f}x" if key == "process" else "{:.1f}x"
        lines.append(f"| {label} | " + " | ".join(fmt.format(r[f"{key}_ratio"]) for r in chosen) + " |")
    return "\n".join(lines + cost_lines(chosen))


def cost_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The rows of a table in CPU ms, whatever the threads (no BLAS calls): the cost model's, and `Program.load`'s
    where the rows have it."""
    return [f"| {label} | " + " | ".join(f"{r[key]:.1f}" for r in rows) + " |"
            for key, label in (("cost_model_ms", "cost model as `simulate()` runs it (CPU ms)"),
                               ("cost_model_full_scale_ms", "cost model without data, full-scale reads (CPU ms)"),
                               ("program_load_ms", "`Program.load` of its `.leac` file (CPU ms)"))
            if all(key in r for r in rows)]


def cost_only(model: Path, repeats: int) -> list[dict[str, Any]]:
    """Only the cost model's time, per array size and k (one BLAS thread)."""
    rows = []
    for size in ARRAYS:
        for k in COPIES:
            program = anchor_program(model, size, k)
            with threadpool_limits(limits=1):
                row = {"array": f"{size}x{size}", "k": k, "regions": sum(len(p.reads) for p in
                                                                          schedule_of(program).layers.values()),
                       **cost_model_ms(program, repeats)}
            rows.append(row)
            print(f"{size}x{size} k={k}: {row['regions']} regions; cost model {row['cost_model_ms']:.1f} ms, without "
                  f"data {row['cost_model_full_scale_ms']:.1f} ms", flush=True)
    head = " | ".join(f"{r['array'].replace('x', ' x ')}, k = {r['k']}" for r in rows)
    print("\n".join([f"| 1 BLAS thread | {head} |", "| --- |" + " --- |" * len(rows), *cost_lines(rows)]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="default benchmarks/results/sim.json (sim_cost.json with "
                        "--cost-only)")
    parser.add_argument("--cost-only", action="store_true", help="only the cost model's time (estimate_cost)")
    args = parser.parse_args()
    out = Path(args.out or ROOT / "benchmarks" / "results" / ("sim_cost.json" if args.cost_only else "sim.json"))
    if args.cost_only:
        load = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp_name:
            anchor_mlp(Path(tmp_name) / "mlp.onnx")
            rows = cost_only(Path(tmp_name) / "mlp.onnx", args.repeats)
        print(f"tree {TREE}; load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": rows, "repeats": args.repeats, "tree": str(TREE),
                                   "load_average": [load, os.getloadavg()]}, indent=2) + "\n")
        print(f"wrote {out}")
        return
    x = anchor_samples(args.samples)
    rows: list[dict[str, Any]] = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = tmp / "mlp.onnx"
        weights, biases = anchor_mlp(model)
        labels = ideal_forward(x, weights, biases, 1).argmax(axis=1)
        for size in ARRAYS:
            for k in COPIES:
                rows += measure(tmp, size, k, x, labels, weights, biases, model, args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for threads in THREADS:
        print(table(rows, threads), end="\n\n")
    print(f"peak memory {peak:.0f} MiB; tree {TREE}; load average {load[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    result = {"rows": rows, "peak_rss_MiB": peak, "samples": args.samples, "repeats": args.repeats,
              "tree": str(TREE), "load_average": [load, os.getloadavg()]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
