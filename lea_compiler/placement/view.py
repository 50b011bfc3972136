"""The placement view: the part of a large chip the placer looks at, so compile's memory follows the model.

The placer (the rest of `lea_compiler.placement`) costs every pattern at every offset of
every array: its cost maps and their temporaries take about
`BYTES_PER_DEVICE + 8 * patterns` bytes per chip device (measured: 2 arrays of
4096 x 4096 and the digits MLP's 4 patterns, 33.5 million devices, peaked at
2.95 GB and took 160 s; 14 such arrays needed more than 6 GB). On a chip whose
estimate exceeds `VIEW_BYTES`, the placer is given a *view* instead: a chip
with the same device model and periphery whose arrays are some of the chip's
arrays (same ids), each cut to its top-left corner, with the defects that
fall inside. A region of the view is the same region of the chip (same array,
row and column, the same devices and so the same cost), so the placement is
valid on the whole chip and every later pass works on the whole chip.

How the view is chosen (deterministic, from the chip and the patterns alone):

1. Every array is cut to at most `max(VIEW_MIN_SIDE, 2 x the tallest pattern)`
   rows and `max(VIEW_MIN_SIDE, 2 x the widest pattern)` columns: room for
   copies side by side and for the placer to move around stuck devices. On a
   chip whose lines have resistance (`periphery.lines`) every row is kept:
   the sense amplifiers sit under the last row, so the rows near them are the
   cheapest, and the IR-drop cost of a region depends on the array's true
   height (`costs.ir_drop_costs`). The kept columns, the first ones, are those
   next to the drivers. Such a view holds up to 4,096 rows per array
   (`MAX_ARRAY_ROWS`), and the budget below counts them.
2. The cut arrays are ranked by their stuck devices (fewest first, then file
   order) and taken in that order until the view holds the devices the
   budget allows (`VIEW_BYTES` over the bytes per device), and in any case
   until it holds `VIEW_NEED_FACTOR` times the devices the copies need and
   one array per copy (so memory grows with the model, never with the chip).
3. The kept arrays keep their order in the file (the placer breaks ties by
   position).

A placement on a view is optimal at most for the view: an OPTIMAL status
becomes FEASIBLE (unless the error is zero; the baselines stay HEURISTIC),
its bound is 0 (the only bound proven for the whole chip) and its method says
which view it used. Chips whose estimate
is within the budget are placed exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lea_compiler.chip import Array, Chip, Defect

logger = logging.getLogger("lea_compiler.placement_view")  # its name before it moved into the package

VIEW_BYTES = 1 << 30
"""Estimated placer memory (bytes) above which the placer sees a view of the chip (1 GiB: with --jobs 2 and
the rest of compile, a compile stays within a few GiB of the 24 GiB machine leac is measured on)."""
BYTES_PER_DEVICE = 64
"""Placer bytes per chip device besides the cost maps (stuck flags, conductances, sums; measured ~60)."""
VIEW_MIN_SIDE = 256
"""An array in a view keeps at least this many rows and columns (if it has them)."""
VIEW_NEED_FACTOR = 4
"""A view holds at least this many times the devices the copies need (when the chip has them)."""


@dataclass(frozen=True)
class PlacementView:
    """The chip the placer sees and how it was cut from the whole chip.

    Attributes:
        chip: The view (the whole chip itself when no view is needed).
        whole: True when `chip` is the whole chip.
        description: For the placement's method and the log, e.g. "view of 12 of 65536 arrays, at most
            256 x 256 each (786432 of 268435456 devices)".
    """

    chip: Chip
    whole: bool
    description: str


def estimated_bytes(devices: int, patterns: int) -> int:
    """The placer's estimated peak memory for `devices` chip devices and `patterns` patterns."""
    return devices * (BYTES_PER_DEVICE + 8 * patterns)


def placement_view(
    chip: Chip, shapes: Sequence[tuple[int, int]], item_shapes: Sequence[tuple[int, int]]
) -> PlacementView:
    """The chip the placer should see for patterns of `shapes` and copies of `item_shapes` (module docstring).

    Args:
        chip: The whole chip.
        shapes: (rows, cols) of every pattern.
        item_shapes: (rows, cols) of every copy to place.
    """
    patterns = max(1, len(shapes))
    if estimated_bytes(chip.device_count, patterns) <= VIEW_BYTES or not shapes:
        return PlacementView(chip, True, "whole chip")
    tallest = max(r for r, _ in shapes)
    widest = max(c for _, c in shapes)
    side_rows = max(VIEW_MIN_SIDE, 2 * tallest)
    side_cols = max(VIEW_MIN_SIDE, 2 * widest)
    # With resistive lines the sense amplifiers sit under each array's last row: a top-left cut would leave the
    # placer only the rows farthest from them and cost them as if the array ended at the cut. Keep every row
    # (the cut's columns, next to the drivers, are the cheap ones), so a region costs what it costs on the chip.
    lines = not chip.periphery.lines.is_default
    cut = [Array(a.id, a.rows if lines else min(a.rows, side_rows), min(a.cols, side_cols)) for a in chip.arrays]
    inside = {a.id: a for a in cut}
    stuck = dict.fromkeys(inside, 0)
    kept: list[Defect] = []  # the defects inside the cut arrays, in file order
    for d in chip.defects:
        a = inside[d.array]
        if (d.row is not None and d.row >= a.rows) or (d.col is not None and d.col >= a.cols):
            continue
        kept.append(d)
        stuck[d.array] += a.cols if d.col is None else a.rows if d.row is None else 1
    copies = len(item_shapes)
    need = sum(r * c for r, c in item_shapes)
    budget = max(VIEW_BYTES // (BYTES_PER_DEVICE + 8 * patterns), VIEW_NEED_FACTOR * need)
    ranked = sorted(range(len(cut)), key=lambda p: (stuck[cut[p].id], p))
    chosen: list[int] = []
    devices = 0
    for p in ranked:
        if devices >= budget and len(chosen) >= copies:
            break
        chosen.append(p)
        devices += cut[p].devices
    chosen.sort()
    arrays = tuple(cut[p] for p in chosen)
    ids = {a.id for a in arrays}
    defects = tuple(d for d in kept if d.array in ids)
    view = Chip(arrays=arrays, defects=defects, device=chip.device, periphery=chip.periphery, name=chip.name)
    rows, cols = max(a.rows for a in arrays), max(a.cols for a in arrays)
    description = (f"view of {len(arrays)} of {len(chip.arrays)} arrays, at most {rows} x {cols} "
                   f"each ({devices} of {chip.device_count} devices)")
    logger.info("placement on a %s: the whole chip would take about %.1f GB", description,
                estimated_bytes(chip.device_count, patterns) / 1e9)
    return PlacementView(view, False, description)
