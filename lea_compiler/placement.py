"""Placement: put every copy of every crossbar block on the chip, minimising the mapping error.

This is the solver behind the `place` pass. It knows nothing of the IR: a
`PlacementProblem` is a list of *patterns* (the target conductance matrix, in
uS, of one block half, G+ or G-), a list of *items* (copies to place, several
per pattern) and a `Chip`. A *region* is (array, row offset, col offset); an
item of shape r x c at region (a, y, x) covers rows y..y+r-1 and columns
x..x+c-1 of array a.

Cost
----
For an item with target matrix P on array a, whose stuck map is s (1 where a
device is stuck, else 0) with stuck conductances g, the cost (mapping error)
at offset (y, x) is

    cost(y, x) = sum_{u < r, v < c} s[y+u, x+v] * |g[y+u, x+v] - P[u, v]|

(a healthy device is programmed to its target and costs nothing). Targets
take few distinct values (the device levels), so with D the set of distinct
targets,

    |g - t| = sum_{v in D} [t == v] * |g - v|

and each term is a 2-D valid cross-correlation of the array map
A_v = s * |g - v| with the binary mask [P == v]. `cost_maps` evaluates the
correlations as one matrix product per (pattern shape, array shape): the
windows of the array maps (`sliding_window_view`, gathered only at offsets
whose window holds a stuck device; the others cost exactly 0) times the
stacked masks of every pattern of that shape. One exact shortcut: a stuck
device whose conductance lies outside [min D, max D] (the paper's stuck-high
~500 uS and stuck-low ~10 uS devices always do) has |g - t| = sigma * (g - t)
with sigma = sign(g - t) the same for every target, so all its level terms
collapse into one linear term:

    cost = boxsum(s_out * sigma * g) - corr(s_out * sigma, P)
           + sum_{v in D} corr(s_in * |g - v|, [P == v])

where s_out / s_in mark stuck devices outside / inside the target range. The
level terms are then needed only for devices inside the range, and only when
there are any. Copies share a pattern, so maps are computed per pattern.

Problem
-------
Choose a region for every item such that no two regions on one array overlap,
minimising the sum of the costs. Let k_p be the number of copies of pattern
p. Costs go to the OR-Tools solvers as integers floor(cost * scale), with
`scale` units per uS (1000, i.e. 1 nS, unless the totals would pass 2^52;
then it is divided by 10 until they do not). Flooring keeps every integer
bound valid for the true costs; OPTIMAL means optimal to within
n_items / scale uS, and is reported with gap 0. When every cost is a whole
multiple of some unit u (with the default device model, 1 uS), bounds are
rounded up to a multiple of u, since every objective is one.

Two shapes can *share* an array of R x C if they fit side by side in rows
(r1 + r2 <= R) or in columns (c1 + c2 <= C). A pattern is *exclusive* on an
array shape when it cannot share it with any other item that fits there:
an array holding one of its copies holds nothing else, so only its cheapest
offset on that array matters (a lossless reduction).

Lower bounds (every placer reports the best one it has)
-------------------------------------------------------
  * Combinatorial bound. Patterns exclusive on every array they fit: each
    copy needs an array of its own, at the array's cheapest offset; ignoring
    every other item this is a transportation problem (pattern p supplies
    k_p copies, an array takes at most one), solved exactly by min-cost flow
    (OR-Tools `SimpleMinCostFlow`). Every other pattern: the sum of its k_p
    cheapest distinct regions (counting only each array's cheapest offset
    where two of its copies cannot share an array), overlaps ignored. The
    parts concern disjoint items, so the sum is a valid bound, and it is
    never weaker than "each item at its individually cheapest region".
  * Lagrangian bound (`solve_placement` only). Dualise "every device is
    covered at most once" with multipliers lam >= 0:
        L(lam) = flow(c + Lam) + sum_p select_p(c + Lam) - sum(lam)
    where Lam is the window sum of lam over a region (box sums from prefix
    sums), `flow` the transportation problem above and `select_p` the k_p
    cheapest regions. L(lam) is a lower bound for every lam >= 0 and equals
    the combinatorial bound at lam = 0; projected subgradient steps (Polyak
    step sizes against the best known solution) raise it. Relaxed
    selections that happen to overlap nowhere, and the greedy search on the
    prices c + Lam, give upper bounds.

Formulations (`solve_placement`)
--------------------------------
(a) Assignment: when no two items can share any array (every pattern is
    exclusive everywhere), the min-cost flow above is the whole problem and
    its solution is optimal: status OPTIMAL, gap 0, method "assignment".
(b) Otherwise: heuristics first (the greedy baseline, the flow's placement
    of the exclusive patterns completed greedily, greedy by decreasing area,
    and, if all those fail, a cost-blind first-fit packing); then the
    Lagrangian dual. If the best solution meets the best bound it is
    optimal and is returned ("<heuristic>-meets-bound"). Else CP-SAT over
    candidate regions, copies of a pattern aggregated (which removes their
    symmetry entirely):

        x[p, j] in {0, 1}            pattern p takes candidate region j
        sum_j x[p, j] = k_p          every copy placed
        for every device d: AtMostOne({x[p, j] : region j covers d})
        exclusive candidates: AtMostOne per array, and on an array that also
          has other candidates, sum(exclusive) = f with f in every clique there
        minimise sum_{p, j} cost_int[p, j] * x[p, j]

    hinted with the best heuristic solution; the copies of a pattern then take
    its chosen regions in (array, row, col) order. The per-device cliques
    stand in for NoOverlap2D: boxes have the Helly property (pairwise
    overlapping boxes share a device), so they are exactly the maximal
    cliques of the conflict graph, and their LP relaxation is the Lagrangian
    bound above. They are built on the compressed grid of candidate edges
    (where the covering set changes), one per distinct set. Measured on
    tight chips this proves optimality in seconds where NoOverlap2D over
    optional fixed-size intervals (alone or added to the cliques) found
    no proof in 35 s.

    Candidates. The full (lossless) set is every offset of every array,
    except that exclusive patterns keep only each array's cheapest offset.
    Reduced-cost pruning then removes regions that cannot be in any solution
    at least as good as the best heuristic one (cost UB): a solution using
    region j for pattern p costs at least B - kth_p + price_j, where B is a
    bound from `select` (the combinatorial one at lam = 0, or the Lagrangian
    one at its best lam, with prices c + Lam) and kth_p is p's k_p-th
    cheapest price; j goes if that exceeds UB (plus the integer resolution).
    Every optimal solution survives, so this set is still exhaustive and
    CP-SAT's bound holds for the full problem. If more than
    `CANDIDATE_BUDGET` (pattern, region) pairs remain, the set is restricted:
    offsets on a grid of stride s (plus the last offset in each direction),
    each array's cheapest offset, and the heuristics' regions are kept, s
    growing until under budget; if even one offset per array is over budget,
    each pattern keeps the cheapest offset of its m cheapest arrays, m as
    large as the budget allows. A restricted model's optimum need not be the
    true one: the bound reported is then the better of the relaxations above,
    and the status FEASIBLE unless the objective meets it. The budget is
    50,000: on the 2-core machine of the benchmarks CP-SAT did not finish
    presolving 150,000-candidate models in 35 s, and solved 30,000 in 5 s.

CP-SAT runs with a fixed `random_seed`, `CPSAT_WORKERS` workers (1: the
search is then deterministic; more use `interleave_search`, also
deterministic), `max_deterministic_time = time_limit_s` and a wall-clock
safety limit; the same inputs and seed give the same placement unless the
wall-clock limit strikes first (logged as a warning). The Lagrangian's
iteration count depends on the problem size and `time_limit_s`, not on the
clock.

Baselines
---------
`greedy_placement`: the seed paper's search with a fixed number of copies.
`random_placement`: the best of `samples` uniformly random feasible
placements. Both report status HEURISTIC, the combinatorial bound and their
gap.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from ortools.graph.python import min_cost_flow
from ortools.sat.python import cp_model

from lea_compiler.chip import Chip
from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.interruptible import run_interruptibly

logger = logging.getLogger(__name__)

CANDIDATE_BUDGET = 50_000
"""Most (pattern, region) pairs the CP-SAT model may hold before the candidates are restricted."""
SCALE_PER_US = 1000.0
"""Integer cost units per uS given to the solvers (1 nS), unless the totals would overflow."""
CPSAT_WORKERS = 1
"""CP-SAT workers. One worker is deterministic; more use `interleave_search`, which is
deterministic too but was slower on the 2-core machine the benchmarks ran on."""
WALL_CLOCK_FACTOR = 3.0
"""CP-SAT's wall-clock safety limit is this times the time limit, plus 5 s."""
MAX_LEVEL_TERMS = 32
"""Most distinct targets per pattern shape for level masks; beyond, |G - P| windows directly."""
MAX_FLOW_ARCS = 20_000_000
"""Largest min-cost flow built; beyond it those patterns get the k-cheapest bound instead."""
_CHUNK_ELEMENTS = 1 << 22
"""Elements handled at once in `cost_maps` (32 MB of float64)."""
_GATHER_COST = 20
"""Cost-model weight of gathering one window element, in multiply-adds."""
_FLOOR_EPS = 1e-6
"""Added before flooring scaled costs, so float noise on an exact integer does not lose a unit."""
_REJECTION_TRIES = 64
"""Random placer: uniform draws tried before enumerating every free region."""
LARGE_MODEL = 20_000
"""CP-SAT models with more candidates than this are presolved without probing."""
LAGRANGE_WORK_PER_S = 1e8
"""Lagrangian iterations: this many cost-map entries per second of `time_limit_s` in total."""
LAGRANGE_MIN_ITER = 20
LAGRANGE_MAX_ITER = 400
LAGRANGE_THETA = 2.0
"""Initial Polyak step factor, halved after `LAGRANGE_PATIENCE` steps without a better bound."""
LAGRANGE_PATIENCE = 10
LAGRANGE_MIN_THETA = 1e-3
LAGRANGE_REPAIR_EVERY = 10
"""Run the greedy search on Lagrangian prices every this many iterations."""

