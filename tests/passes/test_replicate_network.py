"""replicate_network (`--ensemble network`): k copies of the whole network, averaged only at the outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lea_compiler import interpreter
from lea_compiler.errors import CompileError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.passes.replicate_network import Replica, ReplicateNetwork, crossbar_cone
from lea_compiler.reference import run_onnxruntime
from tests.helpers import ATOL, RTOL, cnn_model, make_model, mlp_model, random_feeds

F = np.float32


def replicated(model: onnx.ModelProto, k: int):
    graph = Canonicalize().run(import_model(model))
    ReplicateNetwork(k).run(graph)
    graph.verify(after="replicate_network")
    return graph


def classifier(extra_outputs: str = "probs+label") -> onnx.ModelProto:
    """4-8-3 MLP with a Softmax and an ArgMax label; `extra_outputs` picks the graph outputs."""
    rng = np.random.default_rng(1)
    inits = {"W0": rng.standard_normal((4, 8)).astype(F), "W1": rng.standard_normal((8, 3)).astype(F)}
    nodes = [
        helper.make_node("MatMul", ["x", "W0"], ["h"], name="fc0"),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("MatMul", ["a", "W1"], ["logits"], name="fc1"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["probs"], ["label"], name="argmax", axis=1, keepdims=0),
        helper.make_node("Shape", ["x"], ["xshape"], name="shape"),
        helper.make_node("Cast", ["logits"], ["codes"], name="cast", to=TensorProto.INT64),
    ]
    outputs = {"probs+label": ["probs", "label"], "label": ["label"], "label+shape": ["label", "xshape"],
               "codes": ["probs", "codes"]}[extra_outputs]
    return make_model(nodes, {"x": (F, ["N", 4])}, outputs, inits, name="classifier")


# ------------------------------------------------------------------ the pass
@pytest.mark.parametrize("make", [mlp_model, cnn_model], ids=["mlp", "cnn"])
@pytest.mark.parametrize("k", [1, 3])
def test_replicated_graph_computes_the_original_model(make, k) -> None:
    model = make()
    graph = replicated(model, k)
    feeds = random_feeds(model, batch=16)
    got = interpreter.run(graph, feeds)
    want = run_onnxruntime(model, feeds)
    assert list(got) == list(want) == ["y"]
    np.testing.assert_allclose(got["y"], want["y"], rtol=RTOL, atol=ATOL)
    original = [n.name for n in Canonicalize().run(import_model(model)).nodes_of("MVM")]
    assert [n.name for n in graph.nodes_of("MVM")] == [f"{name}@{c}" for c in range(k) for name in original]
    for node in graph.nodes_of("MVM"):
        replica = node.fact(Replica)
        assert replica is not None and node.name == f"{replica.origin}@{replica.copy}" and replica.count == k


def test_copies_are_independent_and_the_output_is_their_mean() -> None:
    graph = replicated(mlp_model(), 3)
    # each copy is its own chain from the shared input to its own output
    for c in range(3):
        h = graph.node(f"fc0@{c}")
        assert h.input(0) is graph.inputs[0]
        assert graph.node(f"fc1@{c}").input(0).producer is graph.node(f"act0@{c}")
    assert [n.op_type for n in graph.nodes[-3:]] == ["Add", "Add", "Div"]
    assert graph.outputs[0].name == "y" and graph.outputs[0].producer.op_type == "Div"
    feeds = random_feeds(mlp_model(), batch=8)
    before = interpreter.run(graph, feeds, keep=["y@0", "y@1", "y@2"])
    np.testing.assert_allclose(before["y"], (before["y@0"] + before["y@1"] + before["y@2"]) / 3, rtol=1e-6)


def test_digital_preprocessing_of_the_input_is_shared() -> None:
    graph = replicated(cnn_model(), 2)
    assert [n.name for n in graph.nodes_of("Patches")] == ["conv1__patches", "conv2__patches@0", "conv2__patches@1"]
    patches = graph.node("conv1__patches").outputs[0]
    assert sorted(u.node.name for u in patches.uses) == ["conv1@0", "conv1@1"]
    assert [n.name for n in crossbar_cone(Canonicalize().run(import_model(cnn_model())))][0] == "conv1"


def test_argmax_label_is_taken_of_the_mean_scores() -> None:
    for outputs in ("probs+label", "label", "label+shape"):
        model = classifier(outputs)
        graph = replicated(model, 3)
        feeds = random_feeds(model, batch=64, seed=2)
        got, want = interpreter.run(graph, feeds), run_onnxruntime(model, feeds)
        assert list(got) == list(want)
        np.testing.assert_array_equal(got["label"], want["label"])
        label = graph.outputs[0] if outputs != "probs+label" else graph.outputs[1]
        assert label.dtype == np.int64 and label.producer.op_type == "ArgMax"
        assert label.producer.input(0).producer.op_type == "Div"  # one ArgMax, of the mean
        assert len(graph.nodes_of("ArgMax")) == 1 and len(graph.nodes_of("Div")) == 1
        if outputs == "label+shape":  # not from a crossbar: left alone, not replicated
            assert graph.outputs[1].producer.name == "shape"
            np.testing.assert_array_equal(got["xshape"], want["xshape"])


def test_an_integer_output_that_is_not_an_argmax_is_refused() -> None:
    graph = Canonicalize().run(import_model(classifier("codes")))
    with pytest.raises(CompileError, match=r"graph output %codes \(int64\[N, 3\], from node 'cast' \(Cast\)\) cannot"
                                           r" be averaged"):
        ReplicateNetwork(2).run(graph)


def test_pass_checks_its_inputs() -> None:
    with pytest.raises(CompileError, match="at least 1"):
        ReplicateNetwork(0)
    with pytest.raises(CompileError, match="run canonicalize first"):
        ReplicateNetwork(2).run(import_model(mlp_model()))
    graph = replicated(mlp_model(), 2)
    with pytest.raises(CompileError, match="already run"):
        ReplicateNetwork(2).run(graph)
