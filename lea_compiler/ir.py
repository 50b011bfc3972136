"""leac's graph IR: `Graph`, `Node` and `Value`, the one representation every pass reads and returns.

A `Value` is an edge: it has a dtype, a shape (ints for known dimensions,
strings for symbolic ones such as the batch size, None where unknown), at most
one producer and a list of uses. Initializers are values holding a numpy
array in `Value.const`. A `Node` is an operation with ONNX-style attributes and
typed *facts*: frozen dataclasses that passes attach (quantized levels, tiles,
placements), keyed by their class, never by strings.

The mutators on `Graph` keep producers and uses right, so passes never edit
those lists by hand. Graph queries (topological order, reachability) go
through networkx. `Graph.verify` checks the invariants every pass must keep;
the pipeline runs it between passes. networkx is imported by the queries
that use it (~0.2 s to import): verifying a graph whose nodes are already in
order, as a loaded Program's are, needs no graph algorithm.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lea_compiler.errors import IRVerificationError
from lea_compiler.ops import infer_node
from lea_compiler.shapes import Shape
from lea_compiler.tables import printable

if TYPE_CHECKING:
    import networkx as nx

F = TypeVar("F")


@dataclass(frozen=True)
class Use:
    """One place a value is read: input `index` of `node`."""

    node: Node
    index: int


class Value:
    """A tensor flowing through the graph: a graph input, an initializer or a node output."""

    __slots__ = ("name", "dtype", "shape", "producer", "const", "_uses")

    def __init__(
        self,
        name: str,
        dtype: np.dtype[Any] | type | str,
        shape: Shape,
        const: np.ndarray[Any, Any] | None = None,
    ) -> None:
        self.name = name
        self.dtype: np.dtype[Any] = np.dtype(dtype)
        self.shape: Shape = None if shape is None else tuple(shape)
        self.producer: Node | None = None
        self.const = const
        self._uses: list[Use] = []

    @property
    def uses(self) -> tuple[Use, ...]:
        """Every (node, input index) that reads this value, in insertion order."""
        return tuple(self._uses)

    @property
    def is_const(self) -> bool:
        """True for initializers (values whose data is known at compile time)."""
        return self.const is not None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def type_str(self) -> str:
        """The type as `float32[batch, 4]` (`?` for an unknown dimension or rank)."""
        if self.shape is None:
            return f"{_dtype_name(self.dtype)}[?]"
        dims = ", ".join("?" if d is None else printable(str(d)) for d in self.shape)
        return f"{_dtype_name(self.dtype)}[{dims}]"

    def __repr__(self) -> str:
        return f"Value(%{self.name}: {self.type_str()})"


class Node:
    """One operation: ONNX op type and domain, ordered inputs/outputs, attributes and facts."""

    __slots__ = ("op_type", "domain", "name", "_inputs", "_outputs", "attrs", "_facts")

    def __init__(
        self, op_type: str, name: str, domain: str = "", attrs: dict[str, Any] | None = None
    ) -> None:
        self.op_type = op_type
        self.domain = domain
        self.name = name
        self._inputs: list[Value | None] = []
        self._outputs: list[Value] = []
        self.attrs: dict[str, Any] = dict(attrs or {})
        self._facts: dict[type, object] = {}

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        """Inputs in order; None marks an omitted optional input."""
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Value, ...]:
        return tuple(self._outputs)

    def input(self, index: int) -> Value | None:
        """Input `index`, or None when it is omitted or beyond the inputs given."""
        return self._inputs[index] if index < len(self._inputs) else None

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def set_fact(self, fact: object) -> None:
        """Attach a frozen dataclass produced by a pass (replacing one of the same class)."""
        self._facts[type(fact)] = fact

    def fact(self, kind: type[F]) -> F | None:
        """The attached fact of class `kind`, or None."""
        found = self._facts.get(kind)
        return found if isinstance(found, kind) else None

    def remove_fact(self, kind: type) -> None:
        self._facts.pop(kind, None)

    @property
    def facts(self) -> tuple[object, ...]:
        return tuple(self._facts.values())

    @property
    def qualified_op(self) -> str:
        """`Gemm`, or `ai.onnx.ml.ArrayFeatureExtractor` outside the default domain."""
        return f"{self.domain}.{self.op_type}" if self.domain else self.op_type

    def describe(self) -> str:
        """`node 'fc1' (Gemm)`: how error messages name a node."""
        return f"node '{printable(self.name)}' ({printable(self.qualified_op)})"

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.qualified_op})"


class Graph:
    """A dataflow graph of `Node`s over `Value`s, with graph inputs, outputs and initializers."""

    def __init__(self, name: str = "graph", opset: dict[str, int] | None = None) -> None:
        self.name = name
        self.opset: dict[str, int] = dict(opset or {})
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.initializers: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.metadata: dict[str, str] = {}
        self._facts: dict[type, object] = {}
        self._names: set[str] = set()
        self._node_names: set[str] = set()

    # -------------------------------------------------------------------- facts
    def set_fact(self, fact: object) -> None:
        """Attach a whole-graph fact (e.g. the placement solver's summary), one per class."""
        self._facts[type(fact)] = fact

    def fact(self, kind: type[F]) -> F | None:
        found = self._facts.get(kind)
        return found if isinstance(found, kind) else None

    @property
    def facts(self) -> tuple[object, ...]:
        """The whole-graph facts, in the order their classes were first attached."""
        return tuple(self._facts.values())

    # ----------------------------------------------------------------- building
    def add_input(self, name: str, dtype: np.dtype[Any] | type | str, shape: Shape) -> Value:
        """Declare a graph input."""
        value = Value(self._claim(name), dtype, shape)
        self.inputs.append(value)
        return value

    def add_initializer(self, name: str, array: np.ndarray[Any, Any]) -> Value:
        """Add a compile-time constant tensor under a unique name."""
        array = np.asarray(array)
        value = Value(self._claim(name), array.dtype, array.shape, const=array)
        self.initializers[value.name] = value
        return value

    def add_node(
        self,
        op_type: str,
        inputs: Sequence[Value | None],
        outputs: Sequence[str | tuple[str, np.dtype[Any] | type | str, Shape]],
        *,
        name: str | None = None,
        domain: str = "",
        attrs: dict[str, Any] | None = None,
        before: Node | None = None,
    ) -> Node:
        """Create a node reading `inputs` and producing new values.

        Each output is a name (dtype float32 and unknown shape until set) or a
        `(name, dtype, shape)` triple. Output names are made unique if taken.
        The node is appended, or inserted before `before` to keep the list
        in a valid order.
        """
        node = Node(op_type, self._claim_node(name or op_type.lower()), domain, attrs)
        for index, value in enumerate(inputs):
            node._inputs.append(value)
            if value is not None:
                value._uses.append(Use(node, index))
        for spec in outputs:
            if isinstance(spec, str):
                out = Value(self._claim(spec), np.float32, None)
            else:
                out = Value(self._claim(spec[0]), spec[1], spec[2])
            out.producer = node
            node._outputs.append(out)
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    def set_input(self, node: Node, index: int, value: Value | None) -> None:
        """Make input `index` of `node` read `value` (None to omit it), keeping uses right."""
        while len(node._inputs) <= index:
            node._inputs.append(None)
        old = node._inputs[index]
        if old is not None:
            old._uses.remove(Use(node, index))
        node._inputs[index] = value
        if value is not None:
            value._uses.append(Use(node, index))

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Redirect every reader of `old` (nodes and graph outputs) to `new`."""
        if old is new:
            return
        for use in list(old._uses):
            self.set_input(use.node, use.index, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_node(self, node: Node) -> None:
        """Remove a node whose outputs nobody reads any more."""
        for out in node._outputs:
            if out._uses or any(v is out for v in self.outputs):
                readers = [u.node.name for u in out._uses] or ["a graph output"]
                raise ValueError(
                    f"cannot remove {node.describe()}: output %{out.name} is still read by "
                    + ", ".join(readers)
                )
        for index, value in enumerate(node._inputs):
            if value is not None:
                value._uses.remove(Use(node, index))
        node._inputs = []
        self.nodes.remove(node)
        for out in node._outputs:
            self._names.discard(out.name)
        self._node_names.discard(node.name)

    def remove_unused_initializers(self) -> int:
        """Drop initializers nothing reads; returns how many were dropped."""
        dead = [
            name
            for name, v in self.initializers.items()
            if not v._uses and not any(o is v for o in self.outputs)
        ]
        for name in dead:
            del self.initializers[name]
            self._names.discard(name)
        return len(dead)

    def rename(self, value: Value, name: str) -> None:
        """Give `value` a new name that no other value has."""
        if name == value.name:
            return
        if name in self._names:
            raise ValueError(f"cannot rename %{value.name} to %{name}: the name is taken")
        if value.name in self.initializers:
            self.initializers = {(name if k == value.name else k): v for k, v in self.initializers.items()}
        self._names.discard(value.name)
        self._names.add(name)
        value.name = name

    def rename_node(self, node: Node, name: str) -> None:
        """Give `node` a name no other node has (e.g. the name of the node it replaced)."""
        if name == node.name:
            return
        if name in self._node_names:
            raise ValueError(f"cannot rename node {node.name!r} to {name!r}: the name is taken")
        self._node_names.discard(node.name)
        self._node_names.add(name)
        node.name = name

    def fresh_name(self, base: str) -> str:
        """A value name not used yet, derived from `base` (not reserved until used)."""
        if base not in self._names:
            return base
        for i in itertools.count(1):
            candidate = f"{base}_{i}"
            if candidate not in self._names:
                return candidate
        raise AssertionError("unreachable")

    def _claim(self, name: str) -> str:
        unique = self.fresh_name(name)
        self._names.add(unique)
        return unique

    def _claim_node(self, name: str) -> str:
        unique = name
        for i in itertools.count(1):
            if unique not in self._node_names:
                break
            unique = f"{name}_{i}"
        self._node_names.add(unique)
        return unique

    # ------------------------------------------------------------------ queries
    def values(self) -> Iterator[Value]:
        """Every value: graph inputs, initializers, then node outputs in node order."""
        yield from self.inputs
        yield from self.initializers.values()
        for node in self.nodes:
            yield from node._outputs

    def value(self, name: str) -> Value:
        """The value called `name` (KeyError if there is none)."""
        for value in self.values():
            if value.name == name:
                return value
        raise KeyError(name)

    def node(self, name: str) -> Node:
        """The node called `name` (KeyError if there is none)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def to_networkx(self) -> nx.MultiDiGraph:
        """Nodes as a networkx multigraph; one edge per value read, keyed by the value's name."""
        import networkx as nx  # here: see the module docstring

        g = nx.MultiDiGraph()
        g.add_nodes_from(self.nodes)
        for node in self.nodes:
            for value in node._inputs:
                if value is not None and value.producer is not None:
                    g.add_edge(value.producer, node, key=value.name)
        return g

    def topological_order(self) -> list[Node]:
        """Nodes so that every producer comes before its readers; stable for a valid list order.

        Raises IRVerificationError naming the nodes on a cycle.
        """
        import networkx as nx  # here: see the module docstring

        g = self.to_networkx()
        position = {node: i for i, node in enumerate(self.nodes)}
        try:
            return list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(g)
            names = " -> ".join(edge[0].name for edge in cycle)
            raise IRVerificationError([f"the graph has a cycle: {names}"]) from None

    def sort(self) -> None:
        """Reorder `nodes` topologically (passes call this after inserting out of order)."""
        self.nodes = self.topological_order()

    def successors(self, node: Node) -> list[Node]:
        """Nodes reading any output of `node`, each once, in graph order."""
        readers = {use.node for out in node._outputs for use in out._uses}
        return [n for n in self.nodes if n in readers]

    def predecessors(self, node: Node) -> list[Node]:
        """Nodes producing any input of `node`, each once, in graph order."""
        producers = {v.producer for v in node._inputs if v is not None and v.producer is not None}
        return [n for n in self.nodes if n in producers]

    def nodes_of(self, *op_types: str) -> list[Node]:
        """Nodes whose op type is one of `op_types`, in graph order."""
        return [n for n in self.nodes if n.op_type in op_types]

    # ----------------------------------------------------------------- checking
    def problems(self) -> list[str]:
        """Every broken invariant, as messages; empty for a well-formed graph."""
        problems: list[str] = []
        defined: dict[str, str] = {}
        defined_ids: set[int] = set()

        def define(value: Value, where: str) -> None:
            if value.name in defined:
                problems.append(f"value %{value.name} is defined twice: {defined[value.name]} and {where}")
            defined[value.name] = where
            defined_ids.add(id(value))

        for value in self.inputs:
            define(value, "a graph input")
            if value.const is not None or value.producer is not None:
                problems.append(f"graph input %{value.name} has a producer or constant data")
        for name, value in self.initializers.items():
            define(value, "an initializer")
            if name != value.name:
                problems.append(f"initializer key {name!r} does not match its value %{value.name}")
            if value.const is None:
                problems.append(f"initializer %{value.name} has no data")
            else:
                if value.const.dtype != value.dtype:
                    problems.append(
                        f"initializer %{value.name}: data is {value.const.dtype}, value says {value.dtype}"
                    )
                if value.shape != tuple(value.const.shape):
                    problems.append(
                        f"initializer %{value.name}: data has shape {list(value.const.shape)}, "
                        f"value says {value.type_str()}"
                    )
        node_names: set[str] = set()
        for node in self.nodes:
            if node.name in node_names:
                problems.append(f"two nodes are called {node.name!r}")
            node_names.add(node.name)
            for out in node._outputs:
                define(out, node.describe())
                if out.producer is not node:
                    problems.append(f"{node.describe()}: output %{out.name} names another producer")
        for node in self.nodes:
            for index, used in enumerate(node._inputs):
                if used is None:
                    continue
                if id(used) not in defined_ids:
                    problems.append(f"{node.describe()}: input {index} %{used.name} is not defined in the graph")
                if Use(node, index) not in used._uses:
                    problems.append(f"{node.describe()}: input {index} %{used.name} does not list this use")
        members = set(self.nodes)
        for value in self.values():
            for use in value._uses:
                if use.node not in members or use.node.input(use.index) is not value:
                    problems.append(f"value %{value.name} lists a stale use by {use.node.describe()}")
            if value.shape is not None:
                for d in value.shape:
                    if isinstance(d, bool) or not (d is None or isinstance(d, str) or (isinstance(d, int) and d >= 0)):
                        problems.append(f"value %{value.name} has an invalid dimension {d!r}")
        for value in self.outputs:
            if id(value) not in defined_ids:
                problems.append(f"graph output %{value.name} is not defined in the graph")
        try:  # nodes in order are their own topological order (the sort is stable): no need to sort them
            order = self.nodes if self._producers_come_first() else self.topological_order()
        except IRVerificationError as exc:
            problems.extend(exc.problems)
            return problems
        if order != self.nodes:
            position = {n: i for i, n in enumerate(self.nodes)}
            for node in self.nodes:
                for pred in self.predecessors(node):
                    if position[pred] > position[node]:
                        problems.append(f"{node.describe()} comes before its producer {pred.describe()}")
        for node in self.nodes:
            problems.extend(infer_node(node, check=True))
        return problems

    def _producers_come_first(self) -> bool:
        """Whether every node's inputs are made by nodes before it in `nodes` (so no node reads itself and
        there is no cycle), in one pass over the list."""
        seen: set[int] = set()
        for node in self.nodes:
            for value in node._inputs:
                if value is not None and value.producer is not None and id(value.producer) not in seen:
                    return False
            seen.add(id(node))
        return True

    def verify(self, after: str | None = None) -> None:
        """Raise IRVerificationError listing every broken invariant (`after` names the pass)."""
        problems = self.problems()
        if problems:
            raise IRVerificationError(problems, after=after)

    # ----------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        """The graph as flat tables (values and nodes referring to each other by index).

        pickle and copy.deepcopy would otherwise follow value -> use -> node -> output
        -> value ... one Python frame per step and hit the recursion limit on a model
        of about 100 nodes. Node attributes, constants and facts are kept as they are
        (facts never refer to nodes or values); use lists keep their order.
        """
        values: list[Value] = []
        index: dict[int, int] = {}

        def number(value: Value) -> int:
            if id(value) not in index:
                index[id(value)] = len(values)
                values.append(value)
            return index[id(value)]

        for value in [*self.inputs, *self.initializers.values()]:
            number(value)
        node_index = {id(node): i for i, node in enumerate(self.nodes)}
        nodes = [
            (
                node.op_type, node.domain, node.name, node.attrs, node._facts,
                [None if v is None else number(v) for v in node._inputs], [number(v) for v in node._outputs],
            )
            for node in self.nodes
        ]
        outputs = [number(v) for v in self.outputs]

        def node_number(node: Node) -> int:
            if id(node) not in node_index:
                raise ValueError(f"cannot copy the graph: it refers to {node.describe()}, which is not in it")
            return node_index[id(node)]

        table = [
            (
                v.name, v.dtype, v.shape, v.const,
                None if v.producer is None else node_number(v.producer),
                [(node_number(use.node), use.index) for use in v._uses],
            )
            for v in values
        ]
        return {
            "name": self.name, "opset": self.opset, "metadata": self.metadata, "facts": self._facts,
            "names": self._names, "node_names": self._node_names, "values": table, "nodes": nodes,
            "inputs": [index[id(v)] for v in self.inputs],
            "initializers": [(name, index[id(v)]) for name, v in self.initializers.items()],
            "outputs": outputs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        values = [Value(name, dtype, shape, const) for name, dtype, shape, const, _, _ in state["values"]]
        nodes = []
        for op_type, domain, name, attrs, facts, inputs, outputs in state["nodes"]:
            node = Node(op_type, name, domain, attrs)
            node._facts = facts
            node._inputs = [None if i is None else values[i] for i in inputs]
            node._outputs = [values[i] for i in outputs]
            nodes.append(node)
        for value, (_, _, _, _, producer, uses) in zip(values, state["values"], strict=True):
            value.producer = None if producer is None else nodes[producer]
            value._uses = [Use(nodes[n], i) for n, i in uses]
        self.name = state["name"]
        self.opset = state["opset"]
        self.inputs = [values[i] for i in state["inputs"]]
        self.outputs = [values[i] for i in state["outputs"]]
        self.initializers = {name: values[i] for name, i in state["initializers"]}
        self.nodes = nodes
        self.metadata = state["metadata"]
        self._facts = state["facts"]
        self._names = state["names"]
        self._node_names = state["node_names"]

    # ----------------------------------------------------------------- printing
    def __str__(self) -> str:
        return format_graph(self)


def _dtype_name(dtype: np.dtype[Any]) -> str:
    return "string" if dtype == np.dtype(object) else str(dtype)


def _format_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return f"tensor<{_dtype_name(value.dtype)}>{value.tolist()}"
        return f"tensor<{_dtype_name(value.dtype)}{list(value.shape)}>"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_attr(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def node_signature(node: Node) -> str:
    """A node's one line, without its facts: `%y: float32[batch, 12] = Gemm(%x, %W, %b) {transB=1}  # fc1`."""
    outs = ", ".join(f"%{printable(v.name)}: {v.type_str()}" for v in node.outputs)
    ins = ", ".join("_" if v is None else f"%{printable(v.name)}" for v in node.inputs)
    attrs = ""
    if node.attrs:
        attrs = " {" + ", ".join(f"{printable(k)}={_format_attr(node.attrs[k])}" for k in sorted(node.attrs)) + "}"
    return f"{outs} = {printable(node.qualified_op)}({ins}){attrs}  # {printable(node.name)}"


def format_node(node: Node) -> str:
    """One node as `node_signature`, then one line per fact (its `describe()`)."""
    line = node_signature(node)
    for fact in node.facts:
        describe = getattr(fact, "describe", None)
        text = describe() if callable(describe) else type(fact).__name__
        line += f"\n      {type(fact).__name__}: {printable(text)}"
    return line


def graph_heading(graph: Graph) -> str:
    """The first line of a printed graph: `graph NAME (opset ai.onnx 17, leac 1)`."""
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(graph.opset.items()))
    opsets = printable(opsets)
    return f"graph {printable(graph.name)} (opset {opsets or 'none'})"


def format_graph(graph: Graph) -> str:
    """The whole graph as stable, readable text (what `leac inspect` prints)."""
    lines = [graph_heading(graph)]
    for value in graph.inputs:
        lines.append(f"  input  %{printable(value.name)}: {value.type_str()}")
    for value in graph.initializers.values():
        lines.append(f"  const  %{printable(value.name)}: {value.type_str()}{_const_preview(value)}")
    for node in graph.nodes:
        lines.append("  " + format_node(node))
    for value in graph.outputs:
        lines.append(f"  output %{printable(value.name)}: {value.type_str()}")
    return "\n".join(lines)


def _const_preview(value: Value) -> str:
    assert value.const is not None
    if value.const.size > 6:
        return ""
    if value.const.dtype.kind == "f":
        text = np.array2string(value.const, separator=", ", formatter={"float_kind": "{:.6g}".format})
        return " = " + " ".join(text.split())
    return f" = {np.asarray(value.const).tolist()}"