Status: TypeAlias = str


# --------------------------------------------------------------------------
# Problem and result


@dataclass(frozen=True, eq=False)
class Pattern:
    """The target conductances of one block half (G+ or G-).

    Attributes:
        name: For messages and reports.
        target_uS: Target conductance of every device, uS, shape (rows, cols);
            stored as a read-only float64 copy.
    """

    name: str
    target_uS: np.ndarray

    def __post_init__(self) -> None:
        target = np.array(self.target_uS, dtype=np.float64)
        if target.ndim != 2 or target.size == 0:
            raise UsageError(
                f"pattern {self.name!r}: the target must be a non-empty 2-D matrix, not of shape {target.shape}"
            )
        if not np.isfinite(target).all():
            raise UsageError(f"pattern {self.name!r}: the target holds non-finite values")
        target.setflags(write=False)
        object.__setattr__(self, "target_uS", target)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the pattern."""
        return (int(self.target_uS.shape[0]), int(self.target_uS.shape[1]))


@dataclass(frozen=True)
class Item:
    """One copy to place.

    Attributes:
        name: For messages and reports.
        pattern: Index of its pattern in `PlacementProblem.patterns`.
    """

    name: str
    pattern: int


@dataclass(frozen=True, eq=False)
class PlacementProblem:
    """Patterns, the items (copies) to place, and the chip.

    Attributes:
        patterns: The distinct target matrices.
        items: The copies; several may share a pattern.
        chip: The chip whose arrays receive them.
    """

    patterns: tuple[Pattern, ...]
    items: tuple[Item, ...]
    chip: Chip

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))
        object.__setattr__(self, "items", tuple(self.items))
        bad = [
            f"item {i} ({it.name!r}) refers to pattern {it.pattern!r}"
            for i, it in enumerate(self.items)
            if isinstance(it.pattern, bool)
            or not isinstance(it.pattern, (int, np.integer))
            or not 0 <= it.pattern < len(self.patterns)
        ]
        if bad:
            raise UsageError(f"invalid placement problem ({len(self.patterns)} patterns): " + "; ".join(bad[:5]))


@dataclass(frozen=True)
class Region:
    """Where an item goes: rows [row, row + rows) and cols [col, col + cols) of array `array`."""

    array: int
    row: int
    col: int


@dataclass(frozen=True)
class Placement:
    """A placement of every item, with its quality.

    Attributes:
        regions: One region per item, in item order.
        costs_uS: Mapping error of each item at its region, uS.
        objective_uS: Sum of the costs.
        bound_uS: A proven lower bound on the optimum over all regions.
        gap: (objective - bound) / max(objective, tiny); 0 when proven optimal.
        status: "OPTIMAL", "FEASIBLE", or "HEURISTIC" for the baselines.
        method: The formulation or algorithm that produced it.
        seconds: Wall time of the call, cost maps included.
    """

    regions: tuple[Region, ...]
    costs_uS: tuple[float, ...]
    objective_uS: float
    bound_uS: float
    gap: float
    status: Status
    method: str
    seconds: float


# --------------------------------------------------------------------------
# Cost maps


@dataclass(frozen=True, eq=False)
class ArrayGroup:
    """Arrays of one shape, in ascending id order (the batch unit of `cost_maps`)."""

    rows: int
    cols: int
    array_ids: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class CostMaps:
    """The cost of every pattern at every offset of every array.

    Attributes:
        groups: The chip's arrays grouped by shape.
        maps: `maps[p][g]` is a float64 array of shape
            (len(groups[g].array_ids), rows - r + 1, cols - c + 1): the cost of
            pattern p (r x c) at each offset of each array of group g, uS; None
            where the pattern does not fit that shape.
    """

    groups: tuple[ArrayGroup, ...]
    maps: tuple[tuple[np.ndarray | None, ...], ...]
    _where: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for g, group in enumerate(self.groups):
            for i, array_id in enumerate(group.array_ids):
                self._where[array_id] = (g, i)

    def locate(self, array_id: int) -> tuple[int, int]:
        """(group index, index within the group) of an array."""
        try:
            return self._where[array_id]
        except KeyError:
            raise UsageError(f"the chip has no array {array_id!r}") from None

    def of(self, pattern: int, array_id: int) -> np.ndarray | None:
        """Cost of `pattern` at each offset of one array, or None if it does not fit."""
        g, i = self.locate(array_id)
        block = self.maps[pattern][g]
        return None if block is None else block[i]


def _array_groups(chip: Chip) -> tuple[ArrayGroup, ...]:
    by_shape: dict[tuple[int, int], list[int]] = {}
    for a in chip.arrays:
        by_shape.setdefault((a.rows, a.cols), []).append(a.id)
    return tuple(ArrayGroup(r, c, tuple(sorted(ids))) for (r, c), ids in sorted(by_shape.items()))


def _integral(x: np.ndarray, dtype: type) -> np.ndarray:
    """Zero-padded 2-D prefix sums over the last two axes: (n, R, C) -> (n, R + 1, C + 1)."""
    n, rows, cols = x.shape
    out = np.zeros((n, rows + 1, cols + 1), dtype=dtype)
    np.cumsum(x, axis=1, dtype=dtype, out=out[:, 1:, 1:])
    np.cumsum(out[:, 1:, 1:], axis=2, out=out[:, 1:, 1:])
    return out


def _box(integral: np.ndarray, r: int, c: int) -> np.ndarray:
    """Sum of every r x c window from a prefix-sum array: (n, R + 1, C + 1) -> (n, R-r+1, C-c+1)."""
    return integral[:, r:, c:] - integral[:, :-r, c:] - integral[:, r:, :-c] + integral[:, :-r, :-c]


def _correlate(source: np.ndarray, active: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """out[q, a, y, x] += sum(weights[q] * source[a, y:y+r, x:x+c]) where `active[a, y, x]`.

    `source` is (n, R, C), `weights` (patterns, r, c), `active` a boolean
    (n, R-r+1, C-c+1) and `out` (patterns, n, R-r+1, C-c+1). Two exact
    evaluations, chosen by a cost model of the shapes alone (so the choice,
    and the result, do not depend on the machine):

    * windows: gather each active r x c window (`sliding_window_view`) and
      multiply by the stacked patterns (best when there are few offsets);
    * strips: for each row offset, the r x C strip of every array times each
      pattern's columns (one batched matrix product, no gather), then sums
      along diagonals (best for narrow patterns with many column offsets).
    """
    n, rows, cols = source.shape
    n_pat, r, c = weights.shape
    noy, nox = rows - r + 1, cols - c + 1
    flat_active = np.flatnonzero(active.ravel())
    cost_windows = flat_active.size * r * c * (n_pat + _GATHER_COST)
    cost_strips = n * noy * n_pat * c * r * cols
    if cost_windows <= cost_strips:
        windows = sliding_window_view(source, (r, c), axis=(1, 2))
        flat_w = weights.reshape(n_pat, r * c)
        flat_out = out.reshape(n_pat, -1)
        step = max(1, _CHUNK_ELEMENTS // (r * c))
        for start in range(0, flat_active.size, step):
            chunk = flat_active[start : start + step]
            gathered = windows[np.unravel_index(chunk, (n, noy, nox))].reshape(-1, r * c)
            flat_out[:, chunk] += np.tensordot(flat_w, gathered, axes=([1], [1]))
        return
    by_column = weights.transpose(0, 2, 1).reshape(n_pat * c, r)  # rows (pattern, col j)
    step = max(1, _CHUNK_ELEMENTS // (n_pat * c * cols))
    for oy in range(noy):
        for a0 in range(0, n, step):
            strip = source[a0 : a0 + step, oy : oy + r, :]  # (m, r, C), a view
            prod = np.matmul(by_column, strip).reshape(-1, n_pat, c, cols)
            acc = prod[:, :, 0, 0:nox].copy()
            for j in range(1, c):
                acc += prod[:, :, j, j : j + nox]
            acc *= active[a0 : a0 + step, oy, None, :]
            out[:, a0 : a0 + step, oy, :] += acc.transpose(1, 0, 2)


def cost_maps(problem: PlacementProblem) -> CostMaps:
    """The mapping error of every pattern at every offset of every array (vectorised).

    See the module docstring for the decomposition. Arrays of one shape are
    batched; patterns of one shape share one matrix product; offsets whose
    window holds no stuck device are exactly 0 and are not computed.

    Args:
        problem: The placement problem (only its patterns and chip are used).

    Returns:
        The cost maps, uS.
    """
    chip = problem.chip
    groups = _array_groups(chip)
    patterns = problem.patterns
    maps: list[list[np.ndarray | None]] = [[None] * len(groups) for _ in patterns]
    if not patterns:
        return CostMaps(groups, tuple(tuple(m) for m in maps))
    values = np.unique(np.concatenate([p.target_uS.ravel() for p in patterns]))
    t_lo, t_hi = float(values[0]), float(values[-1])
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(patterns):
        by_shape.setdefault(p.shape, []).append(i)
    for g, group in enumerate(groups):
        n, rows, cols = len(group.array_ids), group.rows, group.cols
        fitting = {s: ps for s, ps in by_shape.items() if s[0] <= rows and s[1] <= cols}
        if not fitting:
            continue
        stuck = np.zeros((n, rows, cols), dtype=bool)
        g_uS = np.zeros((n, rows, cols), dtype=np.float64)
        for i, array_id in enumerate(group.array_ids):
            state, conductance = chip.stuck_map(array_id)
            stuck[i] = state != 0
            g_uS[i] = np.where(stuck[i], conductance, 0.0)
        above = stuck & (g_uS >= t_hi)
        below = stuck & (g_uS <= t_lo) & ~above
        inside = stuck & ~above & ~below
        sigma = above.astype(np.float64) - below.astype(np.float64)  # 0 where healthy or inside
        any_stuck = _integral(stuck, np.int64)
        outside_sum = _integral(sigma * g_uS, np.float64)
        has_inside = bool(inside.any())
        inside_count = _integral(inside, np.int64) if has_inside else None
        for (r, c), members in fitting.items():
            out = np.zeros((len(members), n, rows - r + 1, cols - c + 1), dtype=np.float64)
            stacked = np.stack([patterns[p].target_uS for p in members])  # (m, r, c)
            active = _box(any_stuck, r, c) > 0
            if active.any():
                # Outside-range stuck devices: one linear term for all levels.
                out += np.where(active, _box(outside_sum, r, c), 0.0)[None]
                _correlate(sigma, active, -stacked, out)
            if has_inside and inside_count is not None:
                act_in = _box(inside_count, r, c) > 0
                if act_in.any():
                    _inside_terms(inside, g_uS, stacked, act_in, out)
            for j, member in enumerate(members):
                maps[member][g] = out[j]
        del stuck, g_uS, above, below, inside, sigma, any_stuck, outside_sum, inside_count
    return CostMaps(groups, tuple(tuple(m) for m in maps))


def _inside_terms(
    inside: np.ndarray, g_uS: np.ndarray, stacked: np.ndarray, active: np.ndarray, out: np.ndarray
) -> None:
    """Add the level terms of stuck devices whose conductance lies inside the target range."""
    levels = np.unique(stacked)
    if levels.size <= MAX_LEVEL_TERMS:
        for v in levels.tolist():
            a_v = np.where(inside, np.abs(g_uS - v), 0.0)
            _correlate(a_v, active, (stacked == v).astype(np.float64), out)
        return
    r, c = stacked.shape[1:]
    weights_all = stacked.reshape(stacked.shape[0], -1)
    flat_out = out.reshape(stacked.shape[0], -1)
    flat_offsets = np.flatnonzero(active.ravel())
    # Too many distinct targets for level masks: |g - P| over each window directly.
    n, rows, cols = g_uS.shape
    g_win = sliding_window_view(g_uS, (r, c), axis=(1, 2))
    s_win = sliding_window_view(inside, (r, c), axis=(1, 2))
    step = max(1, _CHUNK_ELEMENTS // (r * c))
    shape = (n, rows - r + 1, cols - c + 1)
    for start in range(0, flat_offsets.size, step):
        chunk = flat_offsets[start : start + step]
        idx = np.unravel_index(chunk, shape)
        gw = g_win[idx].reshape(-1, r * c)
        sw = s_win[idx].reshape(-1, r * c)
        for j in range(weights_all.shape[0]):
            flat_out[j, chunk] += (np.abs(gw - weights_all[j]) * sw).sum(axis=1)


def item_cost(problem: PlacementProblem, item_index: int, region: Region) -> float:
    """The mapping error of one item at one region, computed directly from the stuck map.

    Args:
        problem: The placement problem.
        item_index: Index of the item.
        region: Where it would go.

    Returns:
        Sum over the covered devices of |G_actual - G_target|, uS.

    Raises:
        UsageError: no such item or array, or the item does not fit there.
    """
    if not 0 <= item_index < len(problem.items):
        raise UsageError(f"no item {item_index} (the problem has {len(problem.items)})")
    target = problem.patterns[problem.items[item_index].pattern].target_uS
    r, c = target.shape
    arr = problem.chip.array(region.array)
    if not (0 <= region.row <= arr.rows - r and 0 <= region.col <= arr.cols - c):
        raise UsageError(
            f"item {item_index} ({r} x {c}) does not fit at row {region.row}, col {region.col} "
            f"of array {arr.id} ({arr.rows} x {arr.cols})"
        )
    state, g_uS = problem.chip.stuck_map(region.array)
    window = (slice(region.row, region.row + r), slice(region.col, region.col + c))
    stuck = state[window] != 0
    return float(np.abs(g_uS[window][stuck] - target[stuck]).sum())


# --------------------------------------------------------------------------
# Shared context: checks, maps, integer costs, exclusivity, bounds

Loc: TypeAlias = tuple[int, int, int, int]
"""(group index, index within the group, row, col): a region in `CostMaps` coordinates."""
Boxes: TypeAlias = "dict[tuple[int, tuple[int, int]], np.ndarray]"
"""(group, pattern shape) -> window sums of the Lagrange multipliers at every offset."""


def _can_share(a: tuple[int, int], b: tuple[int, int], rows: int, cols: int) -> bool:
    """Whether shapes a and b fit side by side (in rows or in columns) in a rows x cols array."""
    return a[0] + b[0] <= rows or a[1] + b[1] <= cols


class _Context:
    """What every placer needs for one problem: checks, cost maps, exclusivity, bounds."""

    def __init__(self, problem: PlacementProblem) -> None:
        self.problem = problem
        self.shapes = [p.shape for p in problem.patterns]
        self.n_items = len(problem.items)
        self.items_of: list[list[int]] = [[] for _ in problem.patterns]
        for i, it in enumerate(problem.items):
            self.items_of[int(it.pattern)].append(i)
        self.used = [p for p, its in enumerate(self.items_of) if its]
        self.k = [len(its) for its in self.items_of]
        self.groups = _array_groups(problem.chip)
        _check_fit(self)
        self.maps = cost_maps(problem)
        shape_counts = Counter(self.shapes[it.pattern] for it in problem.items)
        self.fits: list[list[bool]] = []
        self.excl: list[list[bool]] = []
        self.self_excl: list[list[bool]] = []
        for s in self.shapes:
            fits, excl, self_excl = [], [], []
            for grp in self.groups:
                f = s[0] <= grp.rows and s[1] <= grp.cols
                fits.append(f)
                self_excl.append(f and not _can_share(s, s, grp.rows, grp.cols))
                excl.append(
                    f
                    and all(
                        not _can_share(s, o, grp.rows, grp.cols)
                        for o, count in shape_counts.items()
                        if (o != s or count >= 2) and o[0] <= grp.rows and o[1] <= grp.cols
                    )
                )
            self.fits.append(fits)
            self.excl.append(excl)
            self.self_excl.append(self_excl)
        self.global_excl = [
            all(e for e, f in zip(ex, fi, strict=True) if f) for ex, fi in zip(self.excl, self.fits, strict=True)
        ]
        peak = sum(self.k[p] * max(float(m.max()) for m in self.maps.maps[p] if m is not None) for p in self.used)
        self.scale = SCALE_PER_US
        while peak * self.scale > 2.0**52:
            self.scale /= 10.0
        self.resolution = self.n_items / self.scale
        """uS: the integer-scaled optimum is within this of the true optimum."""
        self._amin: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.unit = self._cost_unit()
        """uS: every region cost is a whole multiple of this (0 if not known)."""

    def _cost_unit(self) -> float:
        """The largest u with every cost a multiple of u (found on the integer grid), else 0.

        Any objective is then a multiple of u too, so a lower bound can be rounded
        up to the next multiple: with the default device model every cost is a
        whole number of uS, and a bound of 4448.96 uS proves 4449 uS optimal.
        """
        unit = 0
        for p in self.used:
            for g in range(len(self.groups)):
                if not self.fits[p][g]:
                    continue
                m = self.maps.maps[p][g]
                assert m is not None
                scaled = m.ravel() * self.scale
                rounded = np.rint(scaled)
                if np.abs(scaled - rounded).max(initial=0.0) > _FLOOR_EPS:
                    return 0.0
                unit = int(np.gcd.reduce(rounded.astype(np.int64), initial=unit))
                if unit == 1:
                    return 1.0 / self.scale
        return unit / self.scale

    def round_bound(self, bound_uS: float) -> float:
        """A lower bound rounded up to the cost lattice (see `_cost_unit`)."""
        if self.unit <= 0 or not math.isfinite(bound_uS):
            return bound_uS
        return math.ceil(bound_uS / self.unit - 1e-6) * self.unit

    # costs ------------------------------------------------------------------

    def to_int(self, cost_uS: np.ndarray) -> np.ndarray:
        """Integer costs floor(cost * scale): never above the true cost, so bounds stay valid."""
        return np.floor(np.asarray(cost_uS) * self.scale + _FLOOR_EPS).astype(np.int64)

    def amin(self, p: int, g: int) -> tuple[np.ndarray, np.ndarray]:
        """Per array of group g: p's cheapest cost (uS) and its flat offset (first on ties)."""
        key = (p, g)
        if key not in self._amin:
            m = self.maps.maps[p][g]
            assert m is not None
            flat = m.reshape(m.shape[0], -1)
            arg = np.argmin(flat, axis=1)
            self._amin[key] = (flat[np.arange(flat.shape[0]), arg], arg)
        return self._amin[key]

    def region(self, loc: Loc) -> Region:
        g, i, y, x = loc
        return Region(self.groups[g].array_ids[i], int(y), int(x))

    def cost(self, p: int, loc: Loc) -> float:
        m = self.maps.maps[p][loc[0]]
        assert m is not None
        return float(m[loc[1], loc[2], loc[3]])

    def objective(self, locs: Sequence[Loc]) -> float:
        return math.fsum(self.cost(self.problem.items[i].pattern, loc) for i, loc in enumerate(locs))

    def offsets(self, p: int, g: int) -> tuple[int, int]:
        """Number of row and column offsets of pattern p on arrays of group g."""
        grp = self.groups[g]
        return grp.rows - self.shapes[p][0] + 1, grp.cols - self.shapes[p][1] + 1

    def priced(self, p: int, g: int, boxes: Boxes | None) -> np.ndarray:
        """p's cost map on group g, plus the multipliers' window sums when `boxes` is given."""
        m = self.maps.maps[p][g]
        assert m is not None
        return m if boxes is None else m + boxes[(g, self.shapes[p])]

    # bounds -----------------------------------------------------------------

    def select(self, p: int, boxes: Boxes | None = None, want_locs: bool = False) -> tuple[float, float, list[Loc]]:
        """The k_p cheapest distinct regions of p, overlaps ignored (the bound's subproblem).

        Where two copies of p cannot share an array, only each array's cheapest
        offset is eligible (so the copies land on distinct arrays).

        Returns:
            (sum of their costs, the largest of them, their locations if `want_locs`).

        Raises:
            DoesNotFitError: fewer places than copies (a proof).
        """
        k = self.k[p]
        parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = []
        places = 0
        for g in range(len(self.groups)):
            if not self.fits[p][g]:
                continue
            flat = self.priced(p, g, boxes).reshape(len(self.groups[g].array_ids), -1)
            if self.self_excl[p][g] and k >= 2:
                arg = np.argmin(flat, axis=1)
                parts.append((g, flat, flat[np.arange(arg.size), arg], arg))
                places += arg.size
            else:
                parts.append((g, flat, flat.min(axis=1), None))
                places += flat.size
        if places < k:
            r, c = self.shapes[p]
            raise DoesNotFitError(
                f"pattern {self.problem.patterns[p].name!r} ({r} x {c}) has {k} copies but "
                f"only {places} places on the chip can take one; {_capacity(self)}"
            )
        # The k cheapest regions all lie in arrays whose cheapest region is at most the
        # k-th smallest of the per-array minima: look only there.
        mins = np.concatenate([part[2] for part in parts])
        limit = float(np.partition(mins, k - 1)[k - 1]) if mins.size >= k else math.inf
        values: list[np.ndarray] = []
        where: list[tuple[int, np.ndarray, np.ndarray]] = []  # (group, array index, flat offset)
        for g, flat, part_mins, arg in parts:
            rows = np.flatnonzero(part_mins <= limit)
            if arg is not None:
                values.append(part_mins[rows])
                where.append((g, rows, arg[rows]))
            else:
                sub = flat[rows]
                ri, fi = np.nonzero(sub <= limit)
                values.append(sub[ri, fi])
                where.append((g, rows[ri], fi))
        vals = np.concatenate(values)
        if k < vals.size:
            # the k smallest, ties broken by position: argpartition's choice among equal values depends on
            # numpy's SIMD level, and so would the placement on another CPU
            kth = np.partition(vals, k - 1)[k - 1]
            below = np.flatnonzero(vals < kth)
            idx = np.concatenate([below, np.flatnonzero(vals == kth)[: k - below.size]])
        else:
            idx = np.arange(vals.size)
        chosen = vals[idx]
        locs: list[Loc] = []
        if want_locs:
            starts = np.cumsum([0] + [v.size for v in values])
            for j in np.sort(idx).tolist():
                part = int(np.searchsorted(starts, j, side="right")) - 1
                g, arrays, offsets = where[part]
                local = j - int(starts[part])
                y, x = np.unravel_index(int(offsets[local]), self.offsets(p, g))
                locs.append((g, int(arrays[local]), int(y), int(x)))
        return math.fsum(chosen.tolist()), float(chosen.max()), locs

    def bound(self) -> tuple[float, dict[int, Loc] | None]:
        """The combinatorial lower bound (uS) and the flow's placement of the exclusive items.

        Raises:
            DoesNotFitError: the exclusive items cannot get an array each, or a
                pattern has fewer places than copies (both proofs).
        """
        excl, rest = self.split()
        placed: dict[int, Loc] | None = None
        total = 0.0
        if excl:
            flow_int, placed = self._flow(excl)
            total = flow_int / self.scale
        return total + math.fsum(self.select(p)[0] for p in rest), placed

    def split(self) -> tuple[list[int], list[int]]:
        """(patterns handled by the min-cost flow, the others): the flow takes the patterns
        exclusive on every array they fit, unless it would be too big."""
        excl = [p for p in self.used if self.global_excl[p]]
        arcs = sum(len(self.groups[g].array_ids) for p in excl for g in range(len(self.groups)) if self.fits[p][g])
        if arcs > MAX_FLOW_ARCS:
            logger.info("placement bound: %d flow arcs is too many; k-cheapest bound instead", arcs)
            return [], list(self.used)
        return excl, [p for p in self.used if p not in set(excl)]

    def _flow(self, excl: list[int], boxes: Boxes | None = None) -> tuple[int, dict[int, Loc]]:
        """Min-cost flow: exclusive patterns -> arrays (capacity 1), cost = cheapest offset.

        With `boxes`, costs are Lagrangian prices (cost plus covered multipliers).
        Returns the optimal integer cost and each exclusive item's location.
        """
        n_p = len(excl)
        firsts = np.cumsum([0] + [len(g.array_ids) for g in self.groups])
        n_a = int(firsts[-1])
        source, sink = 0, 1 + n_p + n_a
        tails = [np.full(n_p, source)]  # source -> pattern, capacity k_p
        heads = [np.arange(1, 1 + n_p)]
        caps = [np.array([self.k[p] for p in excl], dtype=np.int64)]
        costs = [np.zeros(n_p, dtype=np.int64)]
        blocks: list[tuple[int, int, np.ndarray]] = []  # (pattern position, group, argmins)
        for j, p in enumerate(excl):
            for g in range(len(self.groups)):
                if not self.fits[p][g]:
                    continue
                if boxes is None:
                    mins, arg = self.amin(p, g)
                else:
                    flat = self.priced(p, g, boxes).reshape(len(self.groups[g].array_ids), -1)
                    arg = np.argmin(flat, axis=1)
                    mins = flat[np.arange(arg.size), arg]
                n = arg.size
                tails.append(np.full(n, 1 + j))
                heads.append(1 + n_p + firsts[g] + np.arange(n))
                caps.append(np.ones(n, dtype=np.int64))
                costs.append(self.to_int(mins))
                blocks.append((j, g, arg))
        tails.append(1 + n_p + np.arange(n_a))
        heads.append(np.full(n_a, sink))
        caps.append(np.ones(n_a, dtype=np.int64))
        costs.append(np.zeros(n_a, dtype=np.int64))
        flow = min_cost_flow.SimpleMinCostFlow()
        arc_ids = flow.add_arcs_with_capacity_and_unit_cost(
            np.concatenate(tails).astype(np.int32),
            np.concatenate(heads).astype(np.int32),
            np.concatenate(caps).astype(np.int64),
            np.concatenate(costs).astype(np.int64),
        )
        need = sum(self.k[p] for p in excl)
        flow.set_node_supply(source, need)
        flow.set_node_supply(sink, -need)
        status = flow.solve()
        if status != min_cost_flow.SimpleMinCostFlow.OPTIMAL:
            if status == min_cost_flow.SimpleMinCostFlow.INFEASIBLE:
                raise DoesNotFitError(
                    f"cannot place: {need} copies cannot share an array with any other copy, and "
                    f"they cannot each get an array of their own where they fit (proven by "
                    f"min-cost flow); {_capacity(self)}"
                )
            raise RuntimeError(f"min-cost flow failed: {status}")  # pragma: no cover
        flows = np.asarray(flow.flows(np.asarray(arc_ids, dtype=np.int32)))
        chosen: dict[int, list[tuple[int, int, int]]] = {j: [] for j in range(n_p)}
        pos = n_p  # the source -> pattern arcs come first
        args: dict[tuple[int, int], np.ndarray] = {}
        for j, g, arg in blocks:
            n = arg.size
            args[(j, g)] = arg
            for i in np.flatnonzero(flows[pos : pos + n] > 0).tolist():
                chosen[j].append((self.groups[g].array_ids[i], g, i))
            pos += n
        placed: dict[int, Loc] = {}
        for j, p in enumerate(excl):
            for item, (_, g, i) in zip(self.items_of[p], sorted(chosen[j]), strict=True):
                y, x = np.unravel_index(int(args[(j, g)][i]), self.offsets(p, g))
                placed[item] = (g, i, int(y), int(x))
        return int(flow.optimal_cost()), placed

    # results ----------------------------------------------------------------

    def placement(self, locs: Sequence[Loc], bound_uS: float, status: Status, method: str, t0: float) -> Placement:
        """The Placement of `locs`; status OPTIMAL reports gap 0 (proven to the resolution)."""
        _verify(self, locs)
        regions = tuple(self.region(loc) for loc in locs)
        costs = tuple(self.cost(self.problem.items[i].pattern, loc) for i, loc in enumerate(locs))
        objective = math.fsum(costs)
        bound = min(bound_uS, objective)
        gap = 0.0 if status == "OPTIMAL" else (objective - bound) / max(objective, 1e-12)
        result = Placement(
            regions=regions,
            costs_uS=costs,
            objective_uS=objective,
            bound_uS=bound,
            gap=gap,
            status=status,
            method=method,
            seconds=time.perf_counter() - t0,
        )
        logger.info(
            "placement %s: %d copies, status %s, objective %.6g uS, bound %.6g uS, gap %.3g, %.3f s",
            method,
            self.n_items,
            status,
            objective,
            bound,
            gap,
            result.seconds,
        )
        return result

    def meets(self, objective: float, bound_uS: float) -> bool:
        """Whether an objective is proven optimal by a bound (to the integer resolution)."""
        return objective - bound_uS <= self.resolution + 1e-9 * max(1.0, abs(objective))


