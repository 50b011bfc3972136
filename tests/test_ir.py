"""The graph IR: mutators keep producers and uses right; the verifier catches each broken invariant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from lea_compiler.errors import IRVerificationError
from lea_compiler.ir import Graph, Use, Value
from lea_compiler.onnx_frontend import import_model
from tests.helpers import mlp_model

F = np.float32


def small_graph() -> Graph:
    """x -> Gemm(W, b) -> Relu -> y, built by hand."""
    g = Graph("small", opset={"": 17})
    x = g.add_input("x", F, ("batch", 3))
    w = g.add_initializer("W", np.arange(6, dtype=F).reshape(3, 2))
    b = g.add_initializer("b", np.ones(2, F))
    gemm = g.add_node("Gemm", [x, w, b], [("h", F, ("batch", 2))], name="fc")
    relu = g.add_node("Relu", [gemm.outputs[0]], [("y", F, ("batch", 2))], name="act")
    g.outputs.append(relu.outputs[0])
    return g


def test_hand_built_graph_verifies_and_prints_stably() -> None:
    g = small_graph()
    g.verify()
    assert str(g) == "\n".join(
        [
            "graph small (opset ai.onnx 17)",
            "  input  %x: float32[batch, 3]",
            "  const  %W: float32[3, 2] = [[0, 1], [2, 3], [4, 5]]",
            "  const  %b: float32[2] = [1, 1]",
            "  %h: float32[batch, 2] = Gemm(%x, %W, %b)  # fc",
            "  %y: float32[batch, 2] = Relu(%h)  # act",
            "  output %y: float32[batch, 2]",
        ]
    )


def test_producers_and_uses_are_tracked() -> None:
    g = small_graph()
    fc, act = g.nodes
    h = fc.outputs[0]
    assert h.producer is fc
    assert h.uses == (Use(act, 0),)
    assert g.value("W").uses == (Use(fc, 1),)
    assert g.successors(fc) == [act] and g.predecessors(act) == [fc]


def test_replace_all_uses_and_remove_node() -> None:
    g = small_graph()
    fc, act = g.nodes
    g.replace_all_uses(act.outputs[0], fc.outputs[0])
    assert g.outputs == [fc.outputs[0]]
    g.remove_node(act)
    g.verify()
    assert [n.name for n in g.nodes] == ["fc"]
    assert fc.outputs[0].uses == ()


def test_remove_node_refuses_while_read() -> None:
    g = small_graph()
    with pytest.raises(ValueError, match="still read by act"):
        g.remove_node(g.nodes[0])


def test_set_input_moves_the_use() -> None:
    g = small_graph()
    fc = g.nodes[0]
    b2 = g.add_initializer("b", np.zeros(2, F))
    assert b2.name == "b_1"  # names stay unique
    g.set_input(fc, 2, b2)
    assert g.value("b").uses == () and b2.uses == (Use(fc, 2),)
    assert g.remove_unused_initializers() == 1
    g.verify()


def test_topological_order_and_sort() -> None:
    g = small_graph()
    g.nodes.reverse()
    with pytest.raises(IRVerificationError, match="comes before its producer"):
        g.verify()
    g.sort()
    assert [n.name for n in g.nodes] == ["fc", "act"]
    g.verify()


def test_cycle_is_reported() -> None:
    g = small_graph()
    fc, act = g.nodes
    g.set_input(fc, 0, act.outputs[0])
    with pytest.raises(IRVerificationError, match="cycle"):
        g.verify()


def test_undefined_value_is_reported() -> None:
    g = small_graph()
    stray = Value("stray", F, ("batch", 3))
    g.set_input(g.nodes[0], 0, stray)
    with pytest.raises(IRVerificationError, match="input 0 %stray is not defined"):
        g.verify()


def test_inconsistent_shape_is_reported() -> None:
    g = small_graph()
    g.nodes[1].outputs[0].shape = ("batch", 5)
    with pytest.raises(IRVerificationError, match=r"has shape float32\[batch, 5\], inputs give \[batch, 2\]"):
        g.verify(after="my_pass")


def test_verification_error_names_the_pass() -> None:
    g = small_graph()
    g.nodes[0].outputs[0].dtype = np.dtype(np.float64)
    with pytest.raises(IRVerificationError, match="after pass my_pass") as info:
        g.verify(after="my_pass")
    assert any("is float64, inputs give float32" in p for p in info.value.problems)


def test_initializer_data_must_match_its_type() -> None:
    g = small_graph()
    g.value("W").const = np.zeros((2, 3), F)
    problems = g.problems()
    assert any("data has shape [2, 3]" in p for p in problems)


def test_duplicate_definition_is_reported() -> None:
    g = small_graph()
    g.nodes[1].outputs[0].name = "h"
    assert any("defined twice" in p for p in g.problems())


@dataclass(frozen=True)
class Levels:
    count: int

    def describe(self) -> str:
        return f"{self.count} levels"


def test_facts_are_typed_and_printed() -> None:
    g = small_graph()
    fc = g.nodes[0]
    fc.set_fact(Levels(4))
    assert fc.fact(Levels) == Levels(4)
    assert "Levels: 4 levels" in str(g)
    fc.remove_fact(Levels)
    assert fc.fact(Levels) is None


def test_to_networkx_has_one_edge_per_value_read() -> None:
    g = import_model(mlp_model())
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == len(g.nodes)
    assert nxg.number_of_edges() == len(g.nodes) - 1
    assert g.nodes_of("Gemm") == [g.node("fc0"), g.node("fc1"), g.node("fc2")]


def _same_graph(a: Graph, b: Graph) -> None:
    """`b` is an independent copy of `a`: same text, same use lists, same names, no shared objects."""
    assert str(a) == str(b) and b.problems() == []
    assert vars(a).keys() == vars(b).keys()
    assert a._names == b._names and a._node_names == b._node_names and a.opset == b.opset
    for va, vb in zip(a.values(), b.values(), strict=True):
        assert va is not vb and va.name == vb.name
        assert [(u.node.name, u.index) for u in va.uses] == [(u.node.name, u.index) for u in vb.uses]
        assert (va.producer is None) == (vb.producer is None)


def test_pickle_and_deepcopy_give_an_independent_equal_graph() -> None:
    import copy
    import pickle

    from lea_compiler.passes.canonicalize import Canonicalize
    from lea_compiler.passes.quantize import Quantize, QuantizedLayer

    g = Canonicalize().run(import_model(mlp_model()))
    g = Quantize((133.0, 167.0, 200.0, 233.0)).run(g)
    g.metadata["k"] = "v"
    for clone in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        _same_graph(g, clone)
        for na, nb in zip(g.nodes, clone.nodes, strict=True):
            qa, qb = na.fact(QuantizedLayer), nb.fact(QuantizedLayer)
            assert (qa is None) == (qb is None)
            if qa is not None and qb is not None:
                assert np.array_equal(qa.pos, qb.pos) and np.array_equal(qa.scale, qb.scale)
        assert clone.nodes[0].input(1) is clone.initializers[clone.nodes[0].input(1).name]
        clone.nodes[0].input(1).const[...] = 0  # a copy shares no arrays with the original
        assert np.any(g.nodes[0].input(1).const != 0)


def test_a_deep_graph_pickles_without_recursion() -> None:
    import copy
    import pickle

    g = Graph("chain", opset={"": 17})
    value = g.add_input("x", F, ("batch", 3))
    for i in range(2000):  # pickle used to follow the chain frame by frame and stop near 100 nodes
        value = g.add_node("Relu", [value], [(f"h{i}", F, ("batch", 3))], name=f"r{i}").outputs[0]
    g.outputs.append(value)
    _same_graph(g, pickle.loads(pickle.dumps(g)))
    _same_graph(g, copy.deepcopy(g))
