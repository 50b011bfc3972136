"""canonicalize: rewrite the imported graph so that every crossbar op is `leac.MVM`.

After this pass each matrix product that can run on crossbars is one node
`y = MVM(x, W, b)` meaning `y[..., j] = sum_i x[..., i] W[i, j] + b[j]`, with W
(rows = inputs, columns = outputs) and b constant. Rewrites, in order:

1. Constant nodes become initializers.
2. Identity and Dropout (inference: the identity) are removed.
3. BatchNormalization that follows a 1-D or 2-D Conv (or, after step 4, a 2-D MVM) whose
   output nobody else reads is folded into its weights:
   with f = scale / sqrt(var + eps),  W'[o] = W[o] f[o],  b' = (b - mean) f + B.
4. Gemm(x, B, C) with constant B and transA = 0 becomes
   MVM(x, alpha B^T-or-B, beta C) when C is a per-column bias; MatMul(x, W) with a
   constant 2-D W becomes MVM(x, W), and an Add of a constant per-column bias
   right after it joins the MVM.
5. Conv(x, W, b) (constant W) becomes
   Transpose(MVM(Patches(x), W.reshape(O, C kh kw)^T, b), perm = [0, 3, 1, 2]):
   `leac.Patches` is im2col, one row of C kh kw inputs per output pixel, so
   the crossbar sees one read per output pixel. A 1-D Conv (N, C, L) is the
   same with a kernel of unit height: Patches gives (N, OL, C k) and the
   Transpose has perm = [0, 2, 1].
   With group = G > 1 (grouped and depthwise Conv) W is (O, C/G, kh, kw) and
   output channel o reads only group g(o) = o // (O/G)'s K = C/G kh kw patch
   columns, which im2col keeps contiguous. The crossbar matrix is the dense
   K x O matrix W.reshape(O, K)^T (every group's kernels side by side in
   their own columns: no zero block-diagonal padding), read once per group
   and pixel with that group's K inputs, converting only its own columns:
       MVM(Patches(x) {groups = G} -> (N, *pixels, G, K), W, b) {groups = G} -> (N, *pixels, O)
   (`leac.MVM` with groups: y[..., o] = sum_i x[..., g(o), i] W[i, o] + b[o]).
   Devices: 2 K O per copy (block-diagonal: 2 G K O); reads: G per pixel,
   each of the blocks holding the group's columns (block-diagonal: one per
   block of a matrix G times as tall); ADC conversions: O per pixel.
6. Nodes whose outputs nobody reads, and unused initializers, are dropped.

Graph output names are kept: when a removed node produced a graph output,
the value that replaces it takes over its name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lea_compiler.errors import CompileError, InvalidModelError
from lea_compiler.ir import Graph, Node, Value
from lea_compiler.ops import LEAC_DOMAIN, constant_value, infer_node
from lea_compiler.shapes import window_of


@dataclass(frozen=True)
class Canonicalize:
    """The canonicalize pass (see the module docstring)."""

    name: str = "canonicalize"

    def run(self, graph: Graph) -> Graph:
        fold_constants(graph)
        remove_identities(graph)
        # Folding NaN or huge attributes (Gemm alpha, BatchNormalization statistics) gives NaN or infinite
        # weights, which quantize refuses by name; numpy need not warn about them on the way.
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for node in graph.nodes_of("BatchNormalization"):
                fold_batchnorm(graph, node)
            for node in graph.nodes_of("Gemm", "MatMul"):
                lower_matrix_product(graph, node)
            for node in graph.nodes_of("BatchNormalization"):
                fold_batchnorm(graph, node)
            for node in graph.nodes_of("Conv"):
                lower_conv(graph, node)
        remove_dead_nodes(graph)
        graph.remove_unused_initializers()
        return graph


MATRIX_PRODUCT_OPS = ("Gemm", "MatMul", "Conv")
"""The ONNX ops canonicalize can turn into crossbar layers (`leac.MVM`)."""


def require_mvm(graph: Graph, needed_by: str) -> None:
    """Check that `graph` (after canonicalize) has a crossbar layer for pass `needed_by` to work on.

    Raises:
        InvalidModelError: the model has no matrix product at all, so nothing can go onto crossbars.
        CompileError: it has matrix products but none became a `leac.MVM`: each named with why it cannot
            (`unmapped_reason`), or, where one could, that canonicalize did not run.
    """
    if graph.nodes_of("MVM"):
        return
    products = [n for n in graph.nodes if n.op_type in MATRIX_PRODUCT_OPS and not n.domain]
    if not products:
        source = graph.metadata.get("source") or graph.name
        raise InvalidModelError(f"{source}: the model has no matrix product (Gemm, MatMul or Conv), so it has "
                                "no layer to map onto crossbars")
    reasons = [unmapped_reason(n) for n in products]
    if any(reason is None for reason in reasons):  # one that canonicalize would have lowered
        raise CompileError(f"{needed_by} needs leac.MVM nodes (run canonicalize first), which canonicalize makes "
                           "from matrix products by constant weights (an initializer or a Constant node); none here "
                           f"became one: {', '.join(n.describe() for n in products)}")
    raise CompileError(f"{needed_by} found no matrix product that maps onto crossbars (a product x @ W of the "
                       "data by a constant matrix W, or a Conv by a constant weight): "
                       + "; ".join(f"{n.describe()}: {reason}" for n, reason in zip(products, reasons, strict=True)))


def unmapped_reason(node: Node) -> str | None:
    """Why canonicalize cannot make matrix product `node` (Gemm, MatMul or Conv) a leac.MVM, or None if it can:
    a crossbar holds a constant 2-D matrix W and computes x @ W for the data x on the left."""
    if node.op_type == "Conv":
        x, weight, bias = node.input(0), node.input(1), node.input(2)
        if weight is None or weight.const is None:
            return "its weight is computed, not a constant (an initializer or a Constant node)"
        if x is None or x.shape is None or len(x.shape) not in (3, 4):
            return "its input is not a batch of 1-D or 2-D images of known rank"
        if bias is not None and bias.const is None:
            return "its bias is computed, not a constant"
        return None
    x, b_in = node.input(0), node.input(1)
    if x is None or b_in is None:
        return "it has fewer than two operands"
    if x.is_const and b_in.const is not None:
        return "both operands are constants (fold it into one before exporting the model)"
    if x.is_const:
        return "its constant is the left operand (W @ x); a crossbar computes x @ W, the data on the left"
    if b_in.const is None:
        return "its right operand is computed, not a constant weight (an initializer or a Constant node)"
    if b_in.const.ndim != 2:
        return f"its constant weight is {b_in.const.ndim}-D; a crossbar holds a matrix (2-D)"
    if node.op_type == "Gemm":
        if node.attr("transA", 0):
            return "it is a Gemm with transA=1 (the data transposed)"
        c = node.input(2)
        cols = b_in.const.shape[0 if node.attr("transB", 0) else 1]
        if c is not None and _column_bias(c, cols) is None:
            return "its C is not a constant bias of one value per output column"
    return None


def fold_constants(graph: Graph) -> None:
    """Constant nodes become initializers under their output's name."""
    for node in graph.nodes_of("Constant"):
        out = node.outputs[0]
        value = graph.add_initializer(out.name + "__const", constant_value(node))
        _take_over(graph, out, value)
        graph.remove_node(node)


