"""Model files the benchmarks share: tanh MLPs written as ONNX with onnx.helper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save_tanh_mlp(path: Path, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray] | None = None) -> None:
    """Gemm layers y = x W (+ b) with Tanh between them; `weights[i]` is (inputs, outputs)."""
    nodes, inits, prev = [], [], "x"
    for i, w in enumerate(weights):
        inputs = [prev, f"W{i}"]
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w, dtype=np.float32), f"W{i}"))
        if biases is not None:
            inits.append(numpy_helper.from_array(np.asarray(biases[i], dtype=np.float32), f"b{i}"))
            inputs.append(f"b{i}")
        nodes.append(helper.make_node("Gemm", inputs, [f"h{i}"], name=f"fc{i}"))
        prev = f"h{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Tanh", [prev], [f"a{i}"], name=f"tanh{i}"))
            prev = f"a{i}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", weights[0].shape[0]])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", weights[-1].shape[1]])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
