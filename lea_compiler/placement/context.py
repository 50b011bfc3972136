"""What every placer needs for one problem: fit checks, cost maps, integer costs, exclusivity, results.

`_Context` is built once per call of a placer. It checks the plain
impossibilities (a copy that fits in no array, too few devices or arrays),
computes the cost maps, and derives what the bounds, the heuristics and
CP-SAT share:

  * Integer costs. Costs go to the OR-Tools solvers as integers
    floor(cost * scale), with `scale` units per uS (`SCALE_PER_US`, i.e.
    1 nS, unless the totals would pass 2^52; then it is divided by 10 until
    they do not). Flooring keeps every integer bound valid for the true
    costs; OPTIMAL means optimal to within n_items / scale uS (`resolution`),
    and is reported with gap 0. When every cost is a whole multiple of some
    unit u (with the default device model, 1 uS), bounds are rounded up to a
    multiple of u, since every objective is one.
  * Exclusivity. Two shapes can *share* an array of R x C if they fit side
    by side in rows (r1 + r2 <= R) or in columns (c1 + c2 <= C). A pattern is
    *exclusive* on an array shape when it cannot share it with any other
    item that fits there: an array holding one of its copies holds nothing
    else, so only its cheapest offset on that array matters (a lossless
    reduction).

Locations inside the placers are `Loc`s, (group, index within the group,
row, col) in `CostMaps` coordinates; `_Context.placement` turns them into the
`Placement` of `Region`s, after `_verify` has checked them.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np

from lea_compiler.analog_time import busiest_ns, makespan_bound
from lea_compiler.errors import DoesNotFitError
from lea_compiler.placement.costs import _array_groups, _box, cost_maps
from lea_compiler.placement.problem import Placement, PlacementProblem, Region, Status

logger = logging.getLogger("lea_compiler.placement")  # the package's name, as before the split

SCALE_PER_US = 1000.0
"""Integer cost units per uS given to the solvers (1 nS), unless the totals would overflow."""
_FLOOR_EPS = 1e-6
"""Added before flooring scaled costs, so float noise on an exact integer does not lose a unit."""

LATENCY_SCALE_PER_NS = 1000
"""Integer time units per ns given to CP-SAT (1 ps): read times are rounded to it."""

Loc: TypeAlias = tuple[int, int, int, int]
"""(group index, index within the group, row, col): a region in `CostMaps` coordinates."""
Boxes: TypeAlias = "dict[tuple[int, tuple[int, int]], np.ndarray]"
"""(group, pattern shape) -> window sums of the Lagrange multipliers at every offset."""


def _can_share(a: tuple[int, int], b: tuple[int, int], rows: int, cols: int) -> bool:
    """Whether shapes a and b fit side by side (in rows or in columns) in a rows x cols array."""
    return a[0] + b[0] <= rows or a[1] + b[1] <= cols


class _Context:
    """What every placer needs for one problem: checks, cost maps, integer costs, exclusivity, results.

    The lower bounds built on it are in `lea_compiler.placement.bounds`.
    """

    def __init__(self, problem: PlacementProblem) -> None:
        self.problem = problem
        self.wall_strikes: list[str] = []  # the CP-SAT stages stopped by their wall-clock limit (cpsat._run)
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
        self.latency = _Latency(self)

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

    # results ----------------------------------------------------------------

    def locs_of(self, placement: Placement) -> list[Loc]:
        """The locations of a Placement's regions (the inverse of `region`)."""
        where = {aid: (g, i) for g, grp in enumerate(self.groups) for i, aid in enumerate(grp.array_ids)}
        return [(*where[r.array], r.row, r.col) for r in placement.regions]

    def placement(self, locs: Sequence[Loc], bound_uS: float, status: Status, method: str, t0: float,
                  analog_bound: int = 0) -> Placement:
        """The Placement of `locs`; status OPTIMAL reports gap 0 (proven to the resolution). Its analog time
        bound is the better of `analog_bound` (integer units; e.g. CP-SAT's) and `_Latency.bound`."""
        _verify(self, locs)
        regions = tuple(self.region(loc) for loc in locs)
        costs = tuple(self.cost(self.problem.items[i].pattern, loc) for i, loc in enumerate(locs))
        objective = math.fsum(costs)
        bound = min(bound_uS, objective)
        gap = 0.0 if status == "OPTIMAL" else (objective - bound) / max(objective, 1e-12)
        lat = self.latency
        analog = lat.time(locs)
        analog_bound = min(analog, max(analog_bound, lat.bound))
        result = Placement(
            regions=regions,
            costs_uS=costs,
            objective_uS=objective,
            bound_uS=bound,
            gap=gap,
            status=status,
            method=method,
            seconds=time.perf_counter() - t0,
            analog_ns=analog / LATENCY_SCALE_PER_NS,
            analog_bound_ns=analog_bound / LATENCY_SCALE_PER_NS,
            analog_gap=(analog - analog_bound) / analog if analog > 0 else 0.0,
            wall_clock_limited=tuple(self.wall_strikes),
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

    def take(self, p: int, loc: Loc, value: bool = True) -> None:
        """Mark p's window at `loc` taken (`value` False: free again)."""
        g, i, y, x = loc
        r, c = self.ctx.shapes[p]
        self.occ[g][i, y : y + r, x : x + c] = value
        np.cumsum(self.occ[g][i], axis=0, dtype=np.int32, out=self.integral[g][i, 1:, 1:])
        np.cumsum(self.integral[g][i, 1:, 1:], axis=1, out=self.integral[g][i, 1:, 1:])


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


class _Latency:
    """The latency proxy of a problem's items, in integers: `LATENCY_SCALE_PER_NS` units per ns.

    `layer[i]` is item i's layer index (-1: none), `read[i]` its read time, `weight[l]` layer l's applications
    per sample (rounded to an integer, at least 1 when positive), `members[l]` layer l's items, `bound` a lower
    bound of the weighted analog time.
    """

    def __init__(self, ctx: _Context) -> None:
        problem = ctx.problem
        self.names: list[str] = []
        index: dict[str, int] = {}
        layer = []
        for it in problem.items:
            if it.layer and it.layer not in index:
                index[it.layer] = len(self.names)
                self.names.append(it.layer)
            layer.append(index[it.layer] if it.layer else -1)
        self.layer = np.asarray(layer, dtype=np.int64)
        self.read = np.asarray([round(it.read_ns * LATENCY_SCALE_PER_NS) for it in problem.items], dtype=np.int64)
        self.weight = [max(1, round(w)) if (w := problem.layer_weights.get(n, 1.0)) > 0 else 0 for n in self.names]
        self.array_id = [np.asarray(grp.array_ids, dtype=np.int64) for grp in ctx.groups]
        self.bound = 0
        self.members: list[list[int]] = []  # per layer: its items, in index order
        for lay in range(len(self.names)):
            members = np.flatnonzero(self.layer == lay)
            self.members.append(members.tolist())
            pats = {problem.items[i].pattern for i in members.tolist()}
            arrays = sum(len(grp.array_ids) for g, grp in enumerate(ctx.groups) if any(ctx.fits[p][g] for p in pats))
            lb = makespan_bound([float(t) for t in self.read[members]], arrays)
            self.bound += self.weight[lay] * math.ceil(lb - 1e-9)

    @property
    def active(self) -> bool:
        """Whether any item's reads take time (else every placement has analog time 0)."""
        return bool(np.any((self.layer >= 0) & (self.read > 0)))

    def loads(self, locs: Sequence[Loc]) -> dict[tuple[int, int], int]:
        """(layer, array id) -> that layer's read time on that array."""
        out: dict[tuple[int, int], int] = {}
        for i, loc in enumerate(locs):
            lay = int(self.layer[i])
            if lay >= 0:
                key = (lay, int(self.array_id[loc[0]][loc[1]]))
                out[key] = out.get(key, 0) + int(self.read[i])
        return out

    def time(self, locs: Sequence[Loc]) -> int:
        """The proxy: sum over layers of weight x the busiest array's read time (`analog_time.busiest_ns`)."""
        per_layer: list[list[tuple[int, float]]] = [[] for _ in self.names]
        for (lay, array), t in self.loads(locs).items():
            per_layer[lay].append((array, float(t)))
        return sum(w * round(busiest_ns(pairs)) for w, pairs in zip(self.weight, per_layer, strict=True))
