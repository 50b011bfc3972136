"""Memory and time of one depthwise layer in the reference interpreter, the simulator's crossbar forward and the
calibration, against the number of groups G.

Each grouped product multiplies a group's vectors by its own columns only (lea_compiler/grouping.py), so the
peak memory of a run should be a fixed multiple of the layer's own input and output bytes whatever G is (it
was about G / 2 of them when every column was computed for every vector and the diagonal kept). For a
depthwise 3 x 3 Conv (pads 1) of G channels at HxW, on a 16-array chip of 32 x 32 (k = 1, greedy placer),
with `--samples` samples, it prints per G: the peak bytes tracemalloc sees (numpy's arrays included; BLAS
buffers not) divided by the layer's input (the patches, (N, H, W, G, 9) float32) plus output bytes, and the
seconds, of the interpreter running the canonicalized Conv, `CrossbarLayer.forward` (with read noise) and
`calibrate`.

Run:  PYTHONPATH=. python benchmarks/bench_grouped_memory.py [--groups 32,128,256] [--size 14] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.backends.sim import CrossbarLayer, Dataset, EventCounts
from lea_compiler.calibration import calibrate
from lea_compiler.chip import synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.pipeline import CompileOptions
from tests.helpers import make_model

F = np.float32


def traced(run: Callable[[], object]) -> tuple[int, float]:
    """Peak traced bytes and seconds of `run`."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        run()
        return tracemalloc.get_traced_memory()[1], time.perf_counter() - start
    finally:
        tracemalloc.stop()


def one(groups: int, size: int, samples: int, folder: Path) -> dict[str, float]:
    r = np.random.default_rng(0)
    model = make_model([helper.make_node("Conv", ["x", "W", "b"], ["y"], name="dw", group=groups,
                                         pads=[1, 1, 1, 1])],
                       {"x": (F, ["N", groups, size, size])}, ["y"],
                       {"W": r.standard_normal((groups, 1, 3, 3)).astype(F), "b": r.standard_normal(groups).astype(F)})
    path = folder / f"dw{groups}.onnx"
    onnx.save(model, path)
    chip = synth_chip(arrays=16, rows=32, cols=32, stuck_high=0.0, stuck_low=0.0, seed=1)
    program = compile_model(path, chip, CompileOptions(k=1, placer="greedy")).program
    data = r.standard_normal((samples, groups, size, size)).astype(F)
    node = program.graph.node("dw")
    x = interpreter.run(program.graph, {"x": data}, keep=[node.input(0).name])[node.input(0).name]
    own = x.nbytes + samples * size * size * groups * 4  # the layer's input (patches) and output bytes
    graph = Canonicalize().run(import_model(model))
    layer = CrossbarLayer.of(program, "dw", chip, np.random.default_rng(0))
    row: dict[str, float] = {"groups": groups}
    for name, run in (
        ("interpreter", lambda: interpreter.run(graph, {"x": data})),
        ("forward", lambda: layer.forward(x, np.random.default_rng(1), EventCounts())),
        ("calibrate", lambda: calibrate(program, [Dataset("d", data, np.zeros(samples, np.int64))], chip)),
    ):
        peak, seconds = traced(run)
        row[f"{name}_peak_per_own_bytes"] = round(peak / own, 2)
        row[f"{name}_s"] = round(seconds, 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="32,128,256")
    parser.add_argument("--size", type=int, default=14)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for groups in (int(g) for g in args.groups.split(",")):
            print(json.dumps(one(groups, args.size, args.samples, Path(folder))))


if __name__ == "__main__":
    main()
