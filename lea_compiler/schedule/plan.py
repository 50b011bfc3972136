"""A schedule as the simulator runs it: each array's programming and each crossbar layer's records, grouped.

`schedule_of` lowers a Program; `schedule_of_stream` takes the records a board file holds (`read_board`), so
a board file and the Program it was emitted from give the same `Schedule`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, TypeVar, cast

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.errors import InvalidInputError
from lea_compiler.geometry import region_starts
from lea_compiler.program import Program
from lea_compiler.programming.devices import total_nominal_pulses
from lea_compiler.schedule.conductances import worst_case_full_scales_uA
from lea_compiler.schedule.layout import Layout, stuck_in_regions
from lea_compiler.schedule.lower import (
    SKIPPED,
    UNUSED,
    ArrayProgram,
    ArrayPrograms,
    FlatDevices,
    Lowered,
    is_crossbar,
    layer_parts,
    prepare,
)
from lea_compiler.schedule.read_pairs import CONVERT_COLUMN, ReadPairs
from lea_compiler.schedule.records import (
    READ_COLUMN,
    Accumulate,
    Bias,
    Combine,
    Convert,
    Digital,
    LayerStart,
    Read,
    Record,
    Scale,
    Skip,
    Write,
)

_T = TypeVar("_T")


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """One crossbar layer's records: its start, each read with its conversion, the combinations, the partial
    sums, the scale and the digital bias (None when the layer has none).

    `reads` is a `read_pairs.ReadPairs` (any other sequence of pairs given is made one): the reads and
    conversions as records and as tables, either made from the other when first asked for. The simulator and the
    cost model read the tables (`read_table`, `read_fields`, `convert_fields`, `full_scales`); lowering gives
    them, so a lowered layer's records are made only for a board file or a test.

    What the simulator derives from the plan alone (where each read lands, its row bands' ADC steps and weights,
    its cost per application) is made once per plan and kept here (`derived`), so that the noise draws of one
    schedule (`simulate_trials`) share it: each draw's `CrossbarLayer` pays only for what depends on its own
    devices."""

    start: LayerStart
    reads: Sequence[tuple[Read, Convert]]
    combines: tuple[Combine, ...]
    accumulate: Accumulate
    scale: Scale
    bias: Bias | None
    _derived: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.reads, ReadPairs):
            object.__setattr__(self, "reads", ReadPairs.of(self.start.name, self.reads))

    @property
    def name(self) -> str:
        return self.start.name

    @property
    def pairs(self) -> ReadPairs:
        """`reads`, typed as what it is."""
        return cast(ReadPairs, self.reads)

    @property
    def read_table(self) -> np.ndarray:
        """(reads, len(READ_FIELDS)) int64: each read's fields `READ_FIELDS` (one_row -1 for none, polarity 0 for
        G+ and 1 for G-), for numpy over all reads at once: lowering's (made from its copy halves, not read by
        read), or gathered from the records once."""
        return self.pairs.table

    def read_fields(self, *names: str) -> tuple[np.ndarray, ...]:
        """The columns `names` (of `READ_FIELDS`) of `read_table`: one field of every read each."""
        table = self.read_table
        return tuple(table[:, READ_COLUMN[name]] for name in names)

    def convert_fields(self, *names: str) -> tuple[np.ndarray, ...]:
        """The columns `names` (of `read_pairs.CONVERT_FIELDS`) of the conversions' table: one field of every
        conversion each (int64, read only)."""
        table = self.pairs.conversions
        return tuple(table[:, CONVERT_COLUMN[name]] for name in names)

    @property
    def full_scales(self) -> np.ndarray:
        """Every conversion's ADC range (uA; float64, NaN where it has none), in read order (read only)."""
        return self.pairs.full_scales

    def derived(self, key: Hashable, make: Callable[[], _T]) -> _T:
        """`make()`, made once per `key` and kept with the plan: for what depends on the plan's records alone
        (and on what `key` names besides), never on a draw of the devices. What it returns is shared by every
        caller, so it must not be written (numpy arrays in it are read only). A `make` that raises keeps nothing."""
        return _derive(self._derived, key, make)