def _verify(ctx: _Context, locs: Sequence[Loc]) -> None:
    """Check that `locs` places every item inside its array, with no two overlapping."""
    if len(locs) != ctx.n_items:
        raise AssertionError(f"placement has {len(locs)} regions for {ctx.n_items} items")
    occ = _Occupancy(ctx)
    for i, loc in enumerate(locs):
        p = ctx.problem.items[i].pattern
        noy, nox = ctx.offsets(p, loc[0])
        if not (ctx.fits[p][loc[0]] and 0 <= loc[2] < noy and 0 <= loc[3] < nox):
            raise AssertionError(f"item {i} is placed outside its array: {ctx.region(loc)}")
        if not occ.is_free(p, loc):
            raise AssertionError(f"item {i} overlaps another item at {ctx.region(loc)}")
        occ.take(p, loc)


def _capacity(ctx: _Context) -> str:
    """What the copies need and what the chip has, for DoesNotFitError messages."""
    chip = ctx.problem.chip
    need = sum(ctx.shapes[it.pattern][0] * ctx.shapes[it.pattern][1] for it in ctx.problem.items)
    big = max(ctx.problem.items, key=lambda it: ctx.shapes[it.pattern][0] * ctx.shapes[it.pattern][1])
    r, c = ctx.shapes[big.pattern]
    arr = max(chip.arrays, key=lambda a: (a.devices, -a.id))
    return (
        f"the {ctx.n_items} copies need {need} devices and the chip has {chip.device_count} "
        f"devices in {len(chip.arrays)} arrays; the largest copy is {r} x {c} ({big.name!r}), "
        f"the largest array {arr.rows} x {arr.cols} (array {arr.id})"
    )


