"""Graph analyses that several commands share: which nodes compile maps to crossbars, at what device cost.

The answer is the one `leac compile` acts on: the graph is put through the
`canonicalize` pass (on a copy) and every `leac.MVM` node it leaves is a
crossbar layer. So what canonicalize folds into a matrix product counts as
compile counts it: a Gemm's per-column bias, the bias Add after a MatMul
(skl2onnx's MatMul + Add), a Conv's bias, a BatchNormalization folded into
the weights; a node canonicalize leaves alone (a Gemm with transA, a
non-constant weight) runs digitally here as it does in a compiled Program.

The crossbar matrix has one row per input element (plus one row for the
bias when it is put on the crossbar, `leac compile --bias row`) and one
column per output element; each weight takes a differential pair of
devices, and each of the k copies its own devices (`Program.devices_used`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from lea_compiler.chip import Chip
from lea_compiler.errors import DoesNotFitError
from lea_compiler.ir import Graph, Node
from lea_compiler.layer_sizes import AUTO_SHARE, CountSpec, counts
from lea_compiler.passes.canonicalize import Canonicalize

DEVICES_PER_WEIGHT = 2
"""A weight is a differential pair G+ - G-."""


@dataclass(frozen=True)
class CrossbarLayer:
    """One matrix product that maps to crossbars, with its matrix size and device cost."""

    node: str
    op_type: str  # the op of the imported node (Gemm, MatMul, Conv), before canonicalize made it an MVM
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
    """The crossbar layers `leac compile` would make of `graph` (left unchanged), in graph order.

    Raises:
        CompileError: canonicalize cannot rewrite the graph (compile would stop there too).
    """
    ops = {node.name: node.op_type for node in graph.nodes}
    canonical = Canonicalize().run(copy.deepcopy(graph))
    return [mvm_layer(node, ops.get(node.name, node.op_type)) for node in canonical.nodes_of("MVM")]


def mvm_layer(node: Node, op_type: str | None = None) -> CrossbarLayer:
    """The crossbar layer of a canonical `MVM(x, W, b)` node; `op_type` names the op it came from."""
    x, weight = node.input(0), node.input(1)
    assert x is not None and weight is not None and weight.const is not None, "canonicalize makes W constant"
    rows, cols = (int(n) for n in weight.const.shape)
    reads = None  # one crossbar read per vector of the input's middle axes (per output pixel of a Conv)
    if x.shape is not None and all(isinstance(d, int) for d in x.shape[1:-1]):
        reads = 1
        for d in x.shape[1:-1]:
            reads *= int(d)  # type: ignore[arg-type]
    return CrossbarLayer(node.name, op_type or node.op_type, rows, cols, node.input(2) is not None, reads)


def total_devices(layers: Iterable[CrossbarLayer], k: int = 1, bias_row: bool = False) -> int:
    """Devices all `layers` need at `k` copies: the one sum `leac inspect` prints and compile checks first."""
    return sum(layer.devices(k, bias_row) for layer in layers)


def canonical_devices(graph: Graph, k: CountSpec = 1, bias_row: bool = False) -> int:
    """`total_devices` of a graph canonicalize has run on (its `leac.MVM` nodes), without copying it, at `k`
    copies of every layer or a per-layer spec's (`lea_compiler.layer_sizes`).

    Raises:
        UsageError: a per-layer spec naming no layer of the graph, or leaving one without a count.
    """
    layers = [mvm_layer(node) for node in graph.nodes_of("MVM")]
    if isinstance(k, int):
        return total_devices(layers, k, bias_row)
    alpha = counts(k, [layer.node for layer in layers], "k")
    return sum(layer.devices(alpha[layer.node], bias_row) for layer in layers)


def check_devices(needed: int, chip: Chip, k: CountSpec, per_copy: int | None = None, *,
                  per_layer: bool = True) -> None:
    """Refuse a chip with fewer devices than the crossbar layers need, before any work is spent on them.

    Every copy of every weight needs its own differential pair, so a chip with fewer devices than
    `needed` (a `total_devices` count) cannot hold the model at `k` copies, whatever the placer does.
    Checking this first keeps `-k 100000` from quantizing and tiling for minutes before `place` says so.
    With `per_copy` (the devices of one copy of every layer), the message says the largest uniform k the
    chip's device count allows and, with `per_layer` (the layer ensemble), that per-layer counts could fit.

    Raises:
        DoesNotFitError: the chip has fewer devices than `needed`.
    """
    if needed > chip.device_count:
        n = len(chip.arrays)
        largest = ""
        if per_copy:
            most = chip.device_count // per_copy
            choice = ("; give layers their own k (-k LAYER=K,...,default=K), or let -k auto --calibrate DATA.npz "
                      f"choose them within {int(chip.device_count * AUTO_SHARE)} devices (--budget says how many)"
                      if per_layer else "")
            largest = (f"; at most k = {most} fits by device count ({per_copy} devices per copy of every layer)"
                       f"{choice}" if most >= 1 else
                       f"; not even one copy fits ({per_copy} devices)")
        raise DoesNotFitError(
            f"not enough devices: the crossbar layers need {needed} devices at k = {k} (2 per weight per copy; "
            f"leac inspect -k {k} lists them) and the chip has {chip.device_count} devices in {n} "
            f"{'array' if n == 1 else 'arrays'}{largest}"
        )
