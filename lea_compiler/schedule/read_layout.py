"""What the crossbar executor derives from a layer's plan alone, made once per plan (`LayerPlan.derived`).

The executor's set-up (`schedule.execute.CrossbarExecutor`) lays a layer's programmed devices out in row bands,
each read's region at its band's rows and its copy's and polarity's columns, over its column's ADC step. Where
each read lands, which copies each combined column averages, the bands' ADC steps, read counts and weights, the
linear reads' column terms (`linear_reads.column_terms`) and where each row sum of the read power goes depend
on the plan's records (and the chip's ADC bits) only: the noise draws of one schedule (`simulate_trials`, each
draw a new `CrossbarLayer` on the same plans) share them, and a draw pays only for what its devices change
(the bands' conductances and the row sums). Everything kept here is read only.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from lea_compiler.errors import InvalidInputError
from lea_compiler.geometry import ranges, region_starts
from lea_compiler.grouping import groups_reading
from lea_compiler.schedule.linear_reads import column_terms
from lea_compiler.schedule.plan import LayerPlan
from lea_compiler.schedule.regions import scatter

_Found = TypeVar("_Found")


@dataclass(frozen=True, eq=False)
class ReadLayout:
    """Where a layer's reads land, per read in read order (int64 arrays): its row band [r0, r1) of the layer's
    augmented input, polarity (0 for G+, 1 for G-), copy slot (its copy's rank among its block's copies),
    columns [c0, c1) of the layer and N reads; and `averaged`, per copy that a combined column averages: a read
    whose band it is (its block's last read), slot, layer column and weight 1 / divisor (float64)."""

    r0: np.ndarray
    r1: np.ndarray
    polarity: np.ndarray
    slot: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    reads: np.ndarray
    averaged: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

    @property
    def shapes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each read's region's rows and cols (its band's height, its columns' width)."""
        return self.r1 - self.r0, self.c1 - self.c0

    def bands(self, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct row bands (r0, r1), ascending, for a layer of `rows` rows, and each read's band."""
        keys, band = np.unique(self.r0 * (rows + 1) + self.r1, return_inverse=True)
        return keys // (rows + 1), keys % (rows + 1), band.reshape(-1)


def lay_out(plan: LayerPlan) -> ReadLayout:
    """Where each read lands (`ReadLayout`: its row band, polarity, copy slot, columns) and which copies each
    combined column averages, checked: every read drives a contiguous band of the layer's rows onto its
    block's columns, every block has `alpha` copies, and every combine averages copies the block's reads
    give, one per column. All reads and combines at once (their fields gathered, then numpy)."""
    name = plan.name
    start = plan.start
    n = len(plan.reads)
    # the reads' fields, for numpy (lowering's table: `LayerPlan.read_table`)
    height, width, block, copy, x_start, x_stop, one_row, count, polarity = plan.read_fields(
        "rows", "cols", "block", "copy", "x_start", "x_stop", "one_row", "reads", "polarity")
    combines = plan.combines
    picked, chosen = _entries(list(itertools.chain.from_iterable(c.copies for c in combines)))
    terms = np.array(plan.accumulate.terms, dtype=np.int64).reshape(-1, 3)
    combined = np.array([(c.block, len(c.copies), c.divisor) for c in combines], dtype=np.int64).reshape(-1, 3)
    # blocks and the reads' copies as dense ranks, so that a (block, copy) pair is one int64
    blocks, rank = np.unique(np.concatenate([block, combined[:, 0], terms[:, 0]]), return_inverse=True)
    read_block, combine_block, term_block = np.split(rank.reshape(-1), [n, n + len(combines)])
    copies, read_copy = np.unique(copy, return_inverse=True)
    read_copy = read_copy.reshape(-1)
    span = len(copies) + 1  # a combine's copy that no read has is rank len(copies)
    picked_copy = np.searchsorted(copies, picked)
    known = copies[np.minimum(picked_copy, len(copies) - 1)] == picked if len(copies) else picked < 0
    picked_copy[~known] = len(copies)
    # each block's columns, the last term's for a block listed twice (as a dict of the terms), else (0, -1)
    c0, c1 = np.zeros(len(blocks), dtype=np.int64), np.full(len(blocks), -1, dtype=np.int64)
    last = len(terms) - 1 - np.unique(term_block[::-1], return_index=True)[1]
    c0[term_block[last]], c1[term_block[last]] = terms[last, 1], terms[last, 2]
    # each block's copies in ascending order are its slots 0, 1, ...
    pairs, read_pair = np.unique(read_block * span + read_copy, return_inverse=True)
    pair_block = pairs // span
    slots = np.bincount(pair_block, minlength=len(blocks))  # copies per block
    slot = np.arange(len(pairs)) - region_starts(slots, 1)[pair_block]  # (pairs are by block: each
    # block's first is after the copies of the blocks before it)
    contiguous = ((x_stop - x_start == height) & (one_row == -1)) | (
        (one_row == x_stop - x_start) & (one_row == height - 1) & (x_stop == start.inputs))
    bad = ~contiguous | ((c1 - c0)[read_block] != width) | (slots[read_block] != start.alpha) | (
        x_start + height > start.rows)
    if bad.any():
        at_block, at_copy = (int(field[np.flatnonzero(bad)[0]]) for field in plan.read_fields("block", "copy"))
        raise InvalidInputError(f"layer {name!r}: the read of block {at_block}, copy {at_copy} does not "
                                "drive a contiguous band of the layer's rows onto its columns; leac cannot "
                                "execute it")
    # a combine: per column j of its block, the copies averaged, each with weight 1 / divisor
    columns = combined[:, 1]
    entry_combine = np.repeat(np.repeat(np.arange(len(combines)), columns), chosen)
    key = combine_block[entry_combine] * span + picked_copy  # < len(blocks) * span
    numbered = np.full(len(blocks) * span, -1, dtype=np.int64)  # each (block, copy) pair's place in `pairs`
    numbered[pairs] = np.arange(len(pairs))
    at = numbered[key]  # (a look-up, not a search: one entry per column and copy averaged)
    found = at >= 0
    missing = np.bincount(entry_combine[~found], minlength=len(combines)) > 0
    bad = (slots[combine_block] == 0) | (columns != (c1 - c0)[combine_block]) | missing
    if bad.any():
        combine = combines[int(np.flatnonzero(bad)[0])]
        raise InvalidInputError(f"layer {name!r}: the combine of block {combine.block} "
                                "averages copies or columns the block's reads do not give; leac cannot execute it")
    # a combine's band is its block's last read's
    last_read = np.full(len(blocks), -1, dtype=np.int64)
    np.maximum.at(last_read, read_block, np.arange(n))
    band_read = last_read[combine_block[entry_combine]]
    column = np.repeat(ranges(np.zeros(len(combines), dtype=np.int64), columns), chosen)
    r0, c_read = x_start, c0[read_block]
    return ReadLayout(r0, r0 + height, polarity, slot[read_pair.reshape(-1)], c_read, c_read + width, count,
                      averaged=(band_read, slot[at], c0[combine_block[entry_combine]] + column,
                                (1.0 / combined[:, 2].astype(np.float64))[entry_combine]))


def _entries(rows: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Tuples of integers laid end to end, and each one's length (int64 both). A tuple object that several rows
    share (a combine's copies, one tuple for all of its columns) is read once."""
    _, first, which = np.unique(np.fromiter(map(id, rows), dtype=np.int64, count=len(rows)), return_index=True,
                                  return_inverse=True)
    distinct = [rows[i] for i in first.tolist()]
    lengths = np.fromiter(map(len, distinct), dtype=np.int64, count=len(distinct))
    values = np.fromiter(itertools.chain.from_iterable(distinct), dtype=np.int64, count=int(lengths.sum()))
    length = lengths[which.reshape(-1)]
    return values[ranges(region_starts(lengths, 1)[which.reshape(-1)], length)], length




def read_layout(plan: LayerPlan) -> ReadLayout:
    """`lay_out(plan)`, made once per plan (read only)."""
    return plan.derived("read layout", lambda: _read_only(lay_out(plan)))


@dataclass(frozen=True, eq=False)
class BandFrame:
    """A layer's row bands without their devices (`band_frame`): all but the bands' conductances (and read-noise
    variances) that `CrossbarExecutor._bands` makes, for given ADC ranges. B bands, ascending; arrays read only."""

    r0: list[int]  # each band's first row of the layer's augmented input
    r1: list[int]  # each band's row after its last
    first: np.ndarray  # (B,) int64: each band's first row in the buffer of the bands laid one above the other
    row: np.ndarray  # (reads,) int64: each read's first row in that buffer (its band's first)
    col: np.ndarray  # (reads,) int64: each read's first column in its band, of (2, alpha, cols)
    rows: int  # the buffer's rows: the bands' heights summed
    unique: bool  # no two reads fill one device
    inv_read: np.ndarray  # (reads,) float64: 1 / each read's ADC step (uA)
    inv_step: np.ndarray  # (B, 2 alpha cols) float32: 1 / each column's ADC step
    weights: np.ndarray  # (B, 2 alpha, cols) float32: ADC step x selection / divisor, negated for G-
    reads: np.ndarray  # (B, 2 alpha cols) float64: reads per column (a column no read fills: the band's most)
    counts: np.ndarray  # `reads` as float32
    most: list[int]  # each band's most reads
    uneven: list[bool]  # whether a band's columns are read different numbers of times

    @functools.cached_property
    def column_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The linear reads' terms of the bands' columns alone (`linear_reads.column_terms`), made once."""
        return _read_only(column_terms(self.weights, self.inv_step, self.reads))


def band_frame(plan: LayerPlan, full_scale: list[float], adc_bits: int) -> BandFrame:
    """The layer's row bands without their devices for the ADC ranges `full_scale` (uA, one per read) and an ADC of
    `adc_bits` bits: made once per plan, ranges and bits (`_band_frame`).

    Raises:
        InvalidInputError: an ADC range whose steps are too small for float32 (or not finite)."""
    return plan.derived(("bands", adc_bits, tuple(full_scale)), lambda: _band_frame(plan, full_scale, adc_bits))


def _band_frame(plan: LayerPlan, full_scale: list[float], adc_bits: int) -> BandFrame:
    """`band_frame`, made: every read's columns of every band's (2, alpha, cols) found at once, their ADC steps,
    read counts and weights filled in (B, 2, alpha, cols) arrays; where two reads fill one column, the last
    read's value stays, as assigning read after read leaves it."""
    adc = (1 << (adc_bits - 1)) - 1
    alpha, cols = plan.start.alpha, plan.start.cols
    scales = np.asarray(full_scale, dtype=np.float64)
    with np.errstate(divide="ignore"):
        tiny = np.flatnonzero(~(np.isfinite(scales) & (adc / scales < np.finfo(np.float32).max)))
    if len(tiny):
        raise InvalidInputError(f"layer {plan.name!r}: an ADC range of {full_scale[tiny[0]]!r} uA has "
                                "steps too small to simulate in float32")
    layout = read_layout(plan)
    width = 2 * alpha * cols
    band_r0, band_r1, band = layout.bands(plan.start.rows)  # the bands in ascending order; each read's
    count = len(band_r0)
    band_heights = band_r1 - band_r0
    first = region_starts(band_heights, 1)  # each band's first row in the buffer: bands laid end to end
    widths = layout.shapes[1]
    offset = (layout.polarity * alpha + layout.slot) * cols + layout.c0  # each read's first column in its band
    columns = ranges(band * width + offset, widths)  # each read's columns, of every band's (2, alpha, cols)
    # reads fill their band's every row: two that fill one device fill one column, and then the last read's
    # value stays, as assigning read after read leaves it
    unique = bool(np.bincount(columns, minlength=count * width).max(initial=0) <= 1)
    step_read = scales / adc  # each read's ADC step, uA
    step, counts = np.ones((count, 2, alpha, cols)), np.zeros((count, width))
    per_column = np.repeat(np.arange(len(band)), widths)  # each column's read
    scatter(step.reshape(-1), columns, step_read[per_column], unique)  # (a fresh array's reshape is a view of it)
    scatter(counts.reshape(-1), columns, layout.reads[per_column].astype(np.float64), unique)
    mask = np.zeros((count, alpha, cols))
    a_read, a_slot, a_column, a_weight = layout.averaged
    averaged = (band[a_read] * alpha + a_slot) * cols + a_column
    scatter(mask.reshape(-1), averaged, a_weight, bool(np.bincount(averaged, minlength=mask.size).max(initial=0)
                                                      <= 1))
    inv_step = (1.0 / step).reshape(count, width)
    weights = np.concatenate([mask * step[:, 0], -mask * step[:, 1]], axis=1)  # G+ adds, G- subtracts
    most = counts.max(axis=1)
    counts = np.where(counts == 0, most[:, None], counts)  # a column slot no read fills (weight 0) takes the
    # others' count
    uneven = counts.min(axis=1) != most
    return _read_only(BandFrame(
        band_r0.tolist(), band_r1.tolist(), first, first[band], offset, int(band_heights.sum()), unique,
        1.0 / step_read,  # a device over its column's ADC step is the device over its read's (the read that fills it)
        inv_step.astype(np.float32), weights.astype(np.float32), counts, counts.astype(np.float32),
        most.astype(np.int64).tolist(), uneven.tolist()))


def row_targets(plan: LayerPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Where the read power's row sums go (`CrossbarExecutor._row_conductance`), made once per plan: each region
    row's N reads (its read's, int64, one per row sum in read order), and the row of the layer's augmented input
    (grouped: group g's row r at g rows + r) each term adds to, with which row sum each term is (None: the row sums
    in order, one term each). A grouped layer's read adds its row sums to every group that reads its block, group
    after group."""
    return plan.derived("row targets", lambda: _read_only(_row_targets(plan)))


def _row_targets(plan: LayerPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    layout = read_layout(plan)
    start = plan.start
    n = len(layout.r0)
    heights = layout.shapes[0]
    times = np.repeat(layout.reads, heights)  # each row sum's N reads
    if start.groups == 1:
        return times, ranges(layout.r0, heights), None
    starts = region_starts(heights, 1)  # each read's first row sum
    reading = [groups_reading(c0, c1, start.cols, start.groups)
               for c0, c1 in zip(layout.c0.tolist(), layout.c1.tolist(), strict=True)]
    first = np.array([r.start for r in reading], dtype=np.int64).reshape(n)
    count = np.array([len(r) for r in reading], dtype=np.int64).reshape(n)
    pair = np.repeat(np.arange(n), count)  # (read, group) pairs in read order
    group = ranges(first, count)
    rows = np.repeat(group * start.rows, heights[pair]) + ranges(layout.r0[pair], heights[pair])
    return times, rows, ranges(starts[pair], heights[pair])


def _read_only(found: _Found) -> _Found:
    """`found` with every numpy array in it (a dataclass's fields, a tuple's items) made read only: it is shared."""
    fields = found.__dict__.values() if hasattr(found, "__dict__") else found
    for value in fields:  # type: ignore[union-attr]
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        elif isinstance(value, tuple):
            _read_only(value)
    return found