def _check_fit(ctx: _Context) -> None:
    """Raise DoesNotFitError for plain impossibilities: too big, too few devices or arrays."""
    if not ctx.problem.items:
        return
    chip = ctx.problem.chip
    for p in ctx.used:
        r, c = ctx.shapes[p]
        if not any(r <= g.rows and c <= g.cols for g in ctx.groups):
            raise DoesNotFitError(
                f"pattern {ctx.problem.patterns[p].name!r} ({r} x {c}) fits in no array; {_capacity(ctx)}"
            )
    need = sum(ctx.shapes[it.pattern][0] * ctx.shapes[it.pattern][1] for it in ctx.problem.items)
    if need > chip.device_count:
        raise DoesNotFitError(f"not enough devices: {_capacity(ctx)}")
    alone = sum(
        ctx.k[p]
        for p in ctx.used
        if all(
            not _can_share(ctx.shapes[p], ctx.shapes[q], g.rows, g.cols)
            for g in ctx.groups
            for q in ctx.used
            if ctx.shapes[q][0] <= g.rows and ctx.shapes[q][1] <= g.cols
        )
    )
    if alone > len(chip.arrays):
        raise DoesNotFitError(
            f"not enough arrays: {alone} copies cannot share an array with any copy, so they need "
            f"{alone} arrays and the chip has {len(chip.arrays)}; {_capacity(ctx)}"
        )


