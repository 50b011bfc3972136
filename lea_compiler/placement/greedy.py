"""The greedy search: every item at its cheapest free region, on costs or on Lagrangian prices.

It is the greedy baseline (`greedy_placement`), the heuristics `solve_placement`
tries before CP-SAT (plain, seeded with the min-cost flow's placement,
largest first, cost-blind first fit) and the Lagrangian's repair step.
"""

from __future__ import annotations

import math

import numpy as np

from lea_compiler.placement.context import Boxes, Loc, _Context, _Occupancy


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