@dataclass(frozen=True, eq=False)
class Schedule:
    """What the chip is programmed with (per array) and what it runs per crossbar layer (in graph order)."""

    levels_uS: np.ndarray
    arrays: Mapping[int, ArrayProgram]  # by id, ascending
    layers: dict[str, LayerPlan]
    digital: tuple[Digital, ...] | None  # None: not lowered (a Program's digital nodes are its graph's)
    origin: Mapping[str, Any] | None = None  # a board file's: model_sha256, chip_fingerprint, compile_options,
    # tolerance_uS, max_pulses
    _windows: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _stuck: dict[int, tuple[Chip, dict[str, tuple[np.ndarray, np.ndarray]]]] = field(default_factory=dict,
                                                                                      init=False, repr=False)
    _levels: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _lowered: dict[str, tuple[Lowered, int, int]] = field(default_factory=dict, init=False, repr=False)  # a
    # lowered Program's layers: lowering's copy halves, and where each layer's devices are among them
    _derived: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False)

    def derived(self, key: Hashable, make: Callable[[], _T]) -> _T:
        """`make()`, made once per `key` and kept with the schedule (as `LayerPlan.derived`): for what depends on
        the schedule (and on what `key` names besides), never on a draw of the devices (the cost model's timeline:
        `backends.cost.estimate_cost`). Shared by every caller: not to be written."""
        return _derive(self._derived, key, make)

    @property
    def lowered_from(self) -> Program | None:
        """The Program `schedule_of` lowered this schedule from; None for a board file's (`schedule_of_stream`),
        or a Program's without crossbar layers, which holds nothing of its own."""
        held = next(iter(self._lowered.values()), None)
        return None if held is None else held[0].program

    def read_conductances(self, name: str, *, stuck: bool = True) -> np.ndarray:
        """Layer `name`'s reads' devices without noise, read after read (`devices.conductances(levels_uS,
        stuck=stuck)[read_windows(name)]`; read only): a lowered Program's from its copy halves'
        (`Lowered.half_conductances`, made when first asked for), not from every array's devices."""
        held = self._lowered.get(name)
        if held is None:
            found = self.devices.conductances(self.levels_uS, stuck=stuck)[self.read_windows(name)]
            found.setflags(write=False)
            return found
        lowered, start, stop = held
        return (lowered.half_conductances if stuck else lowered.half_target_conductances)[start:stop]

    def read_levels(self, name: str) -> np.ndarray:
        """The levels of layer `name`'s reads' devices, read after read (`devices.level[read_windows(name)]`):
        found once (lowering hands over its copy halves')."""
        if name not in self._levels:
            self._levels[name] = self.devices.level[self.read_windows(name)]
        return self._levels[name]

    def read_stuck(self, name: str, chip: Chip) -> tuple[np.ndarray, np.ndarray]:
        """`chip`'s stuck devices in layer `name`'s reads' regions, read after read (`layout.stuck_in_regions`):
        where each is among the devices `read_windows(name)` gives (ascending) and its stuck conductance (read
        only). Found once per chip and layer (lowering hands over the compiled chip's, if it needed them)."""
        held = self._stuck.get(id(chip))
        if held is None or held[0] is not chip:
            held = self._stuck[id(chip)] = (chip, {})
        found = held[1].get(name)
        if found is None:
            array, row, col, rows, cols = self.layers[name].read_fields("array", "row", "col", "rows", "cols")
            found = held[1][name] = stuck_in_regions(chip, array, row, col, rows, cols)
            for part in found:
                part.setflags(write=False)
        return found

    def read_windows(self, name: str) -> np.ndarray:
        """Where layer `name`'s reads' regions are in `devices`, read after read (`layout.Layout.read_windows`):
        found once (a lowered Program's from its copy halves, `Lowered.at`, made when first asked for)."""
        if name not in self._windows:
            held = self._lowered.get(name)
            self._windows[name] = (held[0].at[held[1]:held[2]] if held is not None
                                   else self.devices.layout.read_windows([read for read, _ in self.layers[name].reads]))
        return self._windows[name]

    @cached_property
    def devices(self) -> FlatDevices:
        """Every array's program laid end to end (`lower.FlatDevices`): a lowered Program's own buffers, or
        those of a board file's arrays, made once."""
        if isinstance(self.arrays, ArrayPrograms):
            return self.arrays.devices
        return FlatDevices.of(self.arrays)

    @property
    def layout(self) -> Layout:
        """The used arrays' layout (`devices.layout`, without making the devices' buffers)."""
        return self.arrays.layout if isinstance(self.arrays, ArrayPrograms) else self.devices.layout

    @property
    def as_programmed(self) -> bool:
        """Whether the schedule holds what its devices were left with (`devices.programmed_uS` is not None), found
        without making the devices' buffers when lowering has the answer."""
        if self._lowered:
            return next(iter(self._lowered.values()))[0].programmed_uS is not None
        return self.devices.programmed_uS is not None

    @cached_property
    def program_pulses(self) -> int:
        """Write-verify pulses to program every written device: one per level step up from the lowest, plus one
        (`lea_compiler.programming.devices.nominal_pulses`)."""
        if self._lowered:  # a lowered Program: its copy halves' levels: every written one
            lowered = next(iter(self._lowered.values()))[0]
            return total_nominal_pulses(lowered.values, lowered.unwritten)
        return total_nominal_pulses(self.devices.level)


