"""Placement: put every copy of every crossbar block on the chip, minimising the mapping error (and then,
with the objective `latency` or `balanced`, the analog time: placement/latency.py).

This is the solver behind the `place` pass. It knows nothing of the IR: a
`PlacementProblem` is a list of *patterns* (the target conductance matrix, in
uS, of one block half, G+ or G-), a list of *items* (copies to place, several
per pattern) and a `Chip`. A *region* is (array, row offset, col offset); an
item of shape r x c at region (a, y, x) covers rows y..y+r-1 and columns
x..x+c-1 of array a. The problem: choose a region for every item such that
no two regions on one array overlap, minimising the sum of the items'
mapping errors (the costs). Let k_p be the number of copies of pattern p.

The package, each module's docstring giving its part of the maths:

    problem    the problem and result types (Pattern, Item, PlacementProblem, Region, Placement)
    costs      cost maps: every pattern's cost at every offset of every array (`cost_maps`, `item_cost`)
    context    what every placer shares for one problem: fit checks, integer costs, exclusivity, results
    greedy     the greedy search (the greedy baseline, the heuristics, the Lagrangian's repair)
    bounds     lower bounds: the combinatorial bound (min-cost flow, k cheapest regions), the Lagrangian
    baselines  `greedy_placement` and `random_placement`
    cpsat      candidate regions, their no-overlap cliques and the CP-SAT model
    latency    the second stage of the `latency` / `balanced` objectives: spread, then CP-SAT on analog time
    solve      `solve_placement`: assignment, heuristics and bounds, then CP-SAT (then `latency`)
    view       the part of a very large chip the placer looks at, so memory follows the model

Imports go one way, problem -> costs -> context -> greedy -> bounds -> cpsat -> latency -> baselines, solve
(view stands alone). Every public name of the former single module is re-exported here. The tuning constants
live in the module that uses them and are read there: patch them there (e.g.
`lea_compiler.placement.cpsat.CANDIDATE_BUDGET`), not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from lea_compiler.placement.baselines import greedy_placement, random_placement
from lea_compiler.placement.bounds import (
    LAGRANGE_MAX_ITER,
    LAGRANGE_MIN_ITER,
    LAGRANGE_MIN_THETA,
    LAGRANGE_PATIENCE,
    LAGRANGE_REPAIR_EVERY,
    LAGRANGE_THETA,
    LAGRANGE_WORK_PER_S,
    MAX_FLOW_ARCS,
    WALL_CLOCK_FACTOR,
)
from lea_compiler.placement.context import SCALE_PER_US
from lea_compiler.placement.costs import MAX_LEVEL_TERMS, ArrayGroup, CostMaps, cost_maps, item_cost
from lea_compiler.placement.cpsat import CANDIDATE_BUDGET, CPSAT_WORKERS, LARGE_MODEL
from lea_compiler.placement.latency import SPREAD_MOVES_PER_ITEM
from lea_compiler.placement.problem import Item, Pattern, Placement, PlacementProblem, Region, Status
from lea_compiler.placement.solve import solve_placement

Placer: TypeAlias = Callable[..., Placement]

PLACERS: dict[str, Placer] = {
    "cpsat": solve_placement,
    "greedy": greedy_placement,
    "random": random_placement,
}
"""The placers by name; each takes (problem, *, time_limit_s, seed) and returns a Placement."""

__all__ = [
    "CANDIDATE_BUDGET",
    "CPSAT_WORKERS",
    "LAGRANGE_MAX_ITER",
    "LAGRANGE_MIN_ITER",
    "LAGRANGE_MIN_THETA",
    "LAGRANGE_PATIENCE",
    "LAGRANGE_REPAIR_EVERY",
    "LAGRANGE_THETA",
    "LAGRANGE_WORK_PER_S",
    "LARGE_MODEL",
    "MAX_FLOW_ARCS",
    "MAX_LEVEL_TERMS",
    "PLACERS",
    "SCALE_PER_US",
    "SPREAD_MOVES_PER_ITEM",
    "WALL_CLOCK_FACTOR",
    "ArrayGroup",
    "CostMaps",
    "Item",
    "Pattern",
    "Placement",
    "PlacementProblem",
    "Placer",
    "Region",
    "Status",
    "cost_maps",
    "greedy_placement",
    "item_cost",
    "random_placement",
    "solve_placement",
]
