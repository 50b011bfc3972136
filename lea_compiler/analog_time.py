"""The analog time of crossbar layers, defined once: a read's time, a copy half's time per application, how
often a layer is applied per sample, and a layer's time as its busiest array's serial reads.

Reads of one layer on one array serialise (the array has one set of bit lines and its ADCs); reads on
different arrays overlap. One read of N reads (`leac compile --reads N`) of a region of `columns` columns takes

    N x (t_mvm_ns + ceil(columns / adcs_per_array) x t_adc_ns)

(the ADCs of an array are multiplexed over its columns). A grouped layer (`groups` = G > 1) reads a block once
per group whose columns it holds, converting only that group's columns (`grouping.group_overlaps`). A layer's
analog time per application is the busiest array's sum over the layer's copy halves on it; per sample it is
that times the layer's applications (1 for a dense layer, OH x OW for a convolution: `applications`). The
cost model (backends/cost.py) and latency-aware placement (placement/latency.py) both call these.

`analog_time_bound_ns` is a lower bound on that sum over layers for any placement: per layer, the classic
bound of scheduling jobs on m identical machines (P||Cmax): max(longest read, total / m, the m-th plus the
(m+1)-th longest when there are more than m), with m the arrays any of the layer's copies fits in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from lea_compiler.chip import Chip, Periphery
from lea_compiler.grouping import group_overlaps
from lea_compiler.ir import Node

if TYPE_CHECKING:
    from lea_compiler.program import Program

OBJECTIVES = ("error", "latency", "balanced")
"""What placement minimises (`leac compile --objective`; placement/latency.py): the mapping error alone; then the
analog time at the minimum mapping error; or the analog time within `BALANCED_TOLERANCE` of that error."""

BALANCED_TOLERANCE = 0.05
"""`balanced`: the mapping error may exceed the minimum found by this share of it (5%) for a shorter analog
time; at a minimum of 0 uS (a paper-like chip) that is no slack at all, so `balanced` equals `latency` there."""


def rounds_ns(periphery: Periphery, rounds: int, reads: int = 1) -> float:
    """Time of `reads` reads of a region whose columns take `rounds` rounds of conversions: N x (t_mvm + rounds x
    t_adc)."""
    return reads * (periphery.t_mvm_ns + rounds * periphery.t_adc_ns)


def read_ns(periphery: Periphery, columns: int, reads: int = 1, adcs: int | None = None) -> float:
    """Time of reading a region of `columns` columns `reads` times: N x (t_mvm + ceil(cols / adcs) x t_adc),
    `adcs` the ADCs converting them (default: the periphery's `adcs_per_array`)."""
    return rounds_ns(periphery, -(-int(columns) // (periphery.adcs_per_array if adcs is None else adcs)), reads)


def half_read_ns(periphery: Periphery, col_start: int, col_stop: int, layer_cols: int, groups: int = 1,
                 reads: int = 1) -> float:
    """One application's read time of a copy half holding layer columns [col_start, col_stop): one read, or
    with `groups` G > 1 one read per group with columns in it, converting only that group's columns."""
    if groups <= 1:
        return read_ns(periphery, col_stop - col_start, reads)
    # placement runs before lowering, so there is no LayerPlan for `timing.read_jobs`: both split by group_overlaps
    overlaps = group_overlaps(np.array([col_start]), np.array([col_stop]), layer_cols, groups)[0]
    return sum(read_ns(periphery, int(columns), reads) for columns in overlaps if columns > 0)


def applications(node: Node) -> int | None:
    """How often a crossbar layer is applied per sample: the product of its input's dimensions between the
    batch and the vector (1 for a dense layer, OH*OW for a conv; a grouped layer's application is a run of one
    vector per group, so its group axis does not count), or None when a dimension is not known."""
    x = node.input(0)
    shape = () if x is None or x.shape is None else x.shape
    groups = int(node.attr("groups", 1))
    count = 1
    for d in shape[1:-2] if groups > 1 else shape[1:-1]:
        if not isinstance(d, int):
            return None
        count *= d
    return count


def busiest_ns(loads: Iterable[tuple[int, float]]) -> float:
    """The busiest array's serial time of (array, time) pairs of one layer's reads."""
    busy: dict[int, float] = defaultdict(float)
    for array, ns in loads:
        busy[array] += ns
    return max(busy.values(), default=0.0)


def makespan_bound(times: Sequence[float], machines: int) -> float:
    """A lower bound on the busiest array's time when reads of `times` go to `machines` arrays (P||Cmax)."""
    if not times:
        return 0.0
    m = max(1, machines)
    ordered = sorted(times, reverse=True)
    bound = max(ordered[0], math.fsum(ordered) / m)
    if len(ordered) > m:
        bound = max(bound, ordered[m - 1] + ordered[m])
    return bound


def fitting_arrays(chip: Chip, shapes: Iterable[tuple[int, int]]) -> int:
    """How many arrays of `chip` hold at least one of `shapes`."""
    shapes = list(shapes)
    return sum(1 for a in chip.arrays if any(r <= a.rows and c <= a.cols for r, c in shapes))


def program_analog_time(program: Program) -> tuple[float, float]:
    """(analog time ns, a lower bound on it over all placements) per sample of a Program's crossbar layers,
    each layer's busiest array's reads times its applications (the module docstring); a layer whose
    applications are unknown counts once."""
    periphery = program.chip.periphery
    reads = program.reads
    total, bound = 0.0, 0.0
    for layer in program.layers:
        node = program.graph.node(layer.name)
        apps = applications(node) or 1
        groups = int(node.attr("groups", 1))
        loads: list[tuple[int, float]] = []
        shapes = set()
        for block in layer.blocks:
            ns = half_read_ns(periphery, block.col_start, block.col_stop, layer.cols, groups, reads)
            shapes.add(block.shape)
            for copy in block.copies:
                loads += [(copy.pos.region.array, ns), (copy.neg.region.array, ns)]
        total += apps * busiest_ns(loads)
        bound += apps * makespan_bound([ns for _, ns in loads], fitting_arrays(program.chip, shapes))
    return total, bound


def layer_time_ns(loads: Mapping[str, Iterable[tuple[int, float]]], weights: Mapping[str, float]) -> float:
    """Sum over layers of weight x busiest array's time, `loads` giving each layer's (array, ns) reads."""
    return math.fsum(weights.get(name, 1.0) * busiest_ns(pairs) for name, pairs in loads.items())
