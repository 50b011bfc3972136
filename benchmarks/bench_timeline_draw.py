"""The timeline picture's cost on an ordinary conv (review 1, item 1): a 1x1 Conv, 4 -> 8 channels, on an
H x H input (H^2 applications), compiled at k = 6 on lea_compiler/data/paper_chip.json; the wall time of
`estimate_cost` (the timeline without bars) and of `draw_timeline` (bars, merged per row and colour), the
tasks and the peak memory of the process.

    OMP_NUM_THREADS=1 python benchmarks/bench_timeline_draw.py 64 256 [--out results/timeline_draw.json]

Before the fix (main at 65ed987, review 1): H = 64 drew in 31.5 s; H = 256 was still drawing after 400 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lea_compiler.backends.cost import estimate_cost  # noqa: E402
from lea_compiler.chip import load_chip  # noqa: E402
from lea_compiler.compiler import compile_model  # noqa: E402
from lea_compiler.pipeline import CompileOptions  # noqa: E402
from lea_compiler.plot_timeline import draw_timeline  # noqa: E402


def conv_model(size: int, path: Path) -> None:
    """review1/big.py: weights sign(N(0, 1)) of seed 0."""
    w = np.sign(np.random.default_rng(0).standard_normal((8, 4, 1, 1))).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, size, size])
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])
    graph = helper.make_graph([node], "big", [x], [y], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    chip = load_chip(ROOT / "lea_compiler/data/paper_chip.json")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            conv_model(size, Path(tmp) / "m.onnx")
            program = compile_model(Path(tmp) / "m.onnx", chip, CompileOptions(k=6)).program
            started = time.perf_counter()
            cost = estimate_cost(program)
            cost_s = time.perf_counter() - started
            started = time.perf_counter()
            drawn = draw_timeline(program, Path(tmp) / "t.png")
            draw_s = time.perf_counter() - started
            row = {"H": size, "applications": size * size, "tasks": cost.timed_tasks, "exact": cost.timing_exact,
                   "latency_ns": cost.latency_ns, "estimate_cost_s": round(cost_s, 3), "draw_s": round(draw_s, 3),
                   "tasks_drawn": drawn.tasks,
                   "maxrss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
