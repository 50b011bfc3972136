"""The README's programming figures: the bundled Yin-Yang example programmed and simulated over ten seeds.

The README's worked example compiles the bundled Yin-Yang MLP at k = 3 for the bundled paper-like chip, programs
it on the simulated board (`leac program --attempts 10 --readback-reads 8`) and simulates the as-programmed
Program. This script repeats that for programming and noise seeds 0..9 (board seed = simulate seed = S, as
`leac program --seed S` then `leac simulate --seed S`) for four variants: closed loop with re-programming (the
README's command), open loop with one write per device, closed loop with one write, and open loop with the same
re-programming. It prints, per variant, the mean accuracy over both test sets with its population standard
deviation and range over the seeds, and seed 0's.

Run:  python benchmarks/bench_readme_programming.py [--out benchmarks/results/readme_programming.txt]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import lea_compiler as leac
from lea_compiler.chip import load_chip
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions

DATA = Path(__file__).resolve().parents[1] / "lea_compiler" / "data"
VARIANTS = {"closed-loop, 10 writes, 8 reads": dict(strategy="closed-loop", attempts=10, readback_reads=8),
            "open-loop, 1 write": dict(strategy="open-loop", attempts=1),
            "closed-loop, 1 write": dict(strategy="closed-loop", attempts=1),
            "open-loop, 10 writes, 8 reads": dict(strategy="open-loop", attempts=10, readback_reads=8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default=None, help="also write the lines to this file")
    args = parser.parse_args()
    data = [DATA / "yinyang_task1_test.npz", DATA / "yinyang_task2_test.npz"]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "yinyang.leac"
        compile_model(DATA / "yinyang_mlp.onnx", load_chip(DATA / "paper_chip.json"),
                      CompileOptions(k=3)).program.save(program)
        for name, settings in VARIANTS.items():
            accuracy = []
            for seed in range(args.seeds):
                done = leac.program_chip(program, seed=seed, **settings)  # type: ignore[arg-type]
                accuracy.append(100 * leac.simulate(done.program, data, seed=seed).accuracy)
            lines.append(f"{name}: {statistics.mean(accuracy):.1f}% +- {statistics.pstdev(accuracy):.1f}% "
                         f"({min(accuracy):.1f}-{max(accuracy):.1f}%) over seeds 0..{args.seeds - 1}; "
                         f"seed 0 {accuracy[0]:.1f}%")
            print(lines[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
