"""The baselines: the seed paper's greedy search and the best of random placements.

`greedy_placement`: the seed paper's search with a fixed number of copies.
`random_placement`: the best of `samples` uniformly random feasible
placements. Both report status HEURISTIC, the combinatorial bound and their
gap.

With the objective `latency` or `balanced` both then spread their placement within its mapping error
(`latency.second_stage` without CP-SAT). Both share `solve_placement`'s signature (problem, *, time_limit_s, seed).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from lea_compiler.errors import DoesNotFitError, UsageError
from lea_compiler.placement.bounds import _combinatorial_bound
from lea_compiler.placement.context import Loc, _capacity, _Context, _Occupancy
from lea_compiler.placement.greedy import _greedy
from lea_compiler.placement.latency import second_stage
from lea_compiler.placement.problem import Placement, PlacementProblem

logger = logging.getLogger("lea_compiler.placement")  # the package's name, as before the split

_REJECTION_TRIES = 64
"""Random placer: uniform draws tried before enumerating every free region."""


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
    bound = ctx.round_bound(_combinatorial_bound(ctx)[0])
    result = _greedy(ctx)
    if isinstance(result, int):
        raise _no_packing(ctx, "greedy placement", result)
    return _with_objective(ctx, ctx.placement(result, bound, "HEURISTIC", "greedy", t0), t0)


def _with_objective(ctx: _Context, placement: Placement, t0: float) -> Placement:
    """A baseline's placement as its objective asks: with `latency` or `balanced`, spread within its error
    (placement/latency.py; no CP-SAT, so the analog time is a heuristic's, reported with its bound)."""
    if ctx.problem.objective == "error" or not ctx.problem.items:
        return placement
    return second_stage(ctx, placement, t0, exact=False)


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
    bound = ctx.round_bound(_combinatorial_bound(ctx)[0])
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
    return _with_objective(ctx, ctx.placement(best, bound, "HEURISTIC", f"random({drawn})", t0), t0)


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