# --------------------------------------------------------------------------
# Greedy


class _Occupancy:
    """Which devices are taken, per array group, with prefix sums for O(1) window tests."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.occ = [np.zeros((len(g.array_ids), g.rows, g.cols), dtype=bool) for g in ctx.groups]
        self.integral = [np.zeros((len(g.array_ids), g.rows + 1, g.cols + 1), dtype=np.int32) for g in ctx.groups]

    def free(self, p: int, g: int) -> np.ndarray:
        """(arrays, row offsets, col offsets): whether p's window there is unoccupied."""
        r, c = self.ctx.shapes[p]
        return _box(self.integral[g], r, c) == 0

    def is_free(self, p: int, loc: Loc) -> bool:
        g, i, y, x = loc
        r, c = self.ctx.shapes[p]
        return not self.occ[g][i, y : y + r, x : x + c].any()

    def take(self, p: int, loc: Loc) -> None:
        g, i, y, x = loc
        r, c = self.ctx.shapes[p]
        self.occ[g][i, y : y + r, x : x + c] = True
        np.cumsum(self.occ[g][i], axis=0, dtype=np.int32, out=self.integral[g][i, 1:, 1:])
        np.cumsum(self.integral[g][i, 1:, 1:], axis=1, out=self.integral[g][i, 1:, 1:])


def _greedy(
    ctx: _Context,
    preplaced: dict[int, Loc] | None = None,
    boxes: Boxes | None = None,
    largest_first: bool = False,
    first_fit: bool = False,
) -> list[Loc] | int:
    """Items pattern by pattern, copy by copy, each at its cheapest free region.

    Ties go to the lowest array id, then row, then column. With `boxes`, regions
    are ranked by their Lagrangian price (cost plus the multipliers they cover).
    With `largest_first`, items go in decreasing area (then pattern) order,
    which packs tight chips better; with `first_fit` costs are ignored and each
    item takes the first free region (a packing heuristic for nearly full chips).

    Returns:
        One location per item, or the index of the first item that found no free region.
    """
    occ = _Occupancy(ctx)
    locs: list[Loc | None] = [None] * ctx.n_items
    for i, loc in (preplaced or {}).items():
        occ.take(ctx.problem.items[i].pattern, loc)
        locs[i] = loc

    def area(i: int) -> int:
        r, c = ctx.shapes[ctx.problem.items[i].pattern]
        return -r * c if largest_first else 0

    order = sorted(range(ctx.n_items), key=lambda i: (area(i), ctx.problem.items[i].pattern, i))
    for i in order:
        if locs[i] is not None:
            continue
        p = ctx.problem.items[i].pattern
        best: tuple[float, int, int, int] | None = None
        best_loc: Loc | None = None
        for g, grp in enumerate(ctx.groups):
            if not ctx.fits[p][g]:
                continue
            free = occ.free(p, g)
            if first_fit:
                if not free.any():
                    continue
                masked = np.where(free, 0.0, np.inf)
            else:
                masked = np.where(free, ctx.priced(p, g, boxes), np.inf)
            flat = int(np.argmin(masked))
            value = float(masked.flat[flat])
            if not math.isfinite(value):
                continue
            a, y, x = (int(v) for v in np.unravel_index(flat, masked.shape))
            key = (value, grp.array_ids[a], y, x)
            if best is None or key < best:
                best, best_loc = key, (g, a, y, x)
        if best_loc is None:
            return i
        occ.take(p, best_loc)
        locs[i] = best_loc
    return [loc for loc in locs if loc is not None]


def _no_packing(ctx: _Context, who: str, item: int) -> DoesNotFitError:
    it = ctx.problem.items[item]
    r, c = ctx.shapes[it.pattern]
    return DoesNotFitError(
        f"{who} found no free region for copy {it.name!r} ({r} x {c}) after placing others "
        f"(no packing found; not proven impossible); {_capacity(ctx)}"
    )


def greedy_placement(problem: PlacementProblem, *, time_limit_s: float = 10.0, seed: int = 0) -> Placement:
    """The seed paper's greedy search, adapted to a fixed number of copies.

    Items go in order, pattern by pattern and copy by copy; each takes the
    cheapest region that does not overlap the regions already taken (ties: the
    lowest array id, then row, then column). One deterministic pass.

    Args:
        problem: The placement problem.
        time_limit_s: Accepted for the signature shared by all placers; unused.
        seed: Accepted for the signature shared by all placers; unused.

    Returns:
        The placement: status "HEURISTIC", with the lower bound and its gap.

    Raises:
        DoesNotFitError: the copies cannot all be placed, or greedy found no packing.
    """
    del time_limit_s, seed
    t0 = time.perf_counter()
    ctx = _Context(problem)
    if not problem.items:
        return ctx.placement([], 0.0, "HEURISTIC", "greedy", t0)
    bound = ctx.round_bound(ctx.bound()[0])
    result = _greedy(ctx)
    if isinstance(result, int):
        raise _no_packing(ctx, "greedy placement", result)
    return ctx.placement(result, bound, "HEURISTIC", "greedy", t0)


# --------------------------------------------------------------------------
# Random


