"""select: for every output column, which beta of the alpha copies are averaged.

For copy c of a block and output column j, the column error is
e[c, j] = sum_i |(G+_ij - G-_ij) - (T+_ij - T-_ij)| over the block's rows, with
the expected conductances after `encode` (stuck values included). Each column
averages the beta copies with the smallest e (ties: the lower copy index).
The choice is made here, at compile time, from the defect map, and stored in
the Program; the periphery applies it as a fixed mask. With `joint` encoding
the `encode` pass has already chosen the copies (it encodes them together)
and this pass keeps its masks; the effective error is then measured against
the unquantized W s the copies' mean aims at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lea_compiler.errors import CompileError
from lea_compiler.ir import Graph
from lea_compiler.passes.encode import Encoded, select_columns
from lea_compiler.passes.ensemble import Ensemble
from lea_compiler.passes.quantize import QuantizedLayer
from lea_compiler.passes.tile import Tiling


@dataclass(frozen=True, eq=False)
class Selection:
    """Fact on an MVM: per block, an (alpha, cols) mask of the copies averaged, and the errors behind it."""

    masks: tuple[np.ndarray, ...]
    column_error_uS: tuple[np.ndarray, ...]  # per block (alpha, cols)
    effective_error_uS: float  # sum over pairs of |mean of selected differences - target difference|

    def describe(self) -> str:
        return f"error of the averaged copies {self.effective_error_uS:.4g} uS"


@dataclass(frozen=True)
class Select:
    """The select pass (see the module docstring)."""

    name: str = "select"

    def run(self, graph: Graph) -> Graph:
        for node in graph.nodes_of("MVM"):
            quantized, tiling = node.fact(QuantizedLayer), node.fact(Tiling)
            ensemble, encoded = node.fact(Ensemble), node.fact(Encoded)
            if quantized is None or tiling is None or ensemble is None or encoded is None:
                raise CompileError(f"select needs encoded layers; run encode first ({node.describe()})")
            target_p, target_n = quantized.target_uS()
            aim = quantized.target_difference_uS()
            masks, errors, effective = [], [], 0.0
            for block in tiling.blocks:
                rows = slice(block.row_start, block.row_stop)
                cols = slice(block.col_start, block.col_stop)
                target = target_p[rows, cols] - target_n[rows, cols]
                diffs = np.stack([encoded.get(block.index, c).difference_uS for c in range(ensemble.alpha)])
                error = np.abs(diffs - target).sum(axis=1)  # (alpha, cols)
                mask = select_columns(error, ensemble.beta) if encoded.masks is None else encoded.masks[block.index]
                mean = (diffs * mask[:, None, :]).sum(axis=0) / ensemble.beta
                effective += float(np.abs(mean - aim[rows, cols]).sum())
                masks.append(mask)
                errors.append(error)
            node.set_fact(Selection(tuple(masks), tuple(errors), effective))
        return graph
