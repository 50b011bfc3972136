"""The crossbar executor's set-up, piece by piece (issue 19: what `simulate()` spends before its forward).

On the anchor workload of bench_sim.py (the 784-150-10 tanh MLP compiled, greedy placer, for 2%-stuck chips of
25 x 25 and of 128 x 128 arrays, k = 1 and 6), each crossbar layer's devices are programmed once
(`backends.crossbar.CrossbarLayer`, the default device model), and then, one BLAS thread, the CPU time of:

- `CrossbarExecutor(...)`: the whole set-up `simulate()` runs per layer (its layout and row conductances; in a
  tree that keeps the plan's part with the plan, `schedule/read_layout.py`, only a later draw's part: the layout
  is the plan's);
- `lay_out`: each read's row band, polarity, copy slot and columns, and the combines' weights (made anew:
  `read_layout.lay_out`, in a tree before it `CrossbarExecutor._lay_out`);
- `_row_conductance`: each input row's conductance over every read (the read energy's);
- `_bands`: the row bands' matrices as the forward multiplies them (made on the first forward; with the plan's
  part kept, only the devices put in the bands);
- with `--simulate`, the whole `simulate()` (1,000 random samples, seed 0), which runs all of these once per layer.

The fastest of `--repeats` calls, summed over the layers, in ms. `PYTHONPATH=OTHER_TREE python
benchmarks/bench_executor_setup.py` measures another tree (e.g. a `git archive` of the commit before a change)
with this script.

Run:  python benchmarks/bench_executor_setup.py [--repeats 9] [--sizes 25 128] [--copies 1 6] [--simulate]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import lea_compiler
from lea_compiler.backends.sim import CrossbarLayer, Dataset, simulate
from lea_compiler.schedule.execute import CrossbarExecutor
from lea_compiler.schedule.plan import schedule_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sim import anchor_mlp, anchor_program, best_of  # noqa: E402

TREE = Path(lea_compiler.__file__).resolve().parents[1]


def fastest_ms(fn: Callable[[], Any], repeats: int) -> float:
    """CPU ms of the fastest of `repeats` calls."""
    return 1e3 * best_of(fn, repeats=repeats)[1]


def pieces(layer: CrossbarLayer, repeats: int) -> dict[str, float]:
    """The set-up's pieces for one layer, CPU ms each."""
    ex = layer.executor
    args = (ex.plan, ex.conductances)
    kwargs = {"dac_bits": ex.dac_bits, "adc_bits": ex.adc_bits, "read_noise_uS": ex.read_noise,
              "exact_read_noise": ex.exact_read_noise}

    def bands() -> None:
        ex._prepared_for = None
        ex._bands()

    return {"init": fastest_ms(lambda: CrossbarExecutor(*args, **kwargs), repeats),
            "lay_out": fastest_ms(_lay_out(ex), repeats),
            "row_conductance": fastest_ms(ex._row_conductance, repeats),
            "bands": fastest_ms(bands, repeats)}


def _lay_out(ex: CrossbarExecutor) -> Callable[[], Any]:
    """The executor's layout made anew: `read_layout.lay_out` of its plan, or a tree's before it
    `CrossbarExecutor._lay_out`."""
    try:
        from lea_compiler.schedule.read_layout import lay_out
    except ImportError:
        return ex._lay_out  # type: ignore[attr-defined,no-any-return]
    return functools.partial(lay_out, ex.plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 128])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 6])
    parser.add_argument("--simulate", action="store_true", help="time the whole simulate() too")
    args = parser.parse_args()
    print(f"tree {TREE}")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "mlp.onnx"
        anchor_mlp(model)
        for size in args.sizes:
            for k in args.copies:
                program = anchor_program(model, size, k)
                schedule = schedule_of(program)
                layers = [CrossbarLayer(plan, schedule, program.chip, np.random.default_rng(0), ideal=False,
                                        exact_read_noise=False) for plan in schedule.layers.values()]
                reads = sum(len(plan.reads) for plan in schedule.layers.values())
                with threadpool_limits(limits=1):
                    per_layer = [pieces(layer, args.repeats) for layer in layers]
                total = {key: sum(p[key] for p in per_layer) for key in per_layer[0]}
                whole = ""
                if args.simulate:
                    x = np.random.default_rng(1).uniform(0, 1, size=(1000, 784)).astype(np.float32)
                    data = [Dataset("random", x, np.zeros(1000, dtype=np.int64))]
                    with threadpool_limits(limits=1):
                        run = functools.partial(simulate, program, data, seed=0)
                        run()
                        whole = f"; simulate() {fastest_ms(run, args.repeats):.1f} ms"
                print(f"{size} x {size}, k = {k}, {reads} reads: CrossbarExecutor() {total['init']:.2f} ms "
                      f"(lay_out {total['lay_out']:.2f}, _row_conductance {total['row_conductance']:.2f}); "
                      f"_bands {total['bands']:.2f} ms{whole}", flush=True)


if __name__ == "__main__":
    main()