def remove_identities(graph: Graph) -> None:
    """Drop Identity nodes and inference-mode Dropout (whose mask nobody reads)."""
    for node in graph.nodes_of("Identity", "Dropout"):
        if node.op_type == "Dropout" and len(node.outputs) > 1 and _is_read(graph, node.outputs[1]):
            continue
        source = node.input(0)
        assert source is not None
        _bypass(graph, node, source)


def fold_batchnorm(graph: Graph, bn: Node) -> bool:
    """Fold `bn` into the 1-D or 2-D Conv or the 2-D MVM before it; False when that is not possible."""
    x = bn.input(0)
    if x is None or x.producer is None or len(x.uses) != 1 or _is_graph_output(graph, x):
        return False
    producer = x.producer
    weight = producer.input(1)
    if weight is None or weight.const is None or any(p is None or p.const is None for p in bn.inputs[1:5]):
        return False
    if producer.op_type == "Conv" and weight.const.ndim in (3, 4):  # (O, C/group, *kernel): 1-D or 2-D
        channel_axis = 0
    elif producer.op_type == "MVM" and producer.domain == LEAC_DOMAIN and x.rank == 2:
        channel_axis = 1
    else:
        return False
    scale, offset, mean, var = (np.asarray(v.const, dtype=np.float64) for v in bn.inputs[1:5])  # type: ignore[union-attr]
    factor = scale / np.sqrt(var + float(bn.attr("epsilon", 1e-5)))
    w = np.asarray(weight.const, dtype=np.float64)
    shape = [1] * w.ndim
    shape[channel_axis] = -1
    new_w = (w * factor.reshape(shape)).astype(weight.dtype)
    old_b = producer.input(2)
    b = np.zeros(factor.shape) if old_b is None else np.asarray(old_b.const, dtype=np.float64)
    new_b = ((b - mean) * factor + offset).astype(weight.dtype)
    graph.set_input(producer, 1, graph.add_initializer(weight.name + "__bn", new_w))
    graph.set_input(producer, 2, graph.add_initializer(producer.name + "__bias_bn", new_b))
    _bypass(graph, bn, x)
    return True


