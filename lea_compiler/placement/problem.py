"""The placement problem and its result: patterns, items (copies), regions, the Placement.

A `PlacementProblem` is a list of *patterns* (the target conductance matrix,
in uS, of one block half, G+ or G-), a list of *items* (copies to place,
several per pattern) and a `Chip`. A *region* is (array, row offset, col
offset); an item of shape r x c at region (a, y, x) covers rows y..y+r-1 and
columns x..x+c-1 of array a. A `Placement` gives every item a region, with
the placer's proven lower bound, status and method.

Latency (`placement/latency.py`): an item may name the crossbar `layer` whose reads it serves and the time
`read_ns` one application of the layer spends reading it; a problem's `layer_weights` give each layer's
applications per sample, and its `objective` ("error", "latency" or "balanced",
`lea_compiler.analog_time.OBJECTIVES`) what the placers minimise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from lea_compiler.analog_time import OBJECTIVES
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
        layer: The crossbar layer whose reads it serves ("" : none; its reads take no time).
        read_ns: Time one application of its layer spends reading it (`analog_time.half_read_ns`), >= 0.
    """

    name: str
    pattern: int
    layer: str = ""
    read_ns: float = 0.0


@dataclass(frozen=True, eq=False)
class PlacementProblem:
    """Patterns, the items (copies) to place, and the chip.

    Attributes:
        patterns: The distinct target matrices.
        items: The copies; several may share a pattern.
        chip: The chip whose arrays receive them.
        objective: "error" (the mapping error alone), "latency" (the analog time at the minimum mapping error)
            or "balanced" (the analog time within `BALANCED_TOLERANCE` of it); placement/latency.py.
        layer_weights: Applications per sample of each layer the items name (a layer not given: 1).
    """

    patterns: tuple[Pattern, ...]
    items: tuple[Item, ...]
    chip: Chip
    objective: str = "error"
    layer_weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "layer_weights", dict(self.layer_weights))
        if self.objective not in OBJECTIVES:
            raise UsageError(f"unknown placement objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        bad_times = [f"item {i} ({it.name!r}): read_ns {it.read_ns!r}" for i, it in enumerate(self.items)
                     if not (isinstance(it.read_ns, (int, float)) and 0 <= it.read_ns < float("inf"))]
        bad_times += [f"layer {name!r}: weight {w!r}" for name, w in self.layer_weights.items()
                      if not (isinstance(w, (int, float)) and 0 <= w < float("inf"))]
        if bad_times:
            raise UsageError("invalid placement problem: read times and layer weights must be finite and >= 0: "
                             + "; ".join(bad_times[:5]))
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
        analog_ns: The latency proxy: sum over layers of its weight x its busiest array's read time, ns.
        analog_bound_ns: A proven lower bound on `analog_ns` over the placements the objective allows.
        analog_gap: (analog_ns - bound) / analog_ns; 0 when proven optimal.
        wall_clock_limited: The CP-SAT stages ("placement", "latency placement") that stopped at their wall-clock
            safety limit before their deterministic one: the result depends on the machine's load, so it may not
            reproduce (empty: it does).
    """

    regions: tuple[Region, ...]
    costs_uS: tuple[float, ...]
    objective_uS: float
    bound_uS: float
    gap: float
    status: Status
    method: str
    seconds: float
    analog_ns: float = 0.0
    analog_bound_ns: float = 0.0
    analog_gap: float = 0.0
    wall_clock_limited: tuple[str, ...] = ()
