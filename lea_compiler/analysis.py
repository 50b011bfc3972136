"""Graph analyses that several commands share: which nodes are crossbar matrix products.

A node can go to a crossbar when it multiplies a dynamic input by a constant
matrix: Gemm with a constant B, MatMul with a constant 2-D right operand, and
Conv with a constant weight (as a matrix product over input patches). The
crossbar matrix has one row per input element (plus one row for the bias when
it is put on the crossbar, `leac compile --bias row`) and one column per
output element; each weight takes a differential pair of devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from lea_compiler.ir import Graph, Node

DEVICES_PER_WEIGHT = 2
"""A weight is a differential pair G+ - G-."""


@dataclass(frozen=True)
class CrossbarLayer:
    """One matrix product that maps to crossbars, with its matrix size and device cost."""

    node: str
    op_type: str
    rows: int
    cols: int
    bias: bool
    reads_per_sample: int | None

    def matrix_rows(self, bias_row: bool = False) -> int:
        """Crossbar rows: inputs, plus one row driven by a constant input if the bias goes there."""
        return self.rows + (1 if self.bias and bias_row else 0)

    def devices(self, k: int = 1, bias_row: bool = False) -> int:
        """Devices needed for `k` copies of the layer (LEA costs 2 * k * rows * cols)."""
        return DEVICES_PER_WEIGHT * k * self.matrix_rows(bias_row) * self.cols


def crossbar_layers(graph: Graph) -> list[CrossbarLayer]:
    """The crossbar matrix products of `graph`, in graph order."""
    return [layer for node in graph.nodes if (layer := crossbar_layer(node)) is not None]


def crossbar_layer(node: Node) -> CrossbarLayer | None:
    """The crossbar matrix of `node`, or None when the node runs digitally."""
    a, b = node.input(0), node.input(1)
    if a is None or b is None or a.is_const or b.const is None:
        return None
    weight = b.const
    bias_value = node.input(2)
    if node.op_type == "Gemm" and weight.ndim == 2 and not node.attr("transA", 0):
        rows, cols = weight.shape[::-1] if node.attr("transB", 0) else weight.shape
        bias = bias_value is not None and bias_value.const is not None and _is_row_bias(bias_value.const.shape, cols)
        if bias_value is not None and not bias:
            return None
        return CrossbarLayer(node.name, node.op_type, int(rows), int(cols), bias, 1)
    if node.op_type == "MatMul" and weight.ndim == 2:
        reads = None
        if a.shape is not None and all(isinstance(d, int) for d in a.shape[1:-1]):
            reads = 1
            for d in a.shape[1:-1]:
                reads *= int(d)  # type: ignore[arg-type]
        return CrossbarLayer(node.name, node.op_type, int(weight.shape[0]), int(weight.shape[1]), False, reads)
    if node.op_type == "Conv" and weight.ndim == 4:
        out = node.outputs[0].shape
        reads = None
        if out is not None and isinstance(out[2], int) and isinstance(out[3], int):
            reads = out[2] * out[3]
        rows = int(weight.shape[1] * weight.shape[2] * weight.shape[3])
        bias = bias_value is not None and bias_value.is_const
        if bias_value is not None and not bias:
            return None
        return CrossbarLayer(node.name, node.op_type, rows, int(weight.shape[0]), bias, reads)
    return None


def _is_row_bias(shape: tuple[int, ...], cols: int) -> bool:
    return shape in ((), (1,), (cols,), (1, cols), (1, 1))
