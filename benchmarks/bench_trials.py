"""`simulate_trials` (`leac simulate --trials N`, `leac report`): N noise draws of one Program, timed.

The draws share what does not depend on the seed: onnxruntime's software baseline and, since the Program's
schedule is lowered once for all of them (`simulate(schedule=...)`), the lowering. On bench_sim.py's anchor
workload (the 784-150-10 tanh MLP on 1,000 random samples, 2%-stuck chips of 128 x 128 and 25 x 25 arrays,
k = 1 and 6) and on the README's example (the bundled Yin-Yang MLP at k = 3 on the bundled chip, both bundled
data sets), one BLAS thread: the fastest CPU time of `--repeats` calls of `simulate_trials(trials=N)`, and per
draw. `PYTHONPATH=OTHER_TREE python benchmarks/bench_trials.py` measures another tree with this script.

Run:  python benchmarks/bench_trials.py [--trials 10] [--repeats 3] [--out benchmarks/results/trials.txt]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_sim import ARRAYS, COPIES, anchor_mlp, anchor_program, ideal_forward
from bench_sim_steps import cpu_ms
from threadpoolctl import threadpool_limits

import lea_compiler
from lea_compiler.backends.sim import Dataset, load_data, simulate_trials
from lea_compiler.chip import load_chip
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions

DATA = Path(lea_compiler.__file__).resolve().parent / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    x = np.random.default_rng(1).random((1000, 784), dtype=np.float32)
    lines = [f"| 1 BLAS thread, trials = {args.trials} | CPU ms | per draw |", "| --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        weights, biases = anchor_mlp(Path(tmp) / "mlp.onnx")
        labels = ideal_forward(x, weights, biases, 1).argmax(axis=1)
        jobs = []
        for size in ARRAYS:
            for k in COPIES:
                program = anchor_program(Path(tmp) / "mlp.onnx", size, k)
                jobs.append((f"anchor MLP, {size} x {size}, k = {k}", program, [Dataset("random", x, labels)]))
        example = compile_model(DATA / "yinyang_mlp.onnx", load_chip(DATA / "paper_chip.json"),
                                CompileOptions(k=3)).program
        jobs.append(("README example, k = 3", example,
                     [load_data(DATA / f"yinyang_task{t}_test.npz", example.graph) for t in (1, 2)]))
        for name, program, datasets in jobs:
            ms = cpu_ms(lambda: simulate_trials(program, datasets, trials=args.trials, seed=0),  # noqa: B023
                        args.repeats)
            lines.append(f"| {name} | {ms:.1f} | {ms / args.trials:.1f} |")
            print(lines[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