def random_placement(
    problem: PlacementProblem,
    *,
    time_limit_s: float = 10.0,
    seed: int = 0,
    samples: int = 200,
) -> Placement:
    """The cheapest of `samples` random feasible placements (the paper's random baseline).

    Each sample takes the items in a uniformly random order and gives each a
    region drawn uniformly from those that fit and do not overlap the regions
    already taken (rejection sampling, falling back to enumerating the free
    regions). A sample in which some item finds no free region is discarded.
    Seeded by `seed`. Sampling stops early, after at least one sample, once it
    has taken `time_limit_s` (cost maps not counted); only then does the
    result depend on the machine.

    Args:
        problem: The placement problem.
        time_limit_s: Wall-clock budget for the sampling (after the cost maps).
        seed: Seed for `numpy.random.default_rng`.
        samples: Number of samples to draw.

    Returns:
        The cheapest sample: status "HEURISTIC", method "random(<samples drawn>)".

    Raises:
        UsageError: `samples` is not a positive integer.
        DoesNotFitError: the copies cannot all be placed, or no sample found a packing.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UsageError(f"samples must be a positive integer, not {samples!r}")
    t0 = time.perf_counter()
    ctx = _Context(problem)
    if not problem.items:
        return ctx.placement([], 0.0, "HEURISTIC", "random(0)", t0)
    bound = ctx.round_bound(ctx.bound()[0])
    rng = np.random.default_rng(seed)
    starts: dict[int, np.ndarray] = {}  # every region of a pattern, numbered group by group
    for p in ctx.used:
        sizes = [
            len(grp.array_ids) * math.prod(ctx.offsets(p, g)) if ctx.fits[p][g] else 0
            for g, grp in enumerate(ctx.groups)
        ]
        starts[p] = np.cumsum([0, *sizes])
    best: list[Loc] | None = None
    best_cost = math.inf
    drawn = failed = last_fail = 0
    sampling = time.perf_counter()
    while drawn < samples:
        if drawn > 0 and time.perf_counter() - sampling > time_limit_s:
            logger.info("random placement: time limit reached after %d samples", drawn)
            break
        drawn += 1
        occ = _Occupancy(ctx)
        locs: list[Loc | None] = [None] * ctx.n_items
        total = 0.0
        for i in rng.permutation(ctx.n_items).tolist():
            p = ctx.problem.items[i].pattern
            loc = _random_region(ctx, occ, p, starts[p], rng)
            if loc is None:
                failed, last_fail = failed + 1, i
                break
            occ.take(p, loc)
            locs[i] = loc
            total += ctx.cost(p, loc)
        else:
            if total < best_cost:
                best_cost, best = total, [loc for loc in locs if loc is not None]
    if best is None:
        raise _no_packing(ctx, f"random placement ({drawn} samples)", last_fail)
    if failed:
        logger.info("random placement: %d of %d samples found no packing", failed, drawn)
    return ctx.placement(best, bound, "HEURISTIC", f"random({drawn})", t0)


def _random_region(ctx: _Context, occ: _Occupancy, p: int, starts: np.ndarray, rng: np.random.Generator) -> Loc | None:
    """A region of pattern p drawn uniformly from the free ones, or None if none is free."""

    def decode(index: int) -> Loc:
        g = int(np.searchsorted(starts, index, side="right")) - 1
        shape = (len(ctx.groups[g].array_ids), *ctx.offsets(p, g))
        a, y, x = np.unravel_index(index - int(starts[g]), shape)
        return (g, int(a), int(y), int(x))

    total = int(starts[-1])
    for _ in range(_REJECTION_TRIES):
        loc = decode(int(rng.integers(total)))
        if occ.is_free(p, loc):
            return loc
    free = [occ.free(p, g).ravel() if ctx.fits[p][g] else None for g in range(len(ctx.groups))]
    counts = [0 if f is None else int(np.count_nonzero(f)) for f in free]
    if sum(counts) == 0:
        return None
    pick = int(rng.integers(sum(counts)))
    for g, f in enumerate(free):
        if f is not None and pick < counts[g]:
            return decode(int(starts[g]) + int(np.flatnonzero(f)[pick]))
        pick -= counts[g]
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------
# Lagrangian relaxation of the no-overlap constraints


@dataclass
class _Dual:
    """The best Lagrangian bound found, with what pruning needs, and the best solution seen."""

    bound_uS: float
    boxes: Boxes | None
    kth: dict[int, float]
    iterations: int
    ub_uS: float
    ub_locs: list[Loc]
    ub_name: str


def _lagrangian(ctx: _Context, ub_uS: float, ub_locs: list[Loc], ub_name: str, time_limit_s: float) -> _Dual:
    """Projected subgradient on the multipliers of the per-device 'covered at most once' rows.

    L(lam) = flow(prices) + sum_p select_p(prices) - sum(lam), with prices =
    cost + window sums of lam, the flow over the patterns exclusive everywhere
    and `select` (k cheapest regions) for the others, is a lower bound for
    every lam >= 0; at lam = 0 it is the combinatorial bound. The iteration
    count is fixed by the problem size and the time limit (not the clock), so
    the result is deterministic. A
    relaxed selection that covers no device twice is a placement and may
    improve the upper bound; so may the greedy search on Lagrangian prices.
    """
    groups = ctx.groups
    flow_patterns, others = ctx.split()
    lam = [np.zeros((len(g.array_ids), g.rows, g.cols)) for g in groups]
    shapes = [sorted({ctx.shapes[p] for p in ctx.used if ctx.fits[p][g]}) for g in range(len(groups))]
    work = sum(m.size for p in ctx.used for m in ctx.maps.maps[p] if m is not None)
    work += sum(x.size for x in lam)
    budget = LAGRANGE_WORK_PER_S * time_limit_s
    iterations = int(min(LAGRANGE_MAX_ITER, max(LAGRANGE_MIN_ITER, budget // max(1, work))))
    best = -math.inf
    best_boxes: Boxes | None = None
    best_kth: dict[int, float] = {}
    theta, stall, done = LAGRANGE_THETA, 0, 0
    live: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in groups]  # arrays with lam > 0
    for it in range(iterations):
        done = it + 1
        boxes: Boxes = {}
        for g, grp in enumerate(groups):
            integral = _integral(lam[g][live[g]], np.float64) if live[g].size else None
            for s in shapes[g]:
                box = np.zeros((len(grp.array_ids), grp.rows - s[0] + 1, grp.cols - s[1] + 1))
                if integral is not None:
                    box[live[g]] = _box(integral, *s)
                boxes[(g, s)] = box
        value = -math.fsum(float(lam[g][live[g]].sum()) for g in range(len(groups)))
        kth: dict[int, float] = {}
        picked: list[tuple[int, Loc]] = []
        if flow_patterns:
            flow_int, flow_locs = ctx._flow(flow_patterns, boxes)
            value += flow_int / ctx.scale
            picked += [(ctx.problem.items[i].pattern, loc) for i, loc in flow_locs.items()]
        for p in others:
            total, kth[p], locs = ctx.select(p, boxes, want_locs=True)
            value += total
            picked += [(p, loc) for loc in locs]
        if value > best + 1e-9 * max(1.0, abs(value)):
            best, best_boxes, best_kth, stall = value, boxes, kth, 0
        else:
            stall += 1
            if stall >= LAGRANGE_PATIENCE:
                theta, stall = theta / 2.0, 0
        # Only arrays holding two picked regions or live multipliers have a nonzero
        # subgradient (coverage - 1, projected: 0 where lam = 0 and it is negative).
        relevant, cover = _coverage(ctx, picked, live)
        if all(int(c.max(initial=0)) <= 1 for c in cover):
            # The relaxed selection overlaps nowhere: it is a placement.
            locs = _assign_locs(ctx, picked)
            cost = ctx.objective(locs)
            if cost < ub_uS:
                ub_uS, ub_locs, ub_name = cost, locs, "lagrangian"
        if it % LAGRANGE_REPAIR_EVERY == LAGRANGE_REPAIR_EVERY - 1:
            repaired = _greedy(ctx, boxes=boxes)
            if not isinstance(repaired, int):
                cost = ctx.objective(repaired)
                if cost < ub_uS:
                    ub_uS, ub_locs, ub_name = cost, repaired, "lagrangian-greedy"
        if ctx.meets(ub_uS, ctx.round_bound(best)) or theta < LAGRANGE_MIN_THETA:
            break
        subs = []
        norm2 = 0.0
        for g, cov in enumerate(cover):
            sub = cov.astype(np.float64) - 1.0
            sub[(lam[g][relevant[g]] <= 0.0) & (sub < 0.0)] = 0.0
            norm2 += float(np.square(sub).sum())
            subs.append(sub)
        if norm2 == 0.0:
            break  # the multipliers are optimal for the dual
        step = theta * (ub_uS - value) / norm2
        for g, sub in enumerate(subs):
            idx = relevant[g]
            if idx.size:
                lam[g][idx] = np.maximum(lam[g][idx] + step * sub, 0.0)
                live[g] = idx[lam[g][idx].max(axis=(1, 2)) > 0.0]
    logger.info(
        "placement Lagrangian: %d iterations, bound %.6g uS, best solution %.6g uS (%s)",
        done,
        best,
        ub_uS,
        ub_name,
    )
    return _Dual(best, best_boxes, best_kth, done, ub_uS, ub_locs, ub_name)


def _coverage(
    ctx: _Context, picked: Sequence[tuple[int, Loc]], live: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Device coverage by the picked regions, on the arrays where the subgradient can be nonzero.

    Returns:
        Per array group: the relevant arrays (those with live multipliers or
        two or more picked regions), and how often each of their devices is
        covered (arrays, rows, cols).
    """
    relevant, cover = [], []
    for g, grp in enumerate(ctx.groups):
        mine = [(p, loc) for p, loc in picked if loc[0] == g]
        counts = Counter(loc[1] for _, loc in mine)
        multi = np.array([i for i, n in counts.items() if n >= 2], dtype=np.int64)
        idx = np.union1d(live[g], multi).astype(np.int64)
        diff = np.zeros((idx.size, grp.rows + 1, grp.cols + 1), dtype=np.int32)
        for p, (_, i, y, x) in mine:
            k = int(np.searchsorted(idx, i))
            if k == idx.size or idx[k] != i:
                continue
            r, c = ctx.shapes[p]
            diff[k, y, x] += 1
            diff[k, y + r, x] -= 1
            diff[k, y, x + c] -= 1
            diff[k, y + r, x + c] += 1
        relevant.append(idx)
        cover.append(np.cumsum(np.cumsum(diff, axis=1), axis=2)[:, :-1, :-1])
    return relevant, cover


