"""Where `simulate()`'s time goes: its steps timed one by one on bench_sim.py's anchor workload.

For each configuration of bench_sim.py (the 784-150-10 tanh MLP, 1,000 samples, 2%-stuck chips of 128 x 128 and
25 x 25 arrays, k = 1 and 6), one BLAS thread, the fastest CPU time of `--repeats` calls of each step as
`simulate()` runs it:

- lowering: `schedule_of(program, check=False)`, called again and again, and each call right after a whole
  `simulate()` (as `simulate()` meets it: the memory its buffers take fresh from the system, which a call after
  a call of itself reuses; the difference is what the steps' sum misses of the whole);
- programming: every layer's `CrossbarLayer` (the devices written with write noise, stuck devices placed), for
  the first draw of a schedule (each repeat on a schedule lowered afresh, untimed: what depends on the plans
  alone, `LayerPlan.derived`, is made too) and for later draws (again and again on one schedule, as
  `simulate_trials`' draws after its first: the plans' part made once), and later draws right after a whole
  `simulate()`;
- executor set-up: what the first forward makes, the row bands (`_bands`) and the linear reads, likewise for the
  first draw of a schedule (its layers built untimed) and for later draws;
- forward: the graph with the crossbar kernels, the set-up done;
- digital reference: the graph without them (the interpreter on the Program's float graph);
- software baseline: `software_predictions` (onnxruntime on the original model);
- cost model: `estimate_cost` with the schedule and measured device-read energy, as `simulate()` calls it, for
  the first draw of a schedule (lowered afresh, untimed) and for later draws (its timeline kept with the schedule,
  `Schedule.derived`);
- whole `simulate()`, and the ideal numpy forward of all k copies for scale;
- two derived rows: the whole's floor, forward + digital reference + software baseline (the three steps that
  grow with the samples and that every report needs: the crossbar outputs, the reference of the layer errors,
  onnxruntime's baseline of the software accuracy), and the floor and the whole as multiples of the ideal forward
  (issue 19's ratio: at k = 1 the floor alone is above 4x on 1,000 samples).

Run:  python benchmarks/bench_sim_steps.py [--repeats 5] [--out benchmarks/results/sim_steps.txt]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_sim import ARRAYS, COPIES, anchor_mlp, anchor_program, crossbar_kernels, ideal_forward
from threadpoolctl import threadpool_limits

from lea_compiler import interpreter
from lea_compiler.backends.cost import estimate_cost
from lea_compiler.backends.sim import CrossbarLayer, Dataset, simulate, software_predictions
from lea_compiler.schedule.plan import Schedule, schedule_of


def cpu_ms(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest CPU time of `repeats` calls of fn, in ms."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return 1e3 * best


def cpu_ms_after(before: Callable[[], Any], fn: Callable[[], Any], repeats: int) -> float:
    """The fastest CPU time of `repeats` calls of fn, each right after a call of `before` (untimed), in ms: fn as
    it runs inside a larger job, its memory fresh from the system and its caches cold, not reused from its own
    previous call."""
    best = float("inf")
    for _ in range(repeats):
        before()
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return 1e3 * best


def steps(program: Any, x: np.ndarray, labels: np.ndarray, weights: list, biases: list, k: int,
          repeats: int) -> dict[str, float]:
    """Each step's CPU ms for one Program (see the module's docstring)."""
    schedule = schedule_of(program, check=False)

    def layers(on: Schedule = schedule) -> list[CrossbarLayer]:
        return [CrossbarLayer(plan, on, program.chip, np.random.default_rng(0), ideal=False,
                              exact_read_noise=False) for plan in on.layers.values()]

    built = layers()

    def set_up(made: list[CrossbarLayer] = built) -> None:
        for layer in made:
            executor = layer.executor
            executor._prepared_for = None  # make the bands again
            executor._linear = None
            executor._linear_reads(executor._bands())

    fresh: list[CrossbarLayer] = []
    lowered: list[Schedule] = []

    def lower() -> None:
        lowered[:] = [schedule_of(program, check=False)]

    def program_fresh() -> None:
        fresh[:] = layers(lowered[0])

    def first_set_up() -> None:
        set_up(fresh)

    kernels = crossbar_kernels(built)
    data = Dataset("random", x, labels)
    measured = {name: 1.0 for name in schedule.layers}

    def whole() -> None:
        simulate(program, [data], seed=0)

    return {
        "ideal numpy forward": cpu_ms(lambda: ideal_forward(x, weights, biases, k), repeats),
        "lowering": cpu_ms(lambda: schedule_of(program, check=False), repeats),
        "lowering, right after a simulate()": cpu_ms_after(whole, lambda: schedule_of(program, check=False),
                                                           repeats),
        "programming, first draw of a schedule": cpu_ms_after(lower, program_fresh, repeats),
        "programming, later draws": cpu_ms(layers, repeats),
        "programming, right after a simulate()": cpu_ms_after(whole, layers, repeats),
        "executor set-up, first draw of a schedule": cpu_ms_after(lambda: (lower(), program_fresh()), first_set_up,
                                                                  repeats),
        "executor set-up, later draws": cpu_ms(set_up, repeats),
        "forward": cpu_ms(lambda: interpreter.run(program.graph, {"x": x}, kernels=kernels), repeats),
        "digital reference": cpu_ms(lambda: interpreter.run(program.graph, {"x": x}), repeats),
        "software baseline": cpu_ms(lambda: software_predictions(program, [data], None), repeats),
        "cost model, first draw of a schedule": cpu_ms_after(lower, lambda: estimate_cost(
            program, program.chip, lowered[0], device_read_pJ=measured), repeats),
        "cost model, later draws": cpu_ms(lambda: estimate_cost(program, program.chip, schedule,
                                                                device_read_pJ=measured), repeats),
        "whole simulate()": cpu_ms(whole, repeats),
    }


def with_floor(row: dict[str, float]) -> dict[str, float]:
    """The row with the derived rows (see the module's docstring): the floor in ms, and the floor and the whole
    over the ideal forward (x, not ms)."""
    floor = row["forward"] + row["digital reference"] + row["software baseline"]
    ideal = row["ideal numpy forward"]
    return {**row, "floor: forward + digital reference + software baseline": floor,
            "floor / ideal (x)": floor / ideal, "whole simulate() / ideal (x)": row["whole simulate()"] / ideal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    x = np.random.default_rng(1).random((args.samples, 784), dtype=np.float32)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights, biases = anchor_mlp(Path(tmp) / "mlp.onnx")
        labels = ideal_forward(x, weights, biases, 1).argmax(axis=1)
        with threadpool_limits(limits=1):
            for size in ARRAYS:
                for k in COPIES:
                    program = anchor_program(Path(tmp) / "mlp.onnx", size, k)
                    name = f"{size} x {size}, k = {k}"
                    rows[name] = with_floor(steps(program, x, labels, weights, biases, k, args.repeats))
                    print(name + ": " + ", ".join(f"{step} {ms:.1f}" for step, ms in rows[name].items()),
                          flush=True)
    names = list(rows)
    lines = ["| CPU ms, 1 BLAS thread | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    lines += [f"| {step} | " + " | ".join(f"{rows[n][step]:.1f}" for n in names) + " |"
              for step in rows[names[0]]]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