def lower_matrix_product(graph: Graph, node: Node) -> bool:
    """Gemm / MatMul with a constant matrix (and a following bias Add) -> MVM."""
    if unmapped_reason(node) is not None:
        return False
    x, b_in = node.input(0), node.input(1)
    assert x is not None and b_in is not None and b_in.const is not None
    w = np.asarray(b_in.const)
    bias: np.ndarray | None = None
    if node.op_type == "Gemm":
        if node.attr("transB", 0):
            w = w.T
        w = w * np.asarray(node.attr("alpha", 1.0), dtype=w.dtype)
        c = node.input(2)
        if c is not None:
            bias = _column_bias(c, w.shape[1])
            assert bias is not None
            bias = bias * np.asarray(node.attr("beta", 1.0), dtype=bias.dtype)
    out = node.outputs[0]
    add = _bias_add_after(graph, out, w.shape[1]) if bias is None else None
    if add is not None:
        add_node, bias = add
        final_node, final_out = add_node, add_node.outputs[0]
    else:
        final_node, final_out = node, out
    inputs: list[Value | None] = [x, graph.add_initializer(node.name + "__W", np.ascontiguousarray(w))]
    if bias is not None:
        inputs.append(graph.add_initializer(node.name + "__b", np.ascontiguousarray(bias.astype(w.dtype))))
    mvm = graph.add_node(
        "MVM", inputs, [(final_out.name + "__mvm", final_out.dtype, final_out.shape)],
        name=node.name, domain=LEAC_DOMAIN, before=node,
    )
    _take_over(graph, final_out, mvm.outputs[0])
    for old in (final_node, node) if final_node is not node else (node,):
        graph.remove_node(old)
    graph.rename_node(mvm, node.name)
    return True