def _assign_locs(ctx: _Context, picked: Sequence[tuple[int, Loc]]) -> list[Loc]:
    """Give each pattern's picked regions to its items, in (array id, row, col) order."""
    per: dict[int, list[tuple[int, int, int, Loc]]] = {}
    for p, loc in picked:
        per.setdefault(p, []).append((ctx.groups[loc[0]].array_ids[loc[1]], loc[2], loc[3], loc))
    locs: list[Loc | None] = [None] * ctx.n_items
    for p, regions in per.items():
        for item, pick in zip(ctx.items_of[p], sorted(regions), strict=True):
            locs[item] = pick[3]
    return [loc for loc in locs if loc is not None]


# --------------------------------------------------------------------------
# Exact solver: candidates and CP-SAT


@dataclass
class _Candidates:
    """Candidate (pattern, region) pairs as parallel arrays."""

    pattern: np.ndarray
    group: np.ndarray
    index: np.ndarray
    row: np.ndarray
    col: np.ndarray
    cost: np.ndarray  # integer costs
    exclusive: np.ndarray  # the pattern is exclusive on this array's shape

    @property
    def size(self) -> int:
        return int(self.pattern.size)


def _grid(n_off: int, stride: int) -> np.ndarray:
    mask = np.zeros(n_off, dtype=bool)
    mask[::stride] = True
    mask[-1] = True
    return mask


