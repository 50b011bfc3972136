"""Linear reads against every current through the ADC, on one Program and the same devices, input by input.

bench_sim_fidelity.py compares accuracies over seeds, where the devices' write noise makes most of the spread.
This script holds the devices fixed (programmed once) and simulates each of `--inputs` random inputs `--draws`
times through the anchor MLP of bench_sim.py (784-150-10 tanh, a 2%-stuck chip of `--size` arrays at `--k`),
once with the linear reads (`simulate()`'s forward) and once with every current through the ADC
(`CrossbarExecutor(linear=False)`), and compares per input: the mean of each output (difference over its
standard error), its standard deviation (ratio), and the probability of each predicted class (z-score of the
difference, over the (input, class) pairs predicted sometimes but not always). Under "the same distribution" the
z-scores are standard normal: their RMS near 1.

Run:  python benchmarks/bench_linear_direct.py [--size 25] [--k 6] [--inputs 20] [--draws 1500] [--seed 11]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_sim import anchor_mlp, anchor_program, crossbar_kernels
from threadpoolctl import threadpool_limits

from lea_compiler import interpreter
from lea_compiler.backends.sim import CrossbarLayer
from lea_compiler.program import Program
from lea_compiler.schedule.plan import schedule_of


def outputs(program: Program, layers: list[CrossbarLayer], x: np.ndarray, linear: bool, seed: int) -> np.ndarray:
    """The model's output for x with every crossbar layer simulated, its reads linear or through the ADC."""
    for layer in layers:
        layer.executor.linear = linear
    out = interpreter.run(program.graph, {"x": x}, kernels=crossbar_kernels(layers, seed))
    return np.asarray(next(iter(out.values())) if isinstance(out, dict) else out[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=25)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--inputs", type=int, default=20)
    parser.add_argument("--draws", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=11, help="the ADC path's noise seed; the linear reads' is +1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anchor_mlp(Path(tmp) / "mlp.onnx")
        program = anchor_program(Path(tmp) / "mlp.onnx", args.size, args.k)
    schedule = schedule_of(program)
    layers = [CrossbarLayer(plan, schedule, program.chip, np.random.default_rng(0), ideal=False,
                            exact_read_noise=False) for plan in schedule.layers.values()]
    x = np.repeat(np.random.default_rng(1).random((args.inputs, 784), dtype=np.float32), args.draws, axis=0)
    with threadpool_limits(limits=1):
        adc, lin = (outputs(program, layers, x, linear, args.seed + linear).reshape(args.inputs, args.draws, -1)
                    for linear in (False, True))
    error = (lin.mean(axis=1) - adc.mean(axis=1)) / np.sqrt((adc.var(axis=1) + lin.var(axis=1)) / args.draws)
    ratio = lin.std(axis=1) / adc.std(axis=1)
    classes = adc.shape[-1]
    p_adc, p_lin = ((y.argmax(axis=2)[..., None] == np.arange(classes)).mean(axis=1) for y in (adc, lin))
    variance = (p_adc * (1 - p_adc) + p_lin * (1 - p_lin)) / args.draws
    seen = variance > 0  # predicted sometimes, not always (a class always or never predicted both ways agrees)
    z = (p_lin - p_adc)[seen] / np.sqrt(variance[seen])
    print(f"{args.size}x{args.size} k={args.k}, {args.inputs} inputs x {args.draws} draws, seeds {args.seed} "
          f"(ADC) and {args.seed + 1} (linear), one BLAS thread")
    print(f"output means: difference / standard error, RMS {np.sqrt(np.mean(error ** 2)):.3f}, "
          f"largest {np.abs(error).max():.2f} over {error.size}")
    print(f"output standard deviations: linear / ADC, mean {ratio.mean():.4f}, range {ratio.min():.3f}-"
          f"{ratio.max():.3f}")
    print(f"class probabilities: z of the difference, RMS {np.sqrt(np.mean(z ** 2)):.3f}, largest "
          f"{np.abs(z).max():.2f} over {z.size} (input, class) pairs predicted sometimes, not always")


if __name__ == "__main__":
    main()
