"""Grouped and depthwise Conv on crossbars: leac's packed mapping against block-diagonal and per-group (issue 17).

Three mappings of the same grouped Conv, each compiled by leac from an ONNX model that computes the same
function:

- packed (leac's): one crossbar layer whose matrix is the dense K x O one (K = C/G kh kw inputs per group,
  every group's kernels side by side in their own columns), read once per group and output pixel with the
  group's own K inputs, on the blocks holding the group's columns, converting only those columns
  (`leac.MVM` with groups; docs/architecture.md);
- block-diagonal: the model with group = 1 and the kernel padded with zeros outside each group's channels
  (a (G K) x O matrix: one read per block per pixel, G times the devices);
- per-group: the model split by hand into G Convs on each group's channels (Gather) joined by a Concat, so
  G crossbar layers of K x O/G.

The packed layer is also compiled with `--block RxC` set to the per-group mapping's blocks (R = the K rows
split as the tile pass splits them for 32-row arrays, C = O/G: "packed RxC"), which the placer can put on
smaller defect-free regions than the array-wide blocks the tile pass makes by default.

For each it reports the crossbar layers and blocks, the devices and arrays the Program uses, and per inference
the reads, ADC and DAC conversions, device reads, energy and latency of leac's cost model (the counts the
simulator also makes), and, simulated with ideal devices, the share of samples whose top-1 (of the global
average pooled channels) agrees with onnxruntime's and the largest relative RMS error of a crossbar layer's
output (`layer_output_error`). The chips: 64 arrays of 32 x 32, 64 levels, defect-free and 2.5% stuck high
with 0.5% stuck low (seed 1); `--ideal` keeps the stuck devices and drops the noise.

Run:  python benchmarks/bench_grouped.py [--k 1,3] [--samples 100] [--out benchmarks/results/grouped_conv.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from lea_runs import ROOT
from onnx import TensorProto, helper, numpy_helper

from lea_compiler.backends.cost import layer_cost
from lea_compiler.backends.sim import Dataset, estimate_cost, simulate, top1
from lea_compiler.chip import DeviceModel, synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.reference import run_onnxruntime
from lea_compiler.schedule.plan import schedule_of

RESULTS = ROOT / "benchmarks" / "results"
F = np.float32

CASES = {
    # name: (input shape without the batch, output channels, group, kernel, pads)
    "depthwise 3x3, 32 ch, 16x16": ((32, 16, 16), 32, 32, (3, 3), [1, 1, 1, 1]),
    "grouped 3x3, 32 -> 32 ch, 4 groups, 8x8": ((32, 8, 8), 32, 4, (3, 3), [1, 1, 1, 1]),
    "depthwise 1-D k=5, 16 ch, length 64": ((16, 64), 16, 16, (5,), [2, 2]),
}


def _model(shape: tuple[int, ...], nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    """nodes computing "conv" from "x", then global average pooling to (N, O): the output "y"."""
    rank = len(shape) - 1
    nodes = [*nodes, helper.make_node("GlobalAveragePool", ["conv"], ["pooled"], name="gap"),
             helper.make_node("Flatten", ["pooled"], ["y"], name="flatten")]
    graph = helper.make_graph(
        nodes, "grouped", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench_grouped")
    model.ir_version = 8
    assert rank in (1, 2)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def mappings(case: tuple, seed: int = 0) -> dict[str, onnx.ModelProto]:
    """The packed (grouped Conv), block-diagonal and per-group models of one case: the same function."""
    shape, out, group, kernel, pads = case
    channels = shape[0]
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, channels // group, *kernel)).astype(F)
    b = rng.standard_normal(out).astype(F) * 0.1
    per_in, per_out = channels // group, out // group
    dense = np.zeros((out, channels, *kernel), F)
    for g in range(group):
        dense[g * per_out:(g + 1) * per_out, g * per_in:(g + 1) * per_in] = w[g * per_out:(g + 1) * per_out]
    conv = {"pads": pads}
    models = {
        "packed": _model(shape, [helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv", group=group,
                                                  **conv)], {"w": w, "b": b}),
        "block-diagonal": _model(shape, [helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv", **conv)],
                                 {"w": dense, "b": b}),
    }
    nodes, inits, parts = [], {}, []
    for g in range(group):
        inits[f"idx{g}"] = np.arange(g * per_in, (g + 1) * per_in, dtype=np.int64)
        inits[f"w{g}"] = w[g * per_out:(g + 1) * per_out]
        inits[f"b{g}"] = b[g * per_out:(g + 1) * per_out]
        nodes.append(helper.make_node("Gather", ["x", f"idx{g}"], [f"x{g}"], name=f"channels{g}", axis=1))
        nodes.append(helper.make_node("Conv", [f"x{g}", f"w{g}", f"b{g}"], [f"c{g}"], name=f"conv{g}", **conv))
        parts.append(f"c{g}")
    nodes.append(helper.make_node("Concat", parts, ["conv"], name="concat", axis=1))
    models["per-group"] = _model(shape, nodes, inits)
    return models


def group_blocks(case: tuple, rows: int = 32) -> tuple[int, int]:
    """`--block RxC` giving the packed layer the per-group mapping's blocks: the K rows split as the tile pass
    splits them for arrays of `rows` rows (balanced), one group's O/G columns."""
    shape, out, group, kernel, _ = case
    depth = shape[0] // group * int(np.prod(kernel))
    return -(-depth // -(-depth // rows)), out // group


def measure(model: onnx.ModelProto, chip: object, k: int, x: np.ndarray, folder: Path,
            block: tuple[int, int] | None = None) -> dict:
    path = folder / "model.onnx"
    onnx.save(model, path)
    start = time.perf_counter()
    tiles = {"block_rows": block[0], "block_cols": block[1]} if block else {}
    options = CompileOptions(k=k, placer="greedy", **tiles)  # type: ignore[arg-type]
    program = compile_model(path, chip, options).program  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    cost = estimate_cost(program)
    schedule = schedule_of(program)
    events = {"reads": 0, "adc_conversions": 0, "dac_conversions": 0, "device_reads": 0}
    for name, plan in schedule.layers.items():
        one = layer_cost(plan, program.chip.periphery)
        for key in events:
            events[key] += getattr(one, key) * cost.applications[name]
    software = top1(run_onnxruntime(model, {"x": x}))
    report = simulate(program, [Dataset("random", x, software)], ideal=True)
    return {
        "layers": len(program.layers),
        "blocks": sum(len(layer.blocks) for layer in program.layers),
        "devices": program.devices_used,
        "arrays": len(program.arrays_used),
        **events,
        "energy_pJ": round(cost.energy_pJ_per_inference, 1),
        "latency_ns": round(cost.latency_ns, 1),
        "ideal_agreement": report.data[0].agreement,
        "layer_error": round(max(report.layer_error.values()), 4),
        "compile_s": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", default="1,3", help="copies per block, comma-separated")
    parser.add_argument("--stuck", default="0,0.025", help="stuck-high rates of the chips (stuck low: a fifth)")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS / "grouped_conv.json"))
    args = parser.parse_args()
    levels = tuple(round(float(v), 6) for v in np.linspace(100.0, 250.0, 64))
    rows = []
    columns = ("layers", "blocks", "devices", "arrays", "reads", "adc_conversions", "dac_conversions",
               "device_reads", "energy_pJ", "latency_ns", "ideal_agreement", "layer_error", "compile_s")
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            x = np.random.default_rng(2).standard_normal((args.samples, *case[0])).astype(F)
            for stuck in (float(v) for v in args.stuck.split(",")):
                chip = synth_chip(arrays=64, rows=32, cols=32, stuck_high=stuck, stuck_low=stuck / 5, seed=1,
                                  device=DeviceModel(levels_uS=levels))
                for k in (int(v) for v in args.k.split(",")):
                    print(f"\n{name}, {100 * stuck:g}% stuck high, k = {k}")
                    print(f"{'mapping':15}" + "".join(f"{c:>16}" for c in columns))
                    models = mappings(case)
                    runs = [(mapping, model, None) for mapping, model in models.items()]
                    runs.insert(1, ("packed RxC", models["packed"], group_blocks(case)))
                    for mapping, model, block in runs:
                        row = {"case": name, "stuck_high": stuck, "k": k, "mapping": mapping,
                               **({"block": list(block)} if block else {}),
                               **measure(model, chip, k, x, Path(tmp), block)}
                        rows.append(row)
                        print(f"{mapping:15}" + "".join(f"{row[c]!s:>16}" for c in columns), flush=True)
    Path(args.out).write_text(json.dumps({"chip": "synth 64 x 32x32, seed 1, 64 levels (100..250 uS); stuck low = "
                                                  "stuck high / 5", "samples": args.samples, "rows": rows},
                                         indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
