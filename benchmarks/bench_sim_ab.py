"""The simulator's speed, comparable across commits: whole `simulate` and the crossbar forward alone.

bench_sim.py's network (a 64-150-10 ternary tanh MLP at k = 1 and 6 on 400 arrays of 25 x 25, 10,000
random samples) is compiled once with the greedy placer into WORK (argv[1], default /tmp/leac-sim-ab) and
reused, so two trees time the same Programs. Run it with PYTHONPATH pointing at each tree in turn, several
times alternating; it prints best-of-N seconds as one JSON line. The crossbar forward is timed with the
ranges calibrated on the samples (both trees) and, where the tree has the schedule (issue 14), with the
per-vector input rule too. One BLAS thread.

    PYTHONPATH=/path/to/old python benchmarks/bench_sim_ab.py; PYTHONPATH=. python benchmarks/bench_sim_ab.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
from models import save_tanh_mlp  # noqa: E402

from lea_compiler import interpreter  # noqa: E402
from lea_compiler.backends import sim  # noqa: E402
from lea_compiler.chip import synth_chip  # noqa: E402
from lea_compiler.compiler import compile_model  # noqa: E402
from lea_compiler.pipeline import CompileOptions  # noqa: E402
from lea_compiler.program import Program  # noqa: E402


def best(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def kernels_of(layers: dict[str, Any]) -> dict[str, Any]:
    def kernel(layer: Any) -> Any:
        return lambda node, inputs: [layer.forward(inputs[0], np.random.default_rng(0), sim.EventCounts())]

    return {name: kernel(layer) for name, layer in layers.items()}


def forward_times(program: Program, chip: Any, x: np.ndarray, calibration: Any) -> dict[str, float]:
    """The crossbar forward over x, best of 7: per range rule the tree has."""
    if "plan" in sim.CrossbarLayer.__init__.__code__.co_varnames:  # the schedule (issue 14)
        from lea_compiler.program import with_calibration
        from lea_compiler.schedule.plan import schedule_of

        calibrated = with_calibration(program, calibration.input_full_scale, calibration.adc_full_scale_uA,
                                      "bench")
        out = {}
        for label, prog in (("per_vector", program), ("calibrated", calibrated)):
            schedule = schedule_of(prog)
            layers = {name: sim.CrossbarLayer(plan, schedule, chip, np.random.default_rng(0), ideal=False,
                                              exact_read_noise=False) for name, plan in schedule.layers.items()}
            kernels = kernels_of(layers)
            out[label] = best(lambda: interpreter.run(prog.graph, {"x": x}, kernels=kernels), 7)  # noqa: B023
        return out
    layers = {}
    for layer in program.layers:
        old = sim.CrossbarLayer(layer, program.graph.node(layer.name), chip, np.random.default_rng(0),
                                ideal=False, exact_read_noise=False)
        old.x_fs = calibration.input_full_scale[layer.name]
        old.full_scale = calibration.adc_full_scale_uA[layer.name]
        layers[layer.name] = old
    kernels = kernels_of(layers)
    return {"calibrated": best(lambda: interpreter.run(program.graph, {"x": x}, kernels=kernels), 7)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", nargs="?", default="/tmp/leac-sim-ab",
                        help="the folder of the compiled Programs, made and reused (default /tmp/leac-sim-ab)")
    work = parser.parse_args().work
    os.makedirs(work, exist_ok=True)
    x = np.random.default_rng(1).uniform(0, 1, size=(10000, 64)).astype(np.float32)
    path = os.path.join(work, "mlp.onnx")
    if not os.path.exists(path):
        r = np.random.default_rng(0)
        save_tanh_mlp(path, [(r.integers(-1, 2, size=(m, n)) * 0.1).astype(np.float32)
                             for m, n in ((64, 150), (150, 10))])
    chip = synth_chip(arrays=400, rows=25, cols=25, seed=0)
    out: dict[str, float] = {}
    for k in (1, 6):
        program_path = os.path.join(work, f"k{k}.leac")
        if not os.path.exists(program_path):
            compile_model(path, chip, CompileOptions(k=k, placer="greedy")).program.save(program_path)
        program = Program.load(program_path)
        data = sim.Dataset("d", x, np.zeros(len(x), np.int64))
        out[f"k{k}_simulate_s"] = best(lambda: sim.simulate(program, [data], seed=0), 5)  # noqa: B023
        calibration = sim.calibrate(program, [data], chip)
        for label, seconds in forward_times(program, chip, x, calibration).items():
            out[f"k{k}_forward_{label}_s"] = seconds
    print(json.dumps(out))


if __name__ == "__main__":
    main()
