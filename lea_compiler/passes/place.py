"""place: put every copy of every block on the chip, minimising the total mapping error.

Each block of each crossbar layer has two halves (its G+ and G- devices),
and each half is programmed alpha times; every one of these copies needs a
region (array, row offset, column offset) of its shape, no two overlapping.
The cost of a copy at a region is its mapping error, sum over its devices of
|G_actual - G_target|, where G_actual is the stuck conductance of a stuck
device (healthy devices cost nothing). The problem goes to
`lea_compiler.placement` (OR-Tools: exact min-cost flow when no two copies
can share an array, CP-SAT otherwise; or the paper's greedy / random
baselines); this pass only builds it from the IR and records the answer. The
solver (and with it OR-Tools) is imported when the pass runs, not with this
module: the facts below are read by the later passes and by lowering, which
need no solver.

With `--encoding joint` and beta >= 2 the cost is what the encoding cannot
absorb. Joint encoding lets the other beta - 1 copies of a column move their
own differences, each by up to the level range R = max level - min level, to
make up for a stuck device; so a stuck device's error |g - t| is discounted
by A = (beta - 1) R. The placer sees a view of the chip in which every stuck
conductance is moved towards the level range by A, but stops R / 2 short of
it (g' = max(g - A, max level + R/2) for a stuck-high device,
min(g + A, min level - R/2) for a stuck-low one; one already closer stays): cost |g - t| - A where
that is large, and at least R / 2 per stuck device, so a clean region is
still preferred (absorbing a stuck device spends resolution the copies
would otherwise give the mean). `ABSORB_SHARE` and `ABSORB_MARGIN` record
what was measured. Devices stuck inside the level range keep their cost. The
reported mapping error is then this absorbable-aware cost; `select` and the
Program's errors use the real conductances.

With `objective` "latency" or "balanced" every copy also carries its layer and its read time per application
(`analog_time.half_read_ns`, with the Program's reads per inference) and every layer its applications per
sample, and the placer, after the minimum mapping error, spreads the copies so that a layer's reads overlap
(lea_compiler/placement/latency.py). The objective, the analog time and its bound and gap are then recorded
in a `PlacementLatency` fact; with "error" (the default) nothing changes.

The copies of one block half share one pattern (its target matrix). With
`--ensemble network` the k copies of a block are blocks of k replicated layers
(`Replica` facts, from replicate_network) with the same targets; they too
share one pattern, so the solver sees exactly the problem LEA's alpha = k
gives it (and no k! symmetry between identical patterns).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from lea_compiler.analog_time import OBJECTIVES, applications, half_read_ns
from lea_compiler.chip import Chip
from lea_compiler.chip_limits import time_limit_problem
from lea_compiler.errors import CompileError
from lea_compiler.geometry import POLARITIES, Region
from lea_compiler.ir import Graph, Node
from lea_compiler.passes.ensemble import Ensemble
from lea_compiler.passes.quantize import QuantizedLayer
from lea_compiler.passes.replicate_network import Replica
from lea_compiler.passes.tile import Tiling

if TYPE_CHECKING:  # imported in Place.run: the solver imports OR-Tools
    from lea_compiler.placement import Pattern, Placement


PLACER_NAMES = ("cpsat", "greedy", "random")
"""The placers `Place` can use: the keys of `lea_compiler.placement.PLACERS`, in its order (a test checks
that they agree), named here so that naming one (`leac compile --placer`) does not import the solver."""

ABSORB_MARGIN = 0.5
"""A moved stuck conductance stays this share of the level range outside it, so an absorbable stuck device
still costs something and a clean region stays preferred (absorbing spends the copies' resolution)."""

ABSORB_SHARE = 1.0
"""Share of the level range each other copy is counted on to absorb for a stuck device (joint encoding).

Measured on the float digits MLP, 20% stuck, CP-SAT, 13 chip seeds, mean top-1 with / without the compensate
pass, against the unchanged cost: k = 2: 55.4 / 29.2 (53.7 / 27.5); k = 4: 80.4 / 52.6 (79.1 / 50.6); k = 6:
91.8 / 73.4 (89.7 / 72.5). Without `ABSORB_MARGIN` the placer no longer preferred clean regions: on paper-like
chips the float Yin-Yang MLP at k = 4 lost 2.4 points (68.5 -> 66.1%, 3 seeds)."""


@dataclass(frozen=True)
class PlacedCopy:
    """Where one copy of one block half sits, and its mapping error there."""

    block: int
    polarity: str  # "pos" (G+ devices) or "neg" (G- devices): geometry.POLARITIES
    copy: int
    region: Region
    cost_uS: float


@dataclass(frozen=True)
class Placed:
    """Fact on an MVM: the region of every copy, block-major, then polarity, then copy."""

    copies: tuple[PlacedCopy, ...]

    def get(self, block: int, polarity: str, copy: int) -> PlacedCopy:
        return self._by_key[(block, polarity, copy)]

    def region(self, block: int, polarity: str, copy: int) -> Region:
        return self._by_key[(block, polarity, copy)].region

    @cached_property
    def _by_key(self) -> dict[tuple[int, str, int], PlacedCopy]:
        return {(c.block, c.polarity, c.copy): c for c in self.copies}

    @property
    def cost_uS(self) -> float:
        return float(sum(c.cost_uS for c in self.copies))

    def describe(self) -> str:
        arrays = sorted({c.region.array for c in self.copies})
        return f"{len(self.copies)} copies on arrays {arrays}, mapping error {self.cost_uS:.4g} uS"


@dataclass(frozen=True)
class PlacementSummary:
    """Graph fact: how the placement problem was solved."""

    placer: str
    status: str
    method: str
    objective_uS: float
    bound_uS: float
    gap: float
    seconds: float
    copies: int


@dataclass(frozen=True)
class PlacementWallClock:
    """Graph fact, only when a CP-SAT stage stopped at its wall-clock safety limit (so a reproducible
    placement's IR is as before): the stages (`Placement.wall_clock_limited`)."""

    stages: tuple[str, ...]


@dataclass(frozen=True)
class PlacementLatency:
    """Graph fact, with the objective `latency` or `balanced` only (so a default compile's IR is as before):
    the objective and the placement's analog time per sample, its bound and gap (placement/latency.py)."""

    objective: str
    analog_ns: float
    analog_bound_ns: float
    analog_gap: float


@dataclass(frozen=True)
class Place:
    """The place pass (see the module docstring)."""

    chip: Chip
    placer: str = "cpsat"
    time_limit_s: float = 10.0
    seed: int = 0
    objective: str = "error"
    reads: int = 1
    name: str = "place"

    def __post_init__(self) -> None:
        if self.placer not in PLACER_NAMES:
            raise CompileError(f"unknown placer {self.placer!r}; choose one of {', '.join(PLACER_NAMES)}")
        if self.objective not in OBJECTIVES:
            raise CompileError(f"unknown placement objective {self.objective!r}; choose one of "
                               f"{', '.join(OBJECTIVES)}")
        if (problem := time_limit_problem(self.time_limit_s)) is not None:
            raise CompileError(f"the placer's time limit {problem}")

    def _cost_view(self, graph: Graph, chip: Chip | None = None) -> Chip:
        """`chip` (default: the pass's chip) as the placer should cost it: with joint encoding, stuck
        conductances moved towards the level range by what the other copies of a column can absorb (module
        docstring)."""
        chip = self.chip if chip is None else chip
        facts = [(node.fact(QuantizedLayer), node.fact(Ensemble)) for node in graph.nodes_of("MVM")]
        if not facts or any(q is None or e is None or q.encoding != "joint" for q, e in facts):
            return chip
        beta = min(e.beta for _, e in facts if e is not None)
        levels = chip.device.levels_uS
        low, high = min(levels), max(levels)
        absorb = ABSORB_SHARE * (beta - 1) * (high - low)
        if absorb <= 0:
            return chip
        device = chip.device

        margin = ABSORB_MARGIN * (high - low)

        def moved(g: float) -> float:  # towards the range, never away from it (g may lie within the margin)
            if g > high:
                return min(g, max(g - absorb, high + margin))
            if g < low:
                return max(g, min(g + absorb, low - margin))
            return g

        defects = tuple(d if d.g_uS is None else dataclasses.replace(d, g_uS=moved(d.g_uS)) for d in chip.defects)
        return dataclasses.replace(
            chip, defects=defects,
            device=dataclasses.replace(device, stuck_high_uS=moved(device.stuck_high_uS),
                                       stuck_low_uS=moved(device.stuck_low_uS)))

    def run(self, graph: Graph) -> Graph:
        from lea_compiler.placement import PLACERS, Item, Pattern, PlacementProblem  # imports OR-Tools
        from lea_compiler.placement.view import placement_view

        patterns: list[Pattern] = []
        pattern_of: dict[tuple[str, int, str], int] = {}
        entries: list[tuple[int, str, tuple[Node, int, str, int]]] = []  # (pattern, item name, key)
        timed = self.objective != "error"
        read_ns: dict[tuple[str, int], float] = {}  # (layer, block) -> one copy half's read time
        weights: dict[str, float] = {}
        periphery = self.chip.periphery
        for node in graph.nodes_of("MVM"):
            quantized, tiling, ensemble = node.fact(QuantizedLayer), node.fact(Tiling), node.fact(Ensemble)
            if quantized is None or tiling is None or ensemble is None:
                raise CompileError(f"place needs quantized, tiled layers with an ensemble; run quantize, tile "
                                   f"and ensemble first ({node.describe()})")
            replica = node.fact(Replica)
            origin = node.name if replica is None else replica.origin
            g_pos, g_neg = quantized.target_uS()
            groups = int(node.attr("groups", 1))
            weights[node.name] = float(applications(node) or 1)
            for block in tiling.blocks:
                read_ns[(node.name, block.index)] = half_read_ns(
                    periphery, block.col_start, block.col_stop, quantized.shape[1], groups, self.reads)
                rows = slice(block.row_start, block.row_stop)
                cols = slice(block.col_start, block.col_stop)
                for polarity, target in zip(POLARITIES, (g_pos, g_neg), strict=True):
                    part = target[rows, cols]
                    pattern = pattern_of.get((origin, block.index, polarity))
                    if pattern is None or not np.array_equal(patterns[pattern].target_uS, part):
                        pattern = len(patterns)
                        patterns.append(Pattern(f"{origin}/b{block.index}{polarity}", part.copy()))
                        pattern_of[(origin, block.index, polarity)] = pattern
                    for copy in range(ensemble.alpha):
                        name = f"{node.name}/b{block.index}{polarity}/c{copy}"
                        entries.append((pattern, name, (node, block.index, polarity, copy)))
        entries.sort(key=lambda entry: entry[0])  # stable: a pattern's copies together (a no-op without replicas)
        items = [Item(name, pattern, key[0].name, read_ns[(key[0].name, key[1])]) if timed else Item(name, pattern)
                 for pattern, name, key in entries]
        keys = [key for _, _, key in entries]
        if not items:
            raise CompileError("place found no crossbar layer to place")
        view = placement_view(self.chip, [p.shape for p in patterns], [patterns[it.pattern].shape for it in items])
        problem = PlacementProblem(tuple(patterns), tuple(items), self._cost_view(graph, view.chip),
                                   objective=self.objective, layer_weights=weights if timed else {})
        solution: Placement = PLACERS[self.placer](problem, time_limit_s=self.time_limit_s, seed=self.seed)
        if not view.whole:  # optimal at most on the view: the only bound proven for the whole chip is 0
            solution = dataclasses.replace(
                solution, bound_uS=0.0, gap=1.0 if solution.objective_uS > 0 else 0.0,
                status="FEASIBLE" if solution.status == "OPTIMAL" and solution.objective_uS > 0 else solution.status,
                method=f"{solution.method}, on a {view.description}")
        by_node: dict[str, list[PlacedCopy]] = {}
        for (node, index, polarity, copy), region, cost in zip(keys, solution.regions, solution.costs_uS, strict=True):
            by_node.setdefault(node.name, []).append(PlacedCopy(index, polarity, copy, region, float(cost)))
        for node in graph.nodes_of("MVM"):
            node.set_fact(Placed(tuple(by_node[node.name])))
        graph.set_fact(
            PlacementSummary(
                placer=self.placer,
                status=solution.status,
                method=solution.method,
                objective_uS=float(solution.objective_uS),
                bound_uS=float(solution.bound_uS),
                gap=float(solution.gap),
                seconds=float(solution.seconds),
                copies=len(items),
            )
        )
        if solution.wall_clock_limited:
            graph.set_fact(PlacementWallClock(tuple(solution.wall_clock_limited)))
        if timed:
            graph.set_fact(PlacementLatency(self.objective, float(solution.analog_ns),
                                            float(solution.analog_bound_ns), float(solution.analog_gap)))
        return graph