def _derive(store: dict[Hashable, Any], key: Hashable, make: Callable[[], _T]) -> _T:
    """store[key], made by `make()` when first asked for (a `make` that raises keeps nothing)."""
    if key not in store:
        store[key] = make()
    return cast(_T, store[key])


def schedule_of(program: Program, *, check: bool = True) -> Schedule:
    """The schedule `lea_compiler.schedule.lower` makes from a Program (checked first, unless `check=False`).

    Raises:
        InvalidInputError: the Program contradicts itself, its chip or its graph.
    """
    lowered = prepare(program, check=check)
    layers = {layer.name: layer for layer in program.layers}
    plans = {}
    for node in program.graph.nodes:  # the crossbar layers' records, grouped as `inference_records` yields them
        if is_crossbar(node):
            parts = layer_parts(lowered, node, layers[node.name])
            plans[node.name] = LayerPlan(parts.start, parts.reads, tuple(parts.combines), parts.accumulate,
                                         parts.scale, parts.bias)
    levels = np.asarray(program.chip.device.levels_uS, dtype=np.float64)
    schedule = Schedule(levels, lowered.arrays, plans, None)
    stuck: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in plans:  # a layer's reads are its copy halves, in order: their places are lowering's
        first = lowered.first_half[name]
        start, stop = int(lowered.bounds[first]), int(lowered.bounds[first + len(plans[name].reads)])
        schedule._levels[name] = lowered.values[start:stop]
        schedule._lowered[name] = (lowered, start, stop)
        if lowered.stuck is not None:  # the compiled chip's stuck devices in the layer's halves
            position, g_uS = lowered.stuck
            lo, hi = np.searchsorted(position, [start, stop]).tolist()
            stuck[name] = (position[lo:hi] - start, g_uS[lo:hi])
            for part in stuck[name]:
                part.setflags(write=False)
    if lowered.stuck is not None:
        schedule._stuck[id(program.chip)] = (program.chip, stuck)
    return schedule


def schedule_of_stream(levels_uS: Iterable[float], arrays: Iterable[tuple[int, int, int]],
                       records: Iterable[Record], origin: Mapping[str, Any] | None = None) -> Schedule:
    """The schedule a board file's records describe: `arrays` (id, rows, cols) from its header.

    A `convert` without a range (an older leac wrote null without calibration) gets the range lowering gives it today
    (`worst_case_full_scales_uA`), so an old file runs as it would be emitted now.
    """
    level = {a: np.full((rows, cols), UNUSED, dtype=np.int64) for a, rows, cols in arrays}
    stuck = {a: np.zeros(grid.shape) for a, grid in level.items()}
    target = {a: np.zeros(grid.shape, dtype=np.int64) for a, grid in level.items()}
    inference: list[Record] = []
    digital: list[Digital] = []
    for record in records:
        if isinstance(record, Write):
            level[record.array][record.row, record.col] = record.level
        elif isinstance(record, Skip):
            level[record.array][record.row, record.col] = SKIPPED
            stuck[record.array][record.row, record.col] = record.g_uS
            target[record.array][record.row, record.col] = record.target_level
        elif isinstance(record, Digital):
            digital.append(record)
        elif isinstance(record, (LayerStart, Read, Convert, Combine, Accumulate, Scale, Bias)):
            inference.append(record)
    programs = {a: ArrayProgram(a, level[a], stuck[a], target[a]) for a in sorted(level) if np.any(level[a] != UNUSED)}
    levels = np.asarray(tuple(levels_uS), dtype=np.float64)
    devices = FlatDevices.of(programs)
    plans = {name: _with_ranges(plan, devices, levels) for name, plan in layer_plans(inference).items()}
    return Schedule(levels, ArrayPrograms(devices.layout, lambda: devices), plans, tuple(digital), origin)


