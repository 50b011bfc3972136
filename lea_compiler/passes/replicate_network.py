"""replicate_network: k copies of the whole network, averaged only at the outputs (a committee machine).

`leac compile --ensemble network` runs this pass after `canonicalize`; the
default, `--ensemble layer`, does not. It is the scheme the LEA paper compared
against at equal device count: instead of k copies of every layer averaged
after every layer (LEA), k copies of the whole network each run end to end on
their own devices, and only the network's outputs are averaged:

    y = (1/k) sum_{c < k} f_c(x)

where f_c is copy c of the network (every crossbar layer of f_c on its own
devices, errors compounding through f_c's layers as they would without LEA).

The transformation, on the canonical graph:

1. The *crossbar cone*: every `leac.MVM` node and every node that reads,
   directly or not, an MVM's output. Nodes outside it (the digital
   preprocessing of the graph inputs, e.g. the first conv's im2col
   `leac.Patches`) compute the same thing for every copy and stay shared.
2. Every node of the cone is cloned k times, in graph order. Copy c of node
   `fc1` is called `fc1@c` (c = 0 .. k-1) and its outputs `h1@c`; it reads copy
   c of its inputs from the cone and the shared value otherwise. The copies
   share the weight initializers, so quantize gives them the same levels. Each
   clone carries a `Replica` fact (origin node, copy, count), which `place`
   uses to give the k copies of a block one pattern, as LEA's k copies of a
   block have. The originals are removed.
3. Each graph output from the cone becomes the mean of its k copies, under
   the output's own name (so data files, the onnxruntime baseline and the
   simulator's top-1 see the same outputs):
   `y = Div(Add(...Add(y@0, y@1)..., y@k-1), k)`, one digital addition per
   copy and one division per output element. A float output is averaged as it
   is (probabilities for a Softmax output, log-probabilities for LogSoftmax:
   whatever the model outputs). An integer label from `ArgMax` over a float
   tensor cannot be averaged; its float input is averaged instead and ArgMax
   applied once to the mean (the committee votes with its mean scores). Any
   other non-float output of the cone is refused with a `CompileError` that
   names it. Outputs outside the cone are left alone.

Every MVM of the result is one layer of one copy, so the ensemble pass gives
it alpha = beta = 1 and place, encode, select, the Program and both backends
need nothing new: an m x n layer costs 2 k m n devices, exactly what LEA's
alpha = k costs, and `place` solves the same placement problem for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lea_compiler.errors import CompileError
from lea_compiler.ir import Graph, Node, Value
from lea_compiler.passes.canonicalize import remove_dead_nodes, require_mvm

SEPARATOR = "@"
"""Between a node's or value's name and its copy number: `fc1@2`."""


@dataclass(frozen=True)
class Replica:
    """Fact on a node made by replicate_network: copy `copy` (of `count`) of the node called `origin`."""

    origin: str
    copy: int
    count: int

    def describe(self) -> str:
        return f"copy {self.copy} of {self.count} of {self.origin!r}"


def replica_name(name: str, copy: int) -> str:
    """`fc1` -> `fc1@2`: the name of copy `copy` of a node or value."""
    return f"{name}{SEPARATOR}{copy}"


def crossbar_cone(graph: Graph) -> list[Node]:
    """The MVM nodes and every node that depends on one, in graph (topological) order."""
    cone: list[Node] = []
    tainted: set[int] = set()
    for node in graph.nodes:
        if node.op_type == "MVM" or any(v is not None and id(v) in tainted for v in node.inputs):
            cone.append(node)
            tainted.update(id(out) for out in node.outputs)
    return cone


def _is_float(value: Value) -> bool:
    return bool(np.issubdtype(value.dtype, np.floating))


@dataclass(frozen=True)
class ReplicateNetwork:
    """The replicate_network pass (see the module docstring)."""

    copies: int
    name: str = "replicate_network"

    def __post_init__(self) -> None:
        if self.copies < 1:
            raise CompileError(f"k (copies of the network) must be at least 1, got {self.copies}")

    def run(self, graph: Graph) -> Graph:
        require_mvm(graph, self.name)
        if any(node.fact(Replica) is not None for node in graph.nodes):
            raise CompileError("replicate_network has already run on this graph")
        cone = crossbar_cone(graph)
        produced_in_cone = {id(out) for node in cone for out in node.outputs}
        replicated = [v for v in dict.fromkeys(graph.outputs) if id(v) in produced_in_cone]
        for value in replicated:
            _check_averageable(value)
        copies = [self._clone(graph, cone, c) for c in range(self.copies)]
        means: dict[int, Value] = {}
        for value in replicated:
            _average(graph, value, copies, means)
        graph.outputs = [means.get(id(v), v) for v in graph.outputs]
        remove_dead_nodes(graph)  # the originals, and the copies of an ArgMax that only its mean replaced
        for value in replicated:
            graph.rename(means[id(value)], value.name)
        return graph

    def _clone(self, graph: Graph, cone: list[Node], copy: int) -> dict[int, Value]:
        """Copy `copy` of every cone node, appended; returns original value id -> its copy."""
        mapping: dict[int, Value] = {}
        for node in cone:
            inputs = [None if v is None else mapping.get(id(v), v) for v in node.inputs]
            outputs = [(replica_name(v.name, copy), v.dtype, v.shape) for v in node.outputs]
            clone = graph.add_node(node.op_type, inputs, outputs, name=replica_name(node.name, copy),
                                   domain=node.domain, attrs=node.attrs)
            clone.set_fact(Replica(node.name, copy, self.copies))
            for old, new in zip(node.outputs, clone.outputs, strict=True):
                mapping[id(old)] = new
        return mapping


def _check_averageable(value: Value) -> None:
    """Refuse a graph output whose copies cannot be averaged (see the module docstring)."""
    if _is_float(value):
        return
    producer = value.producer
    assert producer is not None
    source = producer.input(0)
    if producer.op_type == "ArgMax" and not producer.domain and source is not None and _is_float(source):
        return
    raise CompileError(
        f"graph output %{value.name} ({value.type_str()}, from {producer.describe()}) cannot be averaged over "
        "the network copies: a network ensemble averages float outputs, or the float input of an ArgMax label; "
        "use --ensemble layer for this model, or export it without this output"
    )


def _average(graph: Graph, value: Value, copies: list[dict[int, Value]], means: dict[int, Value]) -> Value:
    """The value standing for the k copies of `value`: their mean, or ArgMax of the mean of its input."""
    if id(value) in means:
        return means[id(value)]
    producer = value.producer
    assert producer is not None
    if _is_float(value):
        parts = [mapping[id(value)] for mapping in copies]
        if len(parts) == 1:
            mean = parts[0]
        else:
            total = parts[0]
            for c, part in enumerate(parts[1:], start=1):
                total = graph.add_node(
                    "Add", [total, part], [(f"{value.name}{SEPARATOR}sum{c}", value.dtype, value.shape)],
                    name=f"{producer.name}{SEPARATOR}sum{c}",
                ).outputs[0]
            count = graph.add_initializer(f"{value.name}{SEPARATOR}k", np.asarray(len(parts), dtype=value.dtype))
            mean = graph.add_node(
                "Div", [total, count], [(f"{value.name}{SEPARATOR}mean", value.dtype, value.shape)],
                name=f"{producer.name}{SEPARATOR}mean",
            ).outputs[0]
    else:  # ArgMax of a float tensor (checked by _check_averageable)
        source = producer.input(0)
        assert source is not None
        scores = _average(graph, source, copies, means)
        mean = graph.add_node(
            producer.op_type, [scores], [(f"{value.name}{SEPARATOR}vote", value.dtype, value.shape)],
            name=f"{producer.name}{SEPARATOR}vote", domain=producer.domain, attrs=producer.attrs,
        ).outputs[0]
    means[id(value)] = mean
    return mean
