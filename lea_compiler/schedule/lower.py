"""Lowering: a Program as the schedule a chip runs, the one place where the crossbar layer's arithmetic is fixed.

The programming section says, per device a copy half occupies, which level is written or that it is skipped
(stuck when compiled); the inference schedule says what the periphery does per input vector, node by node:
a crossbar layer's reads, conversions, combinations, partial sums, scale and bias (docs/board-format.md).
Every read reads its region `Program.reads` times (`leac compile --reads`), its digitised currents averaged.
The board writer serialises these records; the simulator executes them (`lea_compiler.schedule.execute`), so
what is simulated is what the board runs.

Input and ADC ranges, the same for both: a Program calibrated at compile time (`leac compile --calibrate`)
carries one input full scale per layer and one ADC range per block, and the records carry them. Without
calibration, each input vector is scaled by its own largest magnitude (`scale.x_fs` null: the per-vector rule,
which the periphery computes for every vector), and each block's ADC range is `worst_case_full_scales_uA`: the
largest current any of its columns can carry for an input within the DAC's range, so nothing clips on the
chip compiled for (a stuck-high device of another chip, or write noise, may still push a column past it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from lea_compiler.errors import InvalidInputError
from lea_compiler.geometry import find_sorted
from lea_compiler.ir import Node, Value
from lea_compiler.ops import LEAC_DOMAIN
from lea_compiler.problems import collected
from lea_compiler.program import Layer, Program, ProgramBlock
from lea_compiler.program.checks import checked_halves
from lea_compiler.schedule.conductances import noiseless_conductances, worst_case_full_scales_uA
from lea_compiler.schedule.digital import digital_record, dtype_name
from lea_compiler.schedule.halves import lay_out_halves
from lea_compiler.schedule.layout import Layout
from lea_compiler.schedule.read_pairs import CONVERT_COLUMN, CONVERT_FIELDS, ReadPairs
from lea_compiler.schedule.records import (
    MAX_PROBLEMS,
    READ_COLUMN,
    READ_FIELDS,
    STATES,
    Accumulate,
    Bias,
    Combine,
    LayerStart,
    Read,
    Record,
    Scale,
    SelectArray,
    Skip,
    Write,
    builder,
)

UNUSED = -2
"""`ArrayProgram.level` of a device no copy half occupies."""
SKIPPED = -1
"""`ArrayProgram.level` of a device left unprogrammed because it was stuck when compiled."""


@dataclass(frozen=True, eq=False)
class ArrayProgram:
    """One array as the programming section leaves it: per device the level written (>= 0), `SKIPPED` or
    `UNUSED`; for every skipped device its conductance on the chip compiled for and the level it should have
    had (0 elsewhere)."""

    array: int
    level: np.ndarray  # (rows, cols) signed integers (a lowered Program's: its level dtype)
    stuck_uS: np.ndarray  # (rows, cols) float64
    target: np.ndarray  # (rows, cols) signed integers (a lowered Program's: its level dtype)
    programmed_uS: np.ndarray | None = None  # as-programmed Program: (rows, cols) what each device holds, NaN unused
    _whole: dict[tuple[bytes, bool], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def conductance(self, read: Read, levels_uS: np.ndarray, *, stuck: bool = True) -> np.ndarray:
        """The conductances a read's region holds without noise: levels where written, and where skipped the
        stuck values (what the Program represents, `program.represented_matrix`), or with `stuck=False` the
        levels the skipped devices should have had. A fresh array; the whole array's is computed once (lowering,
        the cost model and the simulator each ask for every region)."""
        return self.conductances(levels_uS, stuck=stuck)[region_window(read)].copy()

    def conductances(self, levels_uS: np.ndarray, *, stuck: bool = True) -> np.ndarray:
        """The whole array's conductances as `conductance` gives a region's: computed once, read only."""
        return _cached_conductances(self._whole, self.level, self.stuck_uS, self.target, levels_uS, stuck)


@dataclass(frozen=True, eq=False)
class FlatDevices:
    """Every array of a schedule as one flat buffer per field of `ArrayProgram` (`layout.Layout`): what the
    simulator and lowering gather all regions from at once. The arrays' `ArrayProgram`s hold the same values
    (a lowered Program's are views of these buffers).

    `stuck_uS` and `target` are 0 but at the few devices `marked` (the skipped ones), so they are held as those
    devices' values and made whole when first asked for: the simulator never asks, and a whole float64 buffer
    with a few percent of its devices set is a page fault per page (milliseconds on a million devices)."""

    layout: Layout
    level: np.ndarray  # flat signed integers
    marked: np.ndarray  # flat indices of the devices whose stuck_uS or target may be non-zero (lowering: the
    # skipped devices, in half order)
    marked_uS: np.ndarray  # their stuck_uS (float64)
    marked_target: np.ndarray  # their target (signed integers)
    programmed_uS: np.ndarray | None  # as-programmed Program: flat float64
    _whole: dict[tuple[bytes, bool], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def stuck_uS(self) -> np.ndarray:
        """Flat float64: each skipped device's conductance on the chip compiled for, 0 elsewhere."""
        whole = np.zeros(self.layout.size)
        whole[self.marked] = self.marked_uS
        return whole

    @cached_property
    def target(self) -> np.ndarray:
        """Flat signed integers: the level each skipped device should have had, 0 elsewhere."""
        whole = np.zeros(self.layout.size, dtype=self.marked_target.dtype)
        whole[self.marked] = self.marked_target
        return whole

    @classmethod
    def of(cls, arrays: Mapping[int, ArrayProgram]) -> FlatDevices:
        """The arrays' programs laid end to end, in the mapping's order."""
        layout = Layout.of({a: program.level.shape for a, program in arrays.items()})
        values = list(arrays.values())

        def flat(name: str, dtype: type) -> np.ndarray:
            parts: list[np.ndarray] = [np.asarray(getattr(program, name), dtype=dtype).ravel() for program in values]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        programmed = None
        if any(program.programmed_uS is not None for program in values):
            programmed = np.concatenate([np.full(p.level.size, np.nan) if p.programmed_uS is None
                                         else np.asarray(p.programmed_uS, dtype=np.float64).ravel() for p in values])
        stuck_uS, target = flat("stuck_uS", np.float64), flat("target", np.int64)
        marked = np.flatnonzero((stuck_uS != 0) | (target != 0))
        return cls(layout, flat("level", np.int64), marked, stuck_uS[marked], target[marked], programmed)

    def conductances(self, levels_uS: np.ndarray, *, stuck: bool = True) -> np.ndarray:
        """`ArrayProgram.conductances` of every array, flat: computed once, read only."""
        return _cached_conductances(self._whole, self.level, self.stuck_uS, self.target, levels_uS, stuck)


def _cached_conductances(cache: dict[tuple[bytes, bool], np.ndarray], level: np.ndarray, stuck_uS: np.ndarray,
                         target: np.ndarray, levels_uS: np.ndarray, stuck: bool) -> np.ndarray:
    """`noiseless_conductances` of devices, kept in `cache`: where not written, the stuck values `stuck_uS` (or,
    with `stuck=False`, the target levels)."""
    key = (np.asarray(levels_uS).tobytes(), stuck)
    if key not in cache:
        whole = noiseless_conductances(level, levels_uS, (lambda i: stuck_uS.reshape(-1)[i]) if stuck
                                       else (lambda i: levels_uS[target.reshape(-1)[i]]))
        whole.setflags(write=False)
        cache[key] = whole
    return cache[key]


def region_window(read: Read) -> tuple[slice, slice]:
    """The (rows, cols) slices of a read's region in its array."""
    return slice(read.row, read.row + read.rows), slice(read.col, read.col + read.cols)


# --------------------------------------------------------------------------
# The programming section


@dataclass(frozen=True, eq=False)
class _Half:
    """One copy half (G+ or G-) of one block as the programming section sees it."""

    layer: str
    block: int
    copy: int
    polarity: str
    array: int
    row: int
    col: int
    levels: np.ndarray  # (rows, cols) level index; -1: stuck, not programmed
    targets: np.ndarray  # (rows, cols) the block's target level index
    programmed_uS: np.ndarray | None = None  # as-programmed: what each device holds


class ArrayPrograms(Mapping[int, ArrayProgram]):
    """Each array's `ArrayProgram`, by id, as views of one `FlatDevices`: made when first asked for (a schedule
    of thousands of small arrays is simulated from the flat buffers and rarely asks for one array)."""

    def __init__(self, layout: Layout, devices: Callable[[], FlatDevices]) -> None:
        self.layout = layout
        self._devices = devices  # made when first asked for (lowering's are: `Lowered.devices`)
        self._made: dict[int, ArrayProgram] = {}

    @cached_property
    def devices(self) -> FlatDevices:
        """Every array's program laid end to end."""
        return self._devices()

    def __getitem__(self, array_id: int) -> ArrayProgram:
        made = self._made.get(array_id)
        if made is None:
            if array_id not in self.layout.offset:
                raise KeyError(array_id)
            d, view = self.devices, self.layout.view
            made = ArrayProgram(array_id, view(d.level, array_id), view(d.stuck_uS, array_id),
                                view(d.target, array_id),
                                None if d.programmed_uS is None else view(d.programmed_uS, array_id))
            self._made[array_id] = made
        return made

    def __iter__(self) -> Iterator[int]:
        return iter(self.layout.ids)

    def __len__(self) -> int:
        return len(self.layout.ids)

    def __contains__(self, array_id: object) -> bool:
        return array_id in self.layout.offset


@dataclass(frozen=True, eq=False)
class Lowered:
    """A checked Program ready to lower: its arrays' layout, its copy halves' levels half after half, and, made
    when first asked for, each array's program (`devices` laid end to end, `arrays` per array), where the halves'
    devices are in it (`at`), its copy halves and who occupies each device. The simulator asks for none of
    these: it programs the halves' devices in half order (their levels `values`, the stuck devices `stuck`)."""

    program: Program
    layout: Layout
    regions: np.ndarray  # (halves, 3): each half's array, row and col
    bounds: np.ndarray  # half i's devices are values[bounds[i]:bounds[i + 1]] (and at[...])
    values: np.ndarray  # every half's levels, half after half, each row by row
    shapes: np.ndarray  # (halves, 2): each half's rows and cols
    unwritten: np.ndarray  # where `values` < 0 (the skipped devices, in a checked Program)
    skipped: np.ndarray  # where `values` is SKIPPED: the skipped devices, in half order
    marked_uS: np.ndarray  # their conductances on the chip compiled for (0: not stuck there)
    programmed_uS: np.ndarray | None  # an as-programmed Program's `FlatDevices.programmed_uS`
    stuck: tuple[np.ndarray, np.ndarray] | None = None  # the chip's stuck devices in the halves, half after half
    # (`layout.stuck_in_regions`: positions in `values`, conductances), if they were needed
    targets: _Targets | None = None  # the blocks' targets, if there are skipped devices (`_target_pairs`)

    @cached_property
    def marked(self) -> np.ndarray:
        """Where the skipped devices are in `devices` (`FlatDevices.marked`), in half order: found when first asked
        for (the simulator does not ask)."""
        array, row, col = self.regions.T
        return self.layout.devices_at(array, row, col, self.shapes[:, 0], self.shapes[:, 1], self.skipped)

    @cached_property
    def marked_target(self) -> np.ndarray:
        """The levels the skipped devices should have had, in half order (the Program's level dtype): found when
        first asked for (`prepare` checked that the blocks' targets fit their halves)."""
        level_dtype = np.promote_types(self.values.dtype, np.int8)  # int8 mostly: `chip.level_index_dtype`
        if self.targets is None:
            return np.zeros(0, dtype=level_dtype)
        return _skipped_targets(self.targets, self.bounds, self.skipped).astype(level_dtype)

    @cached_property
    def at(self) -> np.ndarray:
        """Every copy half's devices in `devices`, half after half (`halves` order), row by row."""
        array, row, col = self.regions.T
        return self.layout.windows(array, row, col, self.shapes[:, 0], self.shapes[:, 1])

    @cached_property
    def devices(self) -> FlatDevices:
        """Every used array's program laid end to end: the halves' levels where they are, `UNUSED` elsewhere."""
        level = np.full(self.layout.size, UNUSED, dtype=np.promote_types(self.values.dtype, np.int8))
        level[self.at] = self.values
        return FlatDevices(self.layout, level, self.marked, self.marked_uS, self.marked_target, self.programmed_uS)

    @cached_property
    def half_conductances(self) -> np.ndarray:
        """`devices.conductances(levels_uS)[at]` of the chip's levels: every half's conductances without noise,
        half after half (copy halves are read in `halves` order, so a block's reads are a slice of it)."""
        found = self._conductances(0, self.values.size)
        found.setflags(write=False)
        return found

    def half_conductances_of(self, lo: int, hi: int) -> np.ndarray:
        """`half_conductances[lo:hi]`, found for those devices only unless the whole is (lowering's worst-case ADC
        ranges go through the halves part by part: `conductances.worst_case_full_scales_uA`)."""
        if "half_conductances" in self.__dict__:
            return self.half_conductances[lo:hi]
        return self._conductances(lo, hi)

    def _conductances(self, lo: int, hi: int) -> np.ndarray:
        """The conductances without noise of the halves' devices [lo, hi) (`noiseless_conductances`)."""
        levels = np.asarray(self.program.chip.device.levels_uS, dtype=np.float64)
        first, last = np.searchsorted(self.unwritten, [lo, hi]).tolist()
        others = self.unwritten[first:last]
        # the unwritten halves' devices are the skipped ones, which `prepare` marked in half order (an unchecked
        # Program with other negative levels: each device's own stuck_uS, the whole buffer made for it)
        marked = self.marked_uS
        return noiseless_conductances(self.values[lo:hi], levels,
                                      lambda i: marked[first:last] if self.unwritten.size == marked.size
                                      else self.devices.stuck_uS[self.at[others]], others - lo)

    @cached_property
    def half_target_conductances(self) -> np.ndarray:
        """`devices.conductances(levels_uS, stuck=False)[at]`: `half_conductances` with each skipped device at the
        level it should have had instead of its stuck conductance."""
        levels = np.asarray(self.program.chip.device.levels_uS, dtype=np.float64)
        marked = self.marked_target
        found = noiseless_conductances(self.values, levels, lambda i: levels[marked] if i.size == marked.size
                                       else levels[self.devices.target[self.at[i]]], self.unwritten)
        found.setflags(write=False)
        return found

    @cached_property
    def first_half(self) -> dict[str, int]:
        """Each layer's first copy half in `halves` order (its blocks' halves follow, copy by copy, G+ then G-)."""
        first, at = {}, 0
        for layer in self.program.layers:
            first[layer.name] = at
            at += sum(2 * len(block.copies) for block in layer.blocks)
        return first

    @cached_property
    def arrays(self) -> ArrayPrograms:
        """Each used array's program, by id (ascending)."""
        return ArrayPrograms(self.layout, lambda: self.devices)

    @cached_property
    def halves(self) -> tuple[_Half, ...]:
        """Every copy half, layer by layer, block by block, copy by copy, G+ then G-."""
        return tuple(_halves(self.program))

    @cached_property
    def owners(self) -> dict[int, np.ndarray]:
        """Per used array: the index in `halves` of each device's half, -1 where none."""
        layout = self.layout
        owner = np.full(layout.size, -1, dtype=np.int64)
        owner[self.at] = np.repeat(np.arange(len(self.bounds) - 1, dtype=np.int64), np.diff(self.bounds))
        return {array_id: layout.view(owner, array_id) for array_id in layout.ids}


def prepare(program: Program, *, check: bool = True) -> Lowered:
    """Check the Program against itself, its chip and its graph, and lay out its devices.

    A Program written by `leac compile` always passes; a damaged or hand-edited one gets every problem listed
    (`program.checks.program_problems`, which `Program.load` runs too). `check=False` skips the checks for a
    caller that has them done (the simulator: `Program.load` or the compiler made the Program).

    Raises:
        InvalidInputError: the Program contradicts itself, its chip or its graph.
    """
    blocks = [block for layer in program.layers for block in layer.blocks]
    laid_out = None
    if check:  # the checks lay the halves out (`halves.lay_out_halves`) and hand them on
        problems, laid_out = checked_halves(program)
        collected(problems, MAX_PROBLEMS).raise_if_any("the Program does not agree with its chip or graph")
    if laid_out is None:
        laid_out = lay_out_halves(program.chip, program.layers)
        # the checks (`program_problems`: the same regions_overlap) refuse halves that share a device; unchecked,
        # say so rather than let one half overwrite another
        if not check and laid_out.overlap():
            raise InvalidInputError("the Program's copy halves overlap on the chip (check it with `leac show`)")
    # every copy half in `_halves` order: layer by layer, block by block, copy by copy, G+ then G-
    halves, layout, bounds, values = laid_out.halves, laid_out.layout, laid_out.bounds, laid_out.values
    programmed = None
    if program.as_programmed:
        programmed = np.full(layout.size, np.nan)
        programmed[layout.windows(laid_out.array, laid_out.row, laid_out.col, laid_out.rows, laid_out.cols)] = \
            np.concatenate([np.full(np.size(half.levels), np.nan) if half.programmed_uS is None
                            else np.asarray(half.programmed_uS, dtype=np.float64).ravel() for half in halves])
    # the skipped devices (a few percent): the level each should have had, and its conductance on the chip
    # compiled for (not stuck there: 0)
    unwritten = np.flatnonzero(values < 0)
    skipped = unwritten[values[unwritten] == SKIPPED]
    stuck_uS = np.zeros(0)
    stuck = targets = None
    if skipped.size:
        targets = _target_pairs(blocks, bounds)  # the targets fit the halves (`Lowered.marked_target` reads them)
        stuck = laid_out.stuck
        if np.array_equal(stuck[0], skipped):  # every stuck device skipped, as compiled for this chip
            stuck_uS = stuck[1].copy()
        else:
            found, hit = find_sorted(stuck[0], skipped)
            stuck_uS = np.where(hit, stuck[1][found] if stuck[0].size else 0.0, 0.0)
    regions = np.column_stack([laid_out.array, laid_out.row, laid_out.col]).reshape(-1, 3)
    return Lowered(program, layout, regions, bounds, values, laid_out.shapes, unwritten, skipped, stuck_uS,
                   programmed, stuck, targets)


class _Targets(NamedTuple):
    """Every block's targets (G+, G-), their sizes, and per copy half its target's place among them."""

    targets: list[np.ndarray]
    sizes: np.ndarray
    pair: np.ndarray


def _target_pairs(blocks: Sequence[ProgramBlock], bounds: np.ndarray) -> _Targets:
    """The blocks' targets (`_Targets`), for the copy halves laid end to end (half i's levels at
    bounds[i]:bounds[i + 1]).

    Raises:
        InvalidInputError: a block's target differs in size from its copy halves (an unchecked Program)."""
    targets = [np.asarray(target) for block in blocks for target in (block.target_pos, block.target_neg)]
    target_sizes = np.fromiter(map(np.size, targets), dtype=np.int64, count=len(targets))
    # half i is G+ (i even) or G- of its block (a block's halves come in pairs, so the parity is the polarity)
    block = np.repeat(np.arange(len(blocks)), [2 * len(block.copies) for block in blocks])
    pair = 2 * block + np.arange(block.size) % 2
    if not np.array_equal(target_sizes[pair], np.diff(bounds)):
        raise InvalidInputError("a block's target levels differ in shape from its copy halves (check the Program "
                                "with `leac show`)")
    return _Targets(targets, target_sizes, pair)


def _skipped_targets(targets: _Targets, bounds: np.ndarray, skipped: np.ndarray) -> np.ndarray:
    """The target levels of the devices at `skipped` in the copy halves' levels laid end to end (half i's at
    bounds[i]:bounds[i + 1]): each from its block's target of the half's polarity, which the block's copies
    share (so the targets are gathered once per block, not once per copy)."""
    half = np.searchsorted(bounds, skipped, side="right") - 1
    first = np.cumsum(targets.sizes) - targets.sizes
    return np.concatenate(targets.targets, axis=None)[first[targets.pair[half]] + skipped - bounds[half]]


def _halves(program: Program) -> Iterator[_Half]:
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                pairs = (("pos", copy.pos, block.target_pos), ("neg", copy.neg, block.target_neg))
                for polarity, half, target in pairs:
                    region = half.region
                    yield _Half(layer.name, block.index, copy.copy, polarity, region.array, region.row, region.col,
                                np.asarray(half.levels), np.asarray(target), half.programmed_uS)


def programming_records(lowered: Lowered, tolerance: float, max_pulses: int) -> Iterator[Record]:
    """select_array, then write/skip for each of its devices by row then column; arrays by id."""
    chip = lowered.program.chip
    levels = tuple(chip.device.levels_uS)
    for array_id, program in lowered.arrays.items():
        owner = lowered.owners[array_id]
        used = np.flatnonzero(owner.ravel() >= 0)  # row-major: by row, then column
        yield SelectArray(array_id, int(used.size))
        state, g_uS = chip.stuck_map(array_id)
        width = owner.shape[1]
        for flat, level in zip(used.tolist(), program.level.ravel()[used].tolist(), strict=True):
            row, col = divmod(flat, width)
            if level >= 0:
                yield Write(array_id, row, col, level, levels[level], tolerance, max_pulses)
                continue
            half = lowered.halves[int(owner[row, col])]
            yield Skip(array_id, row, col, STATES[0] if state[row, col] > 0 else STATES[1], float(g_uS[row, col]),
                       half.layer, half.block, half.copy, half.polarity,
                       int(half.targets[row - half.row, col - half.col]))


# --------------------------------------------------------------------------
# The inference schedule


def inference_records(lowered: Lowered) -> Iterator[Record]:
    """The inference schedule, in graph node order."""
    program = lowered.program
    layers = {layer.name: layer for layer in program.layers}
    for node in program.graph.nodes:
        if is_crossbar(node):
            yield from _layer_schedule(lowered, node, layers[node.name])
        else:
            yield digital_record(node)


def is_crossbar(node: Node) -> bool:
    """Whether a graph node runs on the crossbars (a `leac.MVM`); every other node runs in the periphery."""
    return node.op_type == "MVM" and node.domain == LEAC_DOMAIN


def _vectors_per_sample(value: Value | None) -> int | None:
    """Vectors the layer multiplies per sample: the dimensions between the batch and the last."""
    if value is None or value.shape is None:
        return None
    dims = value.shape[1:-1]
    if not all(isinstance(d, int) for d in dims):
        return None
    count = int(np.prod([int(d) for d in dims], dtype=np.int64)) if dims else 1  # type: ignore[arg-type]
    return count if count >= 1 else None


def column_scale_and_bias(node: Node, layer: Layer, *, compensated: bool = True
                          ) -> tuple[tuple[float, ...], np.ndarray | None]:
    """The scale the periphery divides by and the digital bias it adds, with the stuck-device
    compensation folded in: scale_j / gain_j, and bias_j + offset_j (`compensated=False`: without it)."""
    scale = np.ravel(np.asarray(layer.scale, dtype=np.float64))
    bias = node.input(2)
    values = None if layer.bias_row or bias is None else np.ravel(np.asarray(bias.const, dtype=np.float64))
    if compensated and layer.column_gain is not None:
        scale = scale / np.asarray(layer.column_gain, dtype=np.float64)
    if compensated and layer.column_offset is not None and np.any(np.asarray(layer.column_offset) != 0):
        values = (values if values is not None else 0.0) + np.asarray(layer.column_offset, dtype=np.float64)
    return tuple(float(v) for v in scale), values


class LayerParts(NamedTuple):
    """One crossbar layer's records, made once (`layer_parts`): the start; every read with its conversion (block
    by block, `pairs[b]` of them for block b: tables, the records made when first asked for); per block its
    combine; the accumulate, the scale and the digital bias (None without one)."""

    start: LayerStart
    reads: ReadPairs
    pairs: list[int]
    combines: list[Combine]
    accumulate: Accumulate
    scale: Scale
    bias: Bias | None


def _layer_schedule(lowered: Lowered, node: Node, layer: Layer) -> Iterator[Record]:
    """layer, then per block read+convert per copy half and combine; accumulate, scale, bias."""
    parts = layer_parts(lowered, node, layer)
    yield parts.start
    at = 0
    for pairs, combine in zip(parts.pairs, parts.combines, strict=True):
        for read, convert in parts.reads[at:at + pairs]:
            yield read
            yield convert
        at += pairs
        yield combine
    yield parts.accumulate
    yield parts.scale
    if parts.bias is not None:
        yield parts.bias


def layer_parts(lowered: Lowered, node: Node, layer: Layer) -> LayerParts:
    """The records of crossbar layer `layer` (graph node `node`) of a prepared Program, grouped: the reads and
    conversions as tables, made from the copy halves and the blocks (`read_pairs.ReadPairs`)."""
    program = lowered.program
    x, bias = node.input(0), node.input(2)
    inputs = layer.rows - int(layer.bias_row)
    scale_uS, bias_values = column_scale_and_bias(node, layer)
    mode = "row" if layer.bias_row else ("digital" if bias_values is not None else "none")
    periphery = program.chip.periphery
    adcs = periphery.adcs_per_array
    start = LayerStart(
        name=layer.name,
        input=x.name if x is not None else "",
        output=node.outputs[0].name,
        rows=layer.rows,
        cols=layer.cols,
        inputs=inputs,
        bias_row=layer.bias_row,
        bias=mode,
        alpha=layer.alpha,
        beta=layer.beta,
        encoding=layer.encoding,
        scale_uS=scale_uS,
        blocks=len(layer.blocks),
        row_blocks=tuple(layer.row_bounds),
        col_blocks=tuple(layer.col_bounds),
        vectors_per_sample=_vectors_per_sample(x),
        groups=int(node.attr("groups", 1)),
    )
    pairs = [2 * len(block.copies) for block in layer.blocks]
    shared = _block_fields(layer, inputs)  # what a block's reads share, once per block (thousands of reads)
    table = _read_table(lowered, layer, pairs, shared, program.reads)
    ranges = np.array([np.nan if r is None else r for r in _block_ranges(lowered, layer, pairs)], dtype=np.float64)
    col = table[:, READ_COLUMN["col"]]
    cols = table[:, READ_COLUMN["cols"]]
    conversions = np.empty((len(table), len(CONVERT_FIELDS)), dtype=np.int64)
    conversions[:, CONVERT_COLUMN["col_start"]] = col
    conversions[:, CONVERT_COLUMN["col_stop"]] = col + cols
    conversions[:, CONVERT_COLUMN["adcs"]] = adcs
    conversions[:, CONVERT_COLUMN["rounds"]] = -(-cols // adcs)
    reads = ReadPairs.from_tables(layer.name, table, conversions, np.repeat(ranges, pairs))
    combines = [_combine(layer.name, block.index, block.col_start, block.col_stop, chosen, layer.beta)
                for block, chosen in zip(layer.blocks, chosen_copies(layer.blocks), strict=True)]
    accumulate = Accumulate(layer.name, layer.cols, tuple((b.index, b.col_start, b.col_stop) for b in layer.blocks))
    scale = Scale(layer.name, scale_uS, periphery.v_read_V, 1.0 if layer.bias_row else 0.0, layer.input_full_scale)
    bias_record = None
    if mode == "digital":
        assert bias_values is not None
        dtype = bias.const.dtype if bias is not None and bias.const is not None else np.dtype(np.float32)
        bias_record = Bias(layer.name, tuple(float(v) for v in bias_values.tolist()), dtype_name(dtype))
    return LayerParts(start, reads, pairs, combines, accumulate, scale, bias_record)


_combine = builder(Combine)  # a few hundred per layer on small arrays: `records.builder`


def _block_fields(layer: Layer, inputs: int) -> list[tuple[int, int, int, int, int, int | None]]:
    """What the reads of each block of `layer` share: rows, cols, block index, x_start, x_stop (its slice of the
    `inputs` input rows) and one_row (the bias row's place in the region, or None)."""
    return [(*block.shape, block.index, min(block.row_start, inputs), min(block.row_stop, inputs),
             layer.rows - 1 - block.row_start if layer.bias_row and block.row_stop == layer.rows else None)
            for block in layer.blocks]


def _read_table(lowered: Lowered, layer: Layer, pairs: list[int],
                shared: list[tuple[int, int, int, int, int, int | None]], reads_each: int) -> np.ndarray:
    """The layer's reads' fields (`records.READ_FIELDS`: array, row, col, rows, cols, block, copy, x_start, x_stop,
    one_row or -1, reads, polarity 0 for G+ and 1 for G-), from its copy halves' places and its blocks' fields
    (`_block_fields`), not read by read: what `plan.read_table` gathers from the records."""
    first = lowered.first_half[layer.name]
    halves = slice(first, first + sum(pairs))
    blocks = layer.blocks
    per_block = np.array([(*fields[:5], -1 if fields[5] is None else fields[5]) for fields in shared],
                         dtype=np.int64).reshape(-1, 6)
    copies = np.repeat(np.array([copy.copy for b in blocks for copy in b.copies], dtype=np.int64), 2)  # G+, G-
    n = copies.size
    column = [READ_COLUMN[name] for name in ("array", "row", "col")]
    shared_columns = [READ_COLUMN[name] for name in ("rows", "cols", "block", "x_start", "x_stop", "one_row")]
    table = np.empty((n, len(READ_FIELDS)), dtype=np.int64)
    table[:, column] = lowered.regions[halves]
    table[:, shared_columns] = np.repeat(per_block, pairs, axis=0)  # a read's rows and cols are its block's
    table[:, READ_COLUMN["copy"]] = copies
    table[:, READ_COLUMN["reads"]] = reads_each
    table[:, READ_COLUMN["polarity"]] = np.arange(n) % 2  # G+ then G- of each copy
    table.setflags(write=False)
    return table


def _block_ranges(lowered: Lowered, layer: Layer, pairs: list[int]) -> list[float | None]:
    """Each block's ADC range: its calibrated one, or else its worst case (`worst_case_full_scales_uA`), found for
    every such block at once; a block's reads are its `pairs[b]` copy halves, whose conductances
    `Lowered.half_conductances` holds half after half from the layer's first (`Lowered.first_half`), found part
    by part (`Lowered.half_conductances_of`: no buffer of every device, which the simulator does not ask for)."""
    ranges = [block.adc_full_scale_uA for block in layer.blocks]
    worst = np.array([full_scale is None for full_scale in ranges], dtype=bool)
    if not worst.any():
        return ranges
    first = lowered.first_half[layer.name]
    halves = slice(first, first + sum(pairs))
    block = np.repeat(np.arange(len(pairs)), pairs)  # each of the layer's halves' block
    chosen = worst[block]
    numbers = np.cumsum(worst) - 1  # the worst-case blocks numbered 0, 1, ...
    found = worst_case_full_scales_uA(lowered.half_conductances_of, lowered.bounds[halves][chosen],
                                      lowered.shapes[halves][chosen], numbers[block[chosen]],
                                      lowered.program.chip.periphery.v_read_V).tolist()
    for b in np.flatnonzero(worst).tolist():
        ranges[b] = found[int(numbers[b])]
    return ranges


def chosen_copies(blocks: Sequence[ProgramBlock]) -> list[tuple[tuple[int, ...], ...]]:
    """Per block, per output column, the copies its combination averages (`block.selection`, copies x columns,
    marks them): each distinct column pattern worked out once, over all of the blocks with the same copies (a
    layer's blocks, every one of their columns in one `np.unique`)."""
    chosen: list[tuple[tuple[int, ...], ...]] = [()] * len(blocks)
    groups: dict[tuple[int, ...], list[int]] = {}
    for b, block in enumerate(blocks):
        ids = tuple([copy.copy for copy in block.copies])
        shape = np.shape(block.selection)
        if len(shape) != 2 or shape[0] != len(ids):  # the checks refuse it; unchecked, say so
            raise InvalidInputError(f"block {block.index}: its selection of shape {shape} is not one row per copy "
                                    f"of its {len(ids)} (check the Program with `leac show`)")
        groups.setdefault(ids, []).append(b)
    for ids, members in groups.items():
        selections = [np.asarray(blocks[b].selection, dtype=bool) for b in members]
        columns = np.concatenate(selections, axis=1).T  # every column's pattern, block after block
        if len(ids) <= 62:  # each pattern as the integer its bits spell (np.unique of rows sorts 100x slower)
            _, first, which = np.unique(columns @ (np.int64(1) << np.arange(len(ids), dtype=np.int64)),
                                        return_index=True, return_inverse=True)
            patterns = columns[first]
        else:
            patterns, which = np.unique(columns, axis=0, return_inverse=True)
        copies = np.array(ids, dtype=np.int64)
        found = [tuple(copies[pattern].tolist()) for pattern in patterns]
        per_column = list(map(found.__getitem__, which.ravel().tolist()))
        at = 0
        for b, selection in zip(members, selections, strict=True):
            chosen[b] = tuple(per_column[at:at + selection.shape[1]])
            at += selection.shape[1]
    return chosen