def _with_ranges(plan: LayerPlan, devices: FlatDevices, levels: np.ndarray) -> LayerPlan:
    if all(convert.full_scale_uA is not None for _, convert in plan.reads):
        return plan
    numbers: dict[int, int] = {}  # block -> its place in the ranges
    for read, _ in plan.reads:
        numbers.setdefault(read.block, len(numbers))
    reads = [read for read, _ in plan.reads]
    shapes = np.array([(read.rows, read.cols) for read in reads], dtype=np.int64).reshape(-1, 2)
    ranges = worst_case_full_scales_uA(devices.conductances(levels)[devices.layout.read_windows(reads)],
                                       region_starts(shapes[:, 0], shapes[:, 1]), shapes,
                                       [numbers[read.block] for read in reads],
                                       plan.scale.v_read_V).tolist()
    return replace(plan, reads=tuple((read, replace(convert, full_scale_uA=ranges[numbers[read.block]])
                                      if convert.full_scale_uA is None else convert)
                                     for read, convert in plan.reads))


def layer_plans(records: Iterable[Record]) -> dict[str, LayerPlan]:
    """Group a schedule's crossbar records by layer, in order.

    Raises:
        InvalidInputError: a layer's records are incomplete or out of order (`validate_board` says which).
    """
    plans: dict[str, LayerPlan] = {}
    parts: dict[str, dict[str, list[Record]]] = {}
    order: list[str] = []
    for record in records:
        name = record.name if isinstance(record, LayerStart) else getattr(record, "layer", None)
        if name is None:
            continue
        if isinstance(record, LayerStart):
            order.append(name)
        parts.setdefault(name, {}).setdefault(record.op, []).append(record)
    for name in order:
        got = parts[name]
        reads, converts = got.get("read", []), got.get("convert", [])
        if len(got["layer"]) != 1 or len(reads) != len(converts) or len(got.get("accumulate", [])) != 1 \
                or len(got.get("scale", [])) != 1 or len(got.get("bias", [])) > 1:
            raise InvalidInputError(f"layer {name!r}: its schedule records are incomplete (check the file with "
                                    "`leac board validate`)")
        pairs = tuple(zip(cast("list[Read]", reads), cast("list[Convert]", converts), strict=True))
        if any((r.block, r.copy, r.polarity) != (c.block, c.copy, c.polarity) for r, c in pairs):
            raise InvalidInputError(f"layer {name!r}: a convert does not follow its read")
        bias = got.get("bias", [])
        plans[name] = LayerPlan(got["layer"][0], pairs, tuple(got.get("combine", [])),  # type: ignore[arg-type]
                                got["accumulate"][0], got["scale"][0], bias[0] if bias else None)  # type: ignore[arg-type]
    return plans


PROGRAMMING = "the programming section"
"""Where `schedule_differences` finds a difference that is in no crossbar layer's records."""