def _candidates(
    ctx: _Context, ub_uS: float, dual: _Dual | None, must: Sequence[Sequence[Loc]]
) -> tuple[_Candidates, bool, str]:
    """The candidate regions: (candidates, exhaustive, description); see the module docstring."""
    slack = ctx.resolution + 1e-9 * max(1.0, abs(ub_uS))
    plain = {p: ctx.select(p) for p in ctx.used}
    lb0 = math.fsum(v[0] for v in plain.values())
    thr0 = {p: ub_uS - lb0 + plain[p][1] + slack for p in ctx.used}
    thr1: dict[int, float] = {}
    if dual is not None and dual.boxes is not None:
        thr1 = {p: ub_uS - dual.bound_uS + kth + slack for p, kth in dual.kth.items()}
    blocks = [(p, g) for p in ctx.used for g in range(len(ctx.groups)) if ctx.fits[p][g]]

    def survivors(p: int, g: int) -> np.ndarray:
        """Boolean (arrays, row offsets, col offsets): not pruned by reduced cost."""
        m = ctx.maps.maps[p][g]
        assert m is not None
        keep = m <= thr0[p]
        if p in thr1 and dual is not None:
            keep &= ctx.priced(p, g, dual.boxes) <= thr1[p]
        return keep

    def block(p: int, g: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(array index, row, col) of the kept candidates of one block at a stride."""
        keep = survivors(p, g)
        n, noy, nox = keep.shape
        _, arg = ctx.amin(p, g)
        cheapest = np.zeros_like(keep)
        cheapest.reshape(n, -1)[np.arange(n), arg] = True
        if ctx.excl[p][g]:
            keep &= cheapest
        elif stride > 1:
            grid = _grid(noy, stride)[:, None] & _grid(nox, stride)[None, :]
            keep &= grid[None, :, :] | cheapest
        a, y, x = np.nonzero(keep)
        return a, y, x

    def count(stride: int) -> int:
        return sum(int(block(p, g, stride)[0].size) for p, g in blocks)

    stride, total = 1, count(1)
    exhaustive, description = True, "exhaustive"
    max_off = max(max(ctx.offsets(p, g)) for p, g in blocks)
    if total > CANDIDATE_BUDGET:
        exhaustive = False
        stride = 2
        while True:
            total = count(stride)
            if total <= CANDIDATE_BUDGET or stride > max_off:
                break
            stride = stride + 1 if stride < 4 else stride * 3 // 2
        description = f"grid stride {stride}"
    cols: list[list[np.ndarray]] = [[] for _ in range(5)]
    if total <= CANDIDATE_BUDGET:
        for p, g in blocks:
            a, y, x = block(p, g, stride)
            for k, v in enumerate((np.full(a.size, p), np.full(a.size, g), a, y, x)):
                cols[k].append(v)
    else:
        # Even one offset per array is too many: each pattern keeps its m cheapest arrays.
        m_arrays = max(1, CANDIDATE_BUDGET // len(ctx.used))
        description = f"cheapest offset on each pattern's {m_arrays} cheapest arrays"
        for p in ctx.used:
            parts = []
            for g in range(len(ctx.groups)):
                if not ctx.fits[p][g]:
                    continue
                mins, arg = ctx.amin(p, g)
                n = mins.size
                ys, xs = np.unravel_index(arg, ctx.offsets(p, g))
                ok = survivors(p, g)[np.arange(n), ys, xs]
                ids = np.asarray(ctx.groups[g].array_ids)
                parts.append(np.stack([mins, ids, np.full(n, g), np.arange(n), ys, xs])[:, ok])
            table = np.concatenate(parts, axis=1)
            order = np.lexsort((table[1], table[0]))[:m_arrays]
            chosen = table[:, order].astype(np.int64)
            for k, v in enumerate((np.full(order.size, p), chosen[2], chosen[3], chosen[4], chosen[5])):
                cols[k].append(v)
    # The heuristics' regions are always candidates, so their placements stay feasible.
    for locs in must:
        for i, loc in enumerate(locs):
            for k, value in enumerate((ctx.problem.items[i].pattern, *loc)):
                cols[k].append(np.array([value]))
    key = np.stack([np.concatenate(c).astype(np.int64) for c in cols], axis=1)
    key = np.unique(key, axis=0)
    pattern, group, index, row, col = (key[:, k] for k in range(5))
    cost = np.empty(key.shape[0], dtype=np.int64)
    exclusive = np.empty(key.shape[0], dtype=bool)
    for p, g in blocks:
        sel = np.flatnonzero((pattern == p) & (group == g))
        if sel.size:
            m = ctx.maps.maps[p][g]
            assert m is not None
            cost[sel] = ctx.to_int(m[index[sel], row[sel], col[sel]])
            exclusive[sel] = ctx.excl[p][g]
    return _Candidates(pattern, group, index, row, col, cost, exclusive), exhaustive, description


def _cell_cliques(ctx: _Context, cands: _Candidates, shared: np.ndarray, flags: dict[int, int]) -> list[list[int]]:
    """The no-overlap constraints as cliques: per device, the candidates covering it.

    Axis-parallel boxes have the Helly property (boxes that overlap pairwise
    share a device), so these are exactly the maximal cliques of the conflict
    graph, and one AtMostOne per distinct covering set is an exact and tight
    encoding. The covering set only changes at candidate edges, so devices are
    taken on the compressed grid of each array's distinct edge rows and
    columns. `shared` lists the non-exclusive candidates; `flags` maps an array
    key to the index of its "holds an exclusive copy" variable, which joins
    every clique of its array.

    Returns:
        The cliques, as lists of variable indices (duplicates removed).
    """
    if shared.size == 0:
        return []
    key = cands.group * (1 + int(cands.index.max(initial=0))) + cands.index
    shapes = np.array([ctx.shapes[int(p)] for p in cands.pattern[shared]]).reshape(-1, 2)
    top, left = cands.row[shared], cands.col[shared]
    bottom, right = top + shapes[:, 0], left + shapes[:, 1]
    order = np.argsort(key[shared], kind="stable")
    bounds = np.flatnonzero(np.diff(key[shared][order])) + 1
    cliques: list[list[int]] = []
    for part in np.split(order, bounds):
        ys = np.unique(np.concatenate([top[part], bottom[part]]))
        xs = np.unique(np.concatenate([left[part], right[part]]))
        y0, y1 = np.searchsorted(ys, top[part]), np.searchsorted(ys, bottom[part])
        x0, x1 = np.searchsorted(xs, left[part]), np.searchsorted(xs, right[part])
        heights, widths = y1 - y0, x1 - x0
        counts = heights * widths
        owner = np.repeat(shared[part], counts)
        # Enumerate each candidate's compressed cells: k -> (y0 + k // width, x0 + k % width).
        first = np.repeat(np.cumsum(counts) - counts, counts)
        k = np.arange(owner.size) - first
        w = np.repeat(widths, counts)
        cell = (np.repeat(y0, counts) + k // w) * xs.size + np.repeat(x0, counts) + k % w
        flag = flags.get(int(key[shared[part[0]]]))
        by_cell = np.lexsort((owner, cell))
        cell, owner = cell[by_cell], owner[by_cell]
        starts = np.flatnonzero(np.r_[True, np.diff(cell) != 0])
        seen: set[tuple[int, ...]] = set()
        for members in np.split(owner, starts[1:]):
            if members.size < 2 and flag is None:
                continue
            clique = tuple(members.tolist())
            if clique not in seen:
                seen.add(clique)
                cliques.append([*clique, flag] if flag is not None else list(clique))
    return cliques


def _cpsat(
    ctx: _Context,
    cands: _Candidates,
    hint: Sequence[Loc] | None,
    time_limit_s: float,
    seed: int,
) -> tuple[str, list[Loc] | None, float]:
    """Solve the aggregated CP-SAT model: (CP-SAT status, locations or None, bound in uS)."""
    model = cp_model.CpModel()
    nc = cands.size
    x = [model.new_bool_var(f"x{j}") for j in range(nc)]
    by_pattern = np.argsort(cands.pattern, kind="stable")
    for idx in np.split(by_pattern, np.flatnonzero(np.diff(cands.pattern[by_pattern])) + 1):
        p = int(cands.pattern[idx[0]])
        model.add(cp_model.LinearExpr.sum([x[j] for j in idx.tolist()]) == ctx.k[p])
    # Exclusive candidates: at most one per array, and nothing else on an array holding one.
    links: list[tuple[int, list[int]]] = []  # (flag variable, its exclusive candidates)
    flags: dict[int, int] = {}
    array_key = cands.group * (1 + int(cands.index.max(initial=0))) + cands.index
    shared_keys = set(array_key[~cands.exclusive].tolist())
    by_array = np.argsort(array_key, kind="stable")
    for idx in np.split(by_array, np.flatnonzero(np.diff(array_key[by_array])) + 1):
        excl = [int(j) for j in idx if cands.exclusive[j]]
        a = int(array_key[idx[0]])
        if not excl:
            continue
        if a not in shared_keys:
            if len(excl) > 1:
                model.add_at_most_one([x[j] for j in excl])
            continue
        flag = model.new_bool_var("")
        flags[a] = len(x)
        x.append(flag)
        model.add(cp_model.LinearExpr.sum([x[j] for j in excl]) == flag)
        links.append((flags[a], excl))
    for clique in _cell_cliques(ctx, cands, np.flatnonzero(~cands.exclusive), flags):
        model.add_at_most_one([x[j] for j in clique])
    model.minimize(cp_model.LinearExpr.weighted_sum(x[:nc], cands.cost.tolist()))
    if hint is not None:
        lookup = {
            (int(a), int(b), int(c), int(d), int(e)): j
            for j, (a, b, c, d, e) in enumerate(
                zip(cands.pattern, cands.group, cands.index, cands.row, cands.col, strict=True)
            )
        }
        keys = [(ctx.problem.items[i].pattern, *loc) for i, loc in enumerate(hint)]
        on = {lookup[key] for key in keys}
        for j in range(nc):
            model.add_hint(x[j], j in on)
        for flag_var, excl in links:
            model.add_hint(x[flag_var], any(j in on for j in excl))
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.random_seed = int(seed)
    params.num_workers = CPSAT_WORKERS
    params.interleave_search = CPSAT_WORKERS > 1
    params.max_deterministic_time = float(time_limit_s)
    wall = WALL_CLOCK_FACTOR * float(time_limit_s) + 5.0
    params.max_time_in_seconds = wall
    params.catch_sigint_signal = False  # Ctrl-C is the caller's: see _solve_interruptibly
    if nc > LARGE_MODEL:
        params.cp_model_probing_level = 0  # probing a large model uses up the whole time limit
    status = _solve_interruptibly(solver, model)
    name = solver.status_name(status)
    if solver.wall_time >= 0.99 * wall:
        logger.warning(
            "CP-SAT stopped at its wall-clock safety limit (%.1f s), before its deterministic "
            "limit; this result may not reproduce",
            wall,
        )
    logger.info(
        "placement CP-SAT: %s after %.2f s (deterministic time %.2f)",
        name,
        solver.wall_time,
        solver.deterministic_time,
    )
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, None, -math.inf
    values = solver.response_proto.solution
    picked = [
        (
            int(cands.pattern[j]),
            (int(cands.group[j]), int(cands.index[j]), int(cands.row[j]), int(cands.col[j])),
        )
        for j in range(nc)
        if values[x[j].index]
    ]
    bound = math.ceil(solver.best_objective_bound - 1e-6) / ctx.scale
    return name, _assign_locs(ctx, picked), bound


def _solve_interruptibly(solver: cp_model.CpSolver, model: cp_model.CpModel) -> cp_model.CpSolverStatus:
    """`solver.solve(model)` in a worker thread, so that this thread still runs Python's signal handlers.

    CP-SAT would otherwise hold this thread for its whole time limit: a Ctrl-C
    (or a SIGTERM turned into an exception by the CLI) would wait for it, and
    CP-SAT's own SIGINT handler would swallow the Ctrl-C and let the compile
    finish as if nothing happened. Here the exception stops the search and is
    raised again once the worker has returned.
    """
    return run_interruptibly(lambda: solver.solve(model), solver.stop_search, "leac-cp-sat")


def solve_placement(problem: PlacementProblem, *, time_limit_s: float = 10.0, seed: int = 0) -> Placement:
    """Place every copy with OR-Tools, optimally or with a proven gap.

    Formulation (see the module docstring): the exact assignment (min-cost
    flow) when no two copies can share an array; otherwise greedy heuristics
    and a Lagrangian bound, returned at once when they meet, else CP-SAT over
    the candidate regions that survive reduced-cost pruning (restricted when
    more than `CANDIDATE_BUDGET` remain).

    Args:
        problem: The placement problem.
        time_limit_s: CP-SAT's deterministic time limit (about seconds; the
            wall-clock safety limit is `WALL_CLOCK_FACTOR` times it plus 5 s);
            it also scales the Lagrangian iteration budget.
        seed: CP-SAT's random seed.

    Returns:
        The placement: status "OPTIMAL" when proven optimal (to n_items / scale
        uS, 1 nS per copy by default), else "FEASIBLE" with its gap.

    Raises:
        UsageError: the time limit is not positive.
        DoesNotFitError: the copies cannot all be placed (proven, or no packing found in time).
    """
    if not time_limit_s > 0:
        raise UsageError(f"the time limit must be positive, not {time_limit_s!r}")
    t0 = time.perf_counter()
    ctx = _Context(problem)
    if not problem.items:
        return ctx.placement([], 0.0, "OPTIMAL", "empty", t0)
    bound, flow_locs = ctx.bound()
    bound = ctx.round_bound(bound)
    if flow_locs is not None and all(ctx.global_excl[p] for p in ctx.used):
        logger.info("placement: no two copies can share an array; assignment by min-cost flow")
        locs = [flow_locs[i] for i in range(ctx.n_items)]
        return ctx.placement(locs, bound, "OPTIMAL", "assignment", t0)

    heuristics: list[tuple[float, str, list[Loc]]] = []
    plain = _greedy(ctx)
    if not isinstance(plain, int):
        heuristics.append((ctx.objective(plain), "greedy", plain))
    if flow_locs:
        seeded = _greedy(ctx, flow_locs)
        if not isinstance(seeded, int):
            heuristics.append((ctx.objective(seeded), "assignment+greedy", seeded))
    if len({ctx.shapes[p][0] * ctx.shapes[p][1] for p in ctx.used}) > 1:
        sized = _greedy(ctx, largest_first=True)
        if not isinstance(sized, int):
            heuristics.append((ctx.objective(sized), "greedy-largest-first", sized))
    if not heuristics:
        packed = _greedy(ctx, largest_first=True, first_fit=True)
        if not isinstance(packed, int):
            heuristics.append((ctx.objective(packed), "first-fit", packed))
    heuristics.sort(key=lambda h: h[0])
    dual: _Dual | None = None
    if heuristics:
        ub, name, ub_locs = heuristics[0]
        if ctx.meets(ub, bound):
            return ctx.placement(ub_locs, bound, "OPTIMAL", f"{name}-meets-bound", t0)
        dual = _lagrangian(ctx, ub, ub_locs, name, time_limit_s)
        bound = max(bound, ctx.round_bound(dual.bound_uS))
        if dual.ub_uS < ub:
            heuristics.insert(0, (dual.ub_uS, dual.ub_name, dual.ub_locs))
        ub, name, ub_locs = heuristics[0]
        if ctx.meets(ub, bound):
            return ctx.placement(ub_locs, bound, "OPTIMAL", f"{name}-meets-bound", t0)
    ub_uS = heuristics[0][0] if heuristics else math.inf
    cands, exhaustive, description = _candidates(ctx, ub_uS, dual, [h[2] for h in heuristics])
    logger.info(
        "placement: CP-SAT over %d candidate (pattern, region) pairs (%s), %d patterns, "
        "%d copies; bound %.6g uS, best heuristic %.6g uS",
        cands.size,
        description,
        len(ctx.used),
        ctx.n_items,
        bound,
        ub_uS,
    )
    hint = heuristics[0][2] if heuristics else None
    status, found, cp_bound = _cpsat(ctx, cands, hint, time_limit_s, seed)
    method = "cpsat-exhaustive" if exhaustive else f"cpsat-restricted({description})"
    if found is None:
        if status == "INFEASIBLE" and exhaustive:
            raise DoesNotFitError(
                f"cannot place: CP-SAT proved that no non-overlapping packing exists; {_capacity(ctx)}"
            )
        if heuristics:  # CP-SAT can run out of time in presolve, before it takes the hint
            ub, name, ub_locs = heuristics[0]
            status_out = "OPTIMAL" if ctx.meets(ub, bound) else "FEASIBLE"
            return ctx.placement(ub_locs, bound, status_out, f"{name} ({method}: {status})", t0)
        raise DoesNotFitError(
            f"no non-overlapping packing found (CP-SAT: {status} within its limit"
            f"{'' if exhaustive else ', over restricted candidates'}; not proven impossible); "
            f"{_capacity(ctx)}"
        )
    if exhaustive:
        bound = max(bound, ctx.round_bound(cp_bound))
    objective = ctx.objective(found)
    proven = (exhaustive and status == "OPTIMAL") or ctx.meets(objective, bound)
    return ctx.placement(found, bound, "OPTIMAL" if proven else "FEASIBLE", method, t0)


Placer: TypeAlias = Callable[..., Placement]

PLACERS: dict[str, Placer] = {
    "cpsat": solve_placement,
    "greedy": greedy_placement,
    "random": random_placement,
}
"""The placers by name; each takes (problem, *, time_limit_s, seed) and returns a Placement."""
