"""canonicalize: same function as onnxruntime, every crossbar product a leac.MVM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.onnx_frontend import import_model, load_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.reference import run_onnxruntime
from tests.helpers import ATOL, RTOL, cnn_model, make_model, mlp_model, random_feeds

F = np.float32
FIXTURES = Path(__file__).parents[1] / "fixtures" / "exporters"
EXPORTED = sorted(FIXTURES.rglob("*.onnx"))


def _check_same_function(model: onnx.ModelProto, feeds: dict) -> object:
    graph = Canonicalize().run(import_model(model))
    graph.verify(after="canonicalize")
    expected = run_onnxruntime(model, feeds)
    got = interpreter.run(graph, feeds)
    assert list(got) == list(expected)  # graph output names survive
    for name, want in expected.items():
        if want.dtype == object:
            assert got[name].tolist() == want.tolist()
        else:
            np.testing.assert_allclose(got[name], want, rtol=RTOL, atol=ATOL)
    return graph


@pytest.mark.parametrize("path", EXPORTED, ids=[p.relative_to(FIXTURES).as_posix() for p in EXPORTED])
def test_exported_models_keep_their_function(path: Path) -> None:
    with np.load(path.with_suffix(".inputs.npz")) as data:
        feeds = dict(data)
    graph = _check_same_function(onnx.load(path), feeds)
    assert not graph.nodes_of("Gemm", "MatMul", "Conv", "BatchNormalization", "Identity", "Dropout", "Constant")
    assert len(graph.nodes_of("MVM")) == 3


def test_mlp_becomes_three_mvms_with_bias() -> None:
    model = mlp_model()
    graph = _check_same_function(model, random_feeds(model, batch=8))
    mvms = graph.nodes_of("MVM")
    assert [n.name for n in mvms] == ["fc0", "fc1", "fc2"]
    assert [n.input(1).const.shape for n in mvms] == [(4, 12), (12, 6), (6, 3)]
    assert all(n.input(2) is not None for n in mvms)
    np.testing.assert_array_equal(mvms[0].input(1).const, onnx.numpy_helper.to_array(model.graph.initializer[0]).T)


def test_cnn_batchnorm_is_folded_and_conv_lowered() -> None:
    model = cnn_model()
    graph = _check_same_function(model, random_feeds(model, batch=6))
    assert not graph.nodes_of("BatchNormalization")
    assert [n.op_type for n in graph.nodes][:4] == ["Patches", "MVM", "Transpose", "Relu"]
    conv1 = graph.node("conv1")
    assert conv1.input(1).const.shape == (9, 4) and conv1.outputs[0].type_str() == "float32[N, 8, 8, 4]"


@pytest.mark.parametrize("group", [1, 2])
def test_batchnorm_after_a_1d_conv_is_folded(group: int) -> None:
    rng = np.random.default_rng(3)
    inits = {"w": rng.standard_normal((4, 4 // group, 3)).astype(F), "s": rng.uniform(0.5, 1.5, 4).astype(F),
             "o": rng.standard_normal(4).astype(F), "m": rng.standard_normal(4).astype(F),
             "v": rng.uniform(0.5, 2.0, 4).astype(F)}
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", group=group, pads=[1, 1]),
                        helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["y"], name="bn")],
                       {"x": (F, ["N", 4, 9])}, ["y"], inits)
    graph = _check_same_function(model, random_feeds(model, batch=5))
    assert [n.op_type for n in graph.nodes] == ["Patches", "MVM", "Transpose"]
    mvm = graph.node("conv")
    factor = inits["s"] / np.sqrt(inits["v"] + np.float32(1e-5))  # hand-folded: W f and (0 - mean) f + offset
    np.testing.assert_allclose(mvm.input(1).const, (inits["w"] * factor[:, None, None]).reshape(4, -1).T, rtol=1e-6)
    np.testing.assert_allclose(mvm.input(2).const, (0 - inits["m"]) * factor + inits["o"], rtol=1e-6, atol=1e-6)


def test_matmul_add_merge_and_gemm_alpha_beta() -> None:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
        helper.make_node("Add", ["b", "m"], ["h"], name="add"),
        helper.make_node("Gemm", ["h", "W2", "c"], ["y"], name="g", alpha=0.5, beta=3.0, transB=1),
    ]
    inits = {"W": rng.standard_normal((4, 5)).astype(F), "b": rng.standard_normal(5).astype(F),
             "W2": rng.standard_normal((2, 5)).astype(F), "c": np.array([[1.0, -1.0]], F)}
    model = make_model(nodes, {"x": (F, ["N", 4])}, ["y"], inits)
    graph = _check_same_function(model, random_feeds(model))
    assert [(n.op_type, n.name) for n in graph.nodes] == [("MVM", "mm"), ("MVM", "g")]
    np.testing.assert_allclose(graph.node("g").input(2).const, [3.0, -3.0])


def test_graph_output_behind_identity_keeps_its_name() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    model = make_model(nodes, {"x": (F, ["N", 3])}, ["y"])
    graph = _check_same_function(model, random_feeds(model))
    assert [n.op_type for n in graph.nodes] == ["Relu"] and graph.outputs[0].name == "y"


def test_identity_of_graph_input_is_kept() -> None:
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], {"x": (F, ["N", 3])}, ["y"])
    graph = _check_same_function(model, random_feeds(model))
    assert [n.op_type for n in graph.nodes] == ["Identity"]


def test_dynamic_weights_stay_digital() -> None:
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"], name="mm")]
    model = make_model(nodes, {"x": (F, ["N", 3]), "x2": (F, [3, 2])}, ["y"])
    graph = _check_same_function(model, random_feeds(model))
    assert [n.op_type for n in graph.nodes] == ["MatMul"]


def test_exported_cnn_loaded_from_file(tmp_path) -> None:
    graph = Canonicalize().run(load_model(FIXTURES / "torch_cnn_nofold.onnx"))
    graph.verify()
    assert len(graph.nodes_of("Patches")) == 2