def schedule_differences(board: Schedule, own: Schedule) -> dict[str, list[str]]:
    """What a board file's schedule (`schedule_of_stream`) runs that differs from `own`, the schedule its Program
    lowers to (`schedule_of`): each record field whose values differ ("convert.full_scale_uA", "scale.x_fs",
    "write.level", ...) with where (the crossbar layers by name, in order, or `PROGRAMMING`), in record order;
    empty when the file runs exactly what the Program's lowering gives, value for value.

    Whatever made the file differ is found: another calibration (the input full scales and ADC ranges), another
    stuck-device compensation (the column scales and digital biases), another placement or selection, or an
    edited file or Program. It compares what the simulator executes: the device levels, the arrays, each
    device's level, each skipped device's stuck conductance and target level, and per crossbar layer its start,
    its reads' and conversions' tables and ranges, its combinations, partial sums, scale and bias (numpy over
    the devices and the reads; Python over the layers and blocks). Not compared: the digital nodes (the caller
    compares them with the Program's graph), and what the simulator takes from neither (a write's tolerance and
    pulse limit, which `leac emit` chooses; a skip's state and copy half, which its position gives).
    The two schedules must have the same crossbar layers, in order (the caller checks them first)."""
    found: dict[str, list[str]] = {}

    def differ(what: str, where: str) -> None:
        places = found.setdefault(what, [])
        if where not in places:
            places.append(where)

    for what in _programming_differences(board, own):
        differ(what, PROGRAMMING)
    for name, want in own.layers.items():
        for what in _layer_differences(board.layers[name], want):
            differ(what, name)
    return found


def _programming_differences(board: Schedule, own: Schedule) -> list[str]:
    """The fields of the programming section (and the header's levels) whose values differ."""
    out = []
    if not np.array_equal(board.levels_uS, own.levels_uS):
        out.append("levels_uS")
    got, want = board.layout, own.layout
    if not (np.array_equal(got.array_ids, want.array_ids) and np.array_equal(got.shapes, want.shapes)):
        return [*out, "select_array.array"]  # other arrays: the devices cannot be set side by side
    got_devices, want_devices = board.devices, own.devices
    if not np.array_equal(got_devices.level, want_devices.level):
        return [*out, "write.level"]  # other devices written or skipped, or other levels
    # the same devices skipped: their stuck conductances and target levels, held for those devices only (a
    # board file's in device order, lowering's in copy-half order)
    order = np.argsort(want_devices.marked, kind="stable")
    marked = want_devices.marked[order]
    if not np.array_equal(got_devices.marked, marked) \
            or not np.array_equal(got_devices.marked_uS, want_devices.marked_uS[order]):
        out.append("skip.g_uS")
    elif not np.array_equal(got_devices.marked_target, want_devices.marked_target[order]):
        out.append("skip.target_level")
    return out


def _layer_differences(got: LayerPlan, want: LayerPlan) -> list[str]:
    """The fields of one crossbar layer's records whose values differ, in record order."""
    out = _record_differences(got.start, want.start)
    got_reads, want_reads = got.read_table, want.read_table
    if got_reads.shape != want_reads.shape:
        out.append("read")
    else:
        out += [f"read.{name}" for name, column in READ_COLUMN.items()
                if not np.array_equal(got_reads[:, column], want_reads[:, column])]
        got_converts, want_converts = got.pairs.conversions, want.pairs.conversions
        out += [f"convert.{name}" for name, column in CONVERT_COLUMN.items()
                if not np.array_equal(got_converts[:, column], want_converts[:, column])]
        if not np.array_equal(got.full_scales, want.full_scales, equal_nan=True):
            out.append("convert.full_scale_uA")
    if got.combines != want.combines:
        if len(got.combines) != len(want.combines):
            out.append("combine")
        else:
            out += [f"combine.{f.name}" for f in fields(Combine)
                    if any(getattr(a, f.name) != getattr(b, f.name)
                           for a, b in zip(got.combines, want.combines, strict=True))]
    out += _record_differences(got.accumulate, want.accumulate)
    out += _record_differences(got.scale, want.scale)
    if (got.bias is None) != (want.bias is None):
        out.append("bias")
    elif got.bias is not None and want.bias is not None:
        out += _record_differences(got.bias, want.bias)
    return out


def _record_differences(got: Record, want: Record) -> list[str]:
    """"op.field" of each field of two records of one kind whose values differ."""
    return [f"{want.op}.{f.name}" for f in fields(want) if getattr(got, f.name) != getattr(want, f.name)]
