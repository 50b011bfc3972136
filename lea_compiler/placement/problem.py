"""The placement problem and its result: patterns, items (copies), regions, the Placement.

A `PlacementProblem` is a list of *patterns* (the target conductance matrix,
in uS, of one block half, G+ or G-), a list of *items* (copies to place,
several per pattern) and a `Chip`. A *region* is (array, row offset, col
offset); an item of shape r x c at region (a, y, x) covers rows y..y+r-1 and
columns x..x+c-1 of array a. A `Placement` gives every item a region, with
the placer's proven lower bound, status and method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.errors import UsageError
from lea_compiler.geometry import Region

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