def lower_conv(graph: Graph, conv: Node) -> bool:
    """Conv (1-D or 2-D, any group) with a constant weight -> Transpose(MVM(Patches(x))).

    With group = G > 1 the MVM is the packed one of the module docstring: Patches gives each group's
    K inputs as their own vector, (..., G, K), and the MVM by the K x O matrix has groups = G.
    """
    if unmapped_reason(conv) is not None:
        return False
    x, weight, bias = conv.input(0), conv.input(1), conv.input(2)
    assert x is not None and x.shape is not None and weight is not None and weight.const is not None
    w = np.asarray(weight.const)
    kernel = [int(k) for k in conv.attr("kernel_shape", w.shape[2:])]
    try:
        window = window_of(conv, x.shape[2:], kernel)
    except Exception as exc:
        raise CompileError(f"{conv.describe()}: {exc}") from None
    group = int(conv.attr("group", 1))
    # the patches are (N, *pixels, C K), or (N, *pixels, G, K) grouped: one read per group and pixel, each with
    # the group's own K inputs
    patches = graph.add_node(
        "Patches", [x], [(conv.name + "__patches", x.dtype, None)], name=conv.name + "__patches",
        domain=LEAC_DOMAIN, attrs={**window.attributes(), "ceil_mode": 0, **({"groups": group} if group > 1 else {})},
        before=conv,
    )
    infer_node(patches, check=False)
    pixels = len(x.shape) - 2  # one spatial axis or two
    out_channels, depth = w.shape[0], int(np.prod(w.shape[1:]))
    matrix = np.ascontiguousarray(w.reshape(out_channels, depth).T)
    inputs: list[Value | None] = [patches.outputs[0], graph.add_initializer(conv.name + "__W", matrix)]
    if bias is not None:
        inputs.append(bias)
    mvm = graph.add_node("MVM", inputs, [(conv.name + "__mvm", x.dtype, None)], name=conv.name,
                         domain=LEAC_DOMAIN, attrs={"groups": group} if group > 1 else None, before=conv)
    infer_node(mvm, check=False)
    channels_last = mvm.outputs[0]
    out = conv.outputs[0]
    transpose = graph.add_node(
        "Transpose", [channels_last], [(out.name + "__nchw", out.dtype, out.shape)],
        name=conv.name + "__nchw", attrs={"perm": [0, 1 + pixels, *range(1, 1 + pixels)]}, before=conv,
    )
    _take_over(graph, out, transpose.outputs[0])
    graph.remove_node(conv)
    graph.rename_node(mvm, conv.name)
    return True


def remove_dead_nodes(graph: Graph) -> int:
    """Drop nodes none of whose outputs is read or is a graph output; returns how many."""
    removed = 0
    for node in reversed(list(graph.nodes)):
        if not any(_is_read(graph, out) for out in node.outputs):
            graph.remove_node(node)
            removed += 1
    return removed


# ------------------------------------------------------------------ helpers
def _is_graph_output(graph: Graph, value: Value) -> bool:
    return any(v is value for v in graph.outputs)


def _is_read(graph: Graph, value: Value) -> bool:
    return bool(value.uses) or _is_graph_output(graph, value)


def _take_over(graph: Graph, old: Value, new: Value, keep_name: bool = True) -> None:
    """`new` replaces `old` everywhere and takes its name (always for a graph output)."""
    keep_name = keep_name or _is_graph_output(graph, old)
    graph.replace_all_uses(old, new)
    if keep_name:
        name = old.name
        graph.rename(old, graph.fresh_name(name + "__replaced"))
        graph.rename(new, name)


def _bypass(graph: Graph, node: Node, source: Value) -> None:
    """Remove a pass-through node, its readers reading `source` instead."""
    out = node.outputs[0]
    if _is_graph_output(graph, out) and (source.producer is None or _is_graph_output(graph, source)):
        return  # a graph input or output passed straight through: keep the node so both names exist
    _take_over(graph, out, source, keep_name=False)
    for extra in node.outputs[1:]:
        if _is_read(graph, extra):
            return
    graph.remove_node(node)


def _column_bias(value: Value, cols: int) -> np.ndarray | None:
    """`value` as a length-`cols` bias vector if it is a constant per-column bias."""
    if value.const is None:
        return None
    c = np.asarray(value.const)
    if c.shape in ((), (1,), (1, 1)):
        return np.full(cols, c.reshape(-1)[0], dtype=c.dtype)
    if c.shape in ((cols,), (1, cols)):
        return c.reshape(cols).copy()
    return None


def _bias_add_after(graph: Graph, out: Value, cols: int) -> tuple[Node, np.ndarray] | None:
    """An Add of a constant per-column bias that is the only reader of `out`."""
    if len(out.uses) != 1 or _is_graph_output(graph, out):
        return None
    add = out.uses[0].node
    if add.op_type != "Add" or add.domain:
        return None
    other = add.input(1 - out.uses[0].index)
    if other is None:
        return None
    bias = _column_bias(other, cols)
    if bias is None or add.outputs[0].shape != out.shape:
        return None
    return add, bias
