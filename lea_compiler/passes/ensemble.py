"""ensemble: alpha = k copies of every block, of which beta are averaged per output.

Layer ensemble averaging (PAPER.md): every block is programmed alpha times on
different regions of the chip; at inference all copies are read and, for each
output column, the beta copies with the least mapping error in that column
are averaged (the other alpha - beta ignored). Averaging happens after every
layer, so errors do not compound. Which beta copies each column uses is fixed
at compile time from the defect map, by the `select` pass after `place` and
`encode`; this pass records alpha and beta on every crossbar layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from lea_compiler.errors import CompileError
from lea_compiler.ir import Graph
from lea_compiler.layer_sizes import CountSpec, ensemble_counts
from lea_compiler.passes.tile import Tiling


@dataclass(frozen=True)
class Ensemble:
    """Fact on an MVM: copies programmed (alpha) and copies averaged per output (beta)."""

    alpha: int
    beta: int

    def describe(self) -> str:
        return f"alpha {self.alpha}, beta {self.beta}"


@dataclass(frozen=True)
class MakeEnsemble:
    """The ensemble pass (see the module docstring). `k` and `beta` are counts for every layer or per-layer specs
    (`lea_compiler.layer_sizes`)."""

    k: CountSpec
    beta: CountSpec | None = None
    name: str = "ensemble"

    def __post_init__(self) -> None:
        if isinstance(self.k, int) and self.k < 1:
            raise CompileError(f"k (copies per block) must be at least 1, got {self.k}")
        if isinstance(self.k, int) and isinstance(self.beta, int) and not 1 <= self.beta <= self.k:
            raise CompileError(f"beta must be between 1 and k = {self.k}, got {self.beta}")

    def run(self, graph: Graph) -> Graph:
        nodes = graph.nodes_of("MVM")
        alpha, beta = ensemble_counts(self.k, self.beta, [node.name for node in nodes])
        for node in nodes:
            if node.fact(Tiling) is None:
                raise CompileError(f"ensemble needs tiled layers; run tile first ({node.describe()})")
            node.set_fact(Ensemble(alpha[node.name], beta[node.name]))
        return graph
