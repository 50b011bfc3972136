"""Where the crossbar forward's time goes with linear reads, step by step, against the ideal forward.

bench_sim.py's anchor workload (the 784-150-10 tanh MLP, 1,000 random samples in [0, 1), 2%-stuck chips of
128 x 128 and 25 x 25 arrays, k = 1 by default), one BLAS thread. Each crossbar layer's
`CrossbarExecutor.forward` runs as `simulate()` runs it (its set-up done before, untimed), with its steps timed
where they are called (wall ms per forward, the forward with the least total of `--repeats`):

- DAC: `_dac_voltages` (each vector over its full scale, clipped, rounded to the DAC's levels);
- read energy: `read_power_of` (the column sums of the voltages' squares, for the energy of the device reads);
- pairs' test: `LinearReads.split` (each (vector, row band) pair's |v_b|^2, and whether it reads linearly);
- linear read: `LinearReads.read` (v @ E, one product of the layer's shape, and the noise's variance, drawn as
  one Gaussian per output column);
- draws: the chunks' generators and Gaussian draws (`noise_generator`, `gaussian`);
- the rest: the forward's own work between them (its chunks, the output's scale and bias);

next to the ideal float32 forward (bench_sim.py's `ideal_forward`, all k copies) and its first layer's product
x @ W alone. The forward's floor is one product of the ideal's size per layer (v @ E); what the ratio of the
forward to the ideal forward adds above 1x is the steps' elementwise passes, which a faster BLAS does not speed up.

Run:  python benchmarks/bench_linear_steps.py [--arrays 128 25] [--k 1] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from bench_sim import anchor_model, anchor_program, anchor_samples, best_of, ideal_forward
from threadpoolctl import threadpool_limits

from lea_compiler.backends.sim import CrossbarLayer
from lea_compiler.schedule import execute, linear_reads
from lea_compiler.schedule.plan import schedule_of

STEPS = ("DAC", "read energy", "pairs' test", "linear read", "draws")
TIMED = ((execute.CrossbarExecutor, "_dac_voltages", "DAC"), (execute.CrossbarExecutor, "read_power_of", "read energy"),
         (linear_reads.LinearReads, "split", "pairs' test"), (linear_reads.LinearReads, "read", "linear read"),
         (execute, "gaussian", "draws"), (execute, "noise_generator", "draws"))


@contextmanager
def timed_steps(seconds: dict[str, float]) -> Iterator[None]:
    """Add each step's wall time to `seconds` while inside (the functions wrapped where the forward finds them)."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in TIMED]

    def wrapped(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - start
        return run

    for (owner, name, original), (_, _, label) in zip(originals, TIMED, strict=True):
        setattr(owner, name, wrapped(original, label))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def layer_steps(layer: CrossbarLayer, x: np.ndarray, repeats: int) -> dict[str, float]:
    """One layer's forward on x: each step's ms and the whole's, from the repeat with the least whole."""
    executor = layer.executor
    executor.forward(x, np.random.default_rng(0))  # the set-up (bands, linear reads), untimed
    best: dict[str, float] = {}
    for _ in range(repeats):
        seconds: defaultdict[str, float] = defaultdict(float)
        with timed_steps(seconds):
            start = time.perf_counter()
            executor.forward(x, np.random.default_rng(0))
            whole = time.perf_counter() - start
        if not best or 1e3 * whole < best["whole"]:
            best = {step: 1e3 * seconds[step] for step in STEPS}
            best["the rest"] = 1e3 * whole - sum(best.values())
            best["whole"] = 1e3 * whole
    return best


def measure(model: Path, size: int, k: int, x: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray],
            repeats: int) -> str:
    """The Markdown table of one configuration."""
    program = anchor_program(model, size, k)
    schedule = schedule_of(program)
    layers = [CrossbarLayer(plan, schedule, program.chip, np.random.default_rng(0), ideal=False,
                            exact_read_noise=False) for plan in schedule.layers.values()]
    linear = [layer.executor.linear for layer in layers]
    assert all(linear), "every layer of the anchor workload reads linearly"
    ideal = 1e3 * best_of(ideal_forward, x, weights, biases, k, repeats=repeats)[0]
    first_product = 1e3 * best_of(np.matmul, x, weights[0], repeats=repeats)[0]
    inputs = [x, np.tanh(ideal_forward(x, weights[:1], biases[:1], 1)).astype(np.float32)]
    columns = [layer_steps(layer, h, repeats) for layer, h in zip(layers, inputs, strict=True)]
    total = {step: sum(column[step] for column in columns) for step in columns[0]}
    names = [layer.plan.name for layer in layers]
    lines = [f"{size} x {size}, k = {k}: ideal forward {ideal:.2f} ms (its first product x @ W alone "
             f"{first_product:.2f} ms); wall ms per forward, one BLAS thread, and the total over the ideal forward",
             "", f"| step | {' | '.join(names)} | both layers | / ideal forward |",
             "| --- |" + " --- |" * (len(names) + 2)]
    for step in total:
        cells = " | ".join(f"{column[step]:.2f}" for column in columns)
        lines.append(f"| {step} | {cells} | {total[step]:.2f} | {total[step] / ideal:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arrays", type=int, nargs="+", default=[128, 25])
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    x = anchor_samples(args.samples)
    with anchor_model() as (model, weights, biases), threadpool_limits(limits=1):
        for size in args.arrays:
            print(measure(model, size, args.k, x, weights, biases, args.repeats), flush=True)


if __name__ == "__main__":
    main()
