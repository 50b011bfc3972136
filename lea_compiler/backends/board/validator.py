"""The board validator: the checks of a `leac-board` file that span records.

Order (programming before the schedule, each array's devices after its `select_array`), coordinates inside
the header's arrays, devices that appear twice, write targets against the header's levels, value names that
exist, every copy half of every layer read, and the header's counts. `reader.check_board` feeds it each
record that parsed, in file order.
"""

from __future__ import annotations

from array import array as PackedArray
from collections import Counter
from collections.abc import Sequence

import numpy as np

from lea_compiler.backends.board.records import (
    _PROGRAMMING_OPS,
    POLARITIES,
    RECORD_TYPES,
    STATES,
    Accumulate,
    Bias,
    BoardHeader,
    Combine,
    Convert,
    Digital,
    LayerStart,
    Read,
    Record,
    Scale,
    SelectArray,
    Skip,
    Write,
    _show,
)

MAX_VALUE_NAMES = 1_000_000
"""Most distinct value names the validator tracks (graph inputs and record outputs): a model has thousands;
past this the file is refused as a problem instead of growing the set without bound."""


class _Devices:
    """The (array, row, col) of every write and skip record with its line, 17 bytes each (a dict took ~150):
    duplicates are found once, at the end, by sorting. Coordinates too large to pack into 64 bits (no real
    chip has them) go to a dict."""

    def __init__(self) -> None:
        self.keys = PackedArray("Q")  # array << 44 | row << 22 | col: 2**20 > chip.MAX_ARRAYS, 4M rows, cols
        self.lines = PackedArray("q")
        self.skips = PackedArray("b")
        self.other: dict[tuple[int, int, int], int] = {}
        self.other_duplicates: list[tuple[int, str, int, int, int, int]] = []

    def add(self, record: Write | Skip, lineno: int) -> None:
        a, r, c = record.array, record.row, record.col
        if a < 2**20 and r < 2**22 and c < 2**22:
            self.keys.append(a << 44 | r << 22 | c)
            self.lines.append(lineno)
            self.skips.append(isinstance(record, Skip))
        elif (a, r, c) in self.other:
            self.other_duplicates.append((lineno, record.op, a, r, c, self.other[(a, r, c)]))
        else:
            self.other[(a, r, c)] = lineno

    def duplicates(self, most: int) -> tuple[list[str], int]:
        """The first `most` (by line) "line N: write: device (...) already appears on line M" problems, and
        how many repeated devices there are in all."""
        found = list(self.other_duplicates)
        keys = np.frombuffer(self.keys, dtype=np.uint64)
        total = len(found)
        if keys.size > 1:
            order = np.argsort(keys, kind="stable")  # by device, then by line (records come in line order)
            ordered = keys[order]
            repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
            total += repeat.size
            first = np.searchsorted(ordered, ordered[repeat])  # each repeated device's first occurrence
            shown = np.argsort(order[repeat], kind="stable")[:most]  # the earliest repeats
            lines = np.frombuffer(self.lines, dtype=np.int64)
            skips = np.frombuffer(self.skips, dtype=np.int8)
            for at, base in zip(order[repeat][shown], order[first][shown], strict=True):
                key = int(keys[at])
                found.append((int(lines[at]), "skip" if skips[at] else "write", key >> 44,
                              (key >> 22) & (2**22 - 1), key & (2**22 - 1), int(lines[base])))
        found.sort()
        texts = [f"line {line}: {op}: device (array {a}, row {r}, col {c}) already appears on line {base}"
                 for line, op, a, r, c, base in found[:most]]
        return texts, total


class _Validator:
    """The checks that span records: order, coordinates, duplicates, references and counts.

    Each record that parsed is fed to `check` in file order; `finish` runs the
    end-of-file checks. Without a valid header the checks that need it
    (array sizes, levels, counts) are skipped; the header's own problems are
    already reported.
    """

    def __init__(self, header: BoardHeader | None) -> None:
        self.header = header
        self.arrays = {a.id: a for a in header.arrays} if header else None
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.devices = _Devices()
        self.selected: tuple[SelectArray, int] | None = None
        self.selected_seen = 0
        self.orphans: list[int] = []  # line and count of devices with no array selected
        self.schedule_line: int | None = None
        self.defined: set[str] = {v["name"] for v in header.inputs} if header else set()
        self.too_many_names = False
        self.layer: tuple[LayerStart, int] | None = None
        self.layer_reads: set[tuple[int, int, str]] = set()
        self.layer_steps: Counter[str] = Counter()
        self.combined: set[int] = set()
        self.previous: Record | None = None

    def check(self, record: Record, lineno: int) -> list[str]:
        where = f"line {lineno}: {record.op}"
        self.counts[record.op] += 1
        problems: list[str] = []
        if record.op in _PROGRAMMING_OPS:
            if self.schedule_line is not None:
                problems.append(
                    f"{where}: programming records must all come before the inference "
                    f"schedule (it began on line {self.schedule_line})"
                )
        elif self.schedule_line is None:
            self.schedule_line = lineno
            problems += self._close_selection()
        if isinstance(record, SelectArray):
            problems += self._close_selection()
            problems += self._array_known(record.array, f"{where}.array")
            self.selected, self.selected_seen = (record, lineno), 0
        elif isinstance(record, (Write, Skip)):
            problems += self._device(record, where, lineno)
        elif isinstance(record, (Digital, LayerStart)):
            problems += self._close_layer()
            problems += self._values(record, where, lineno)
        else:
            problems += self._layer_step(record, where)
        self.previous = record
        return problems

    def finish(self) -> list[str]:
        problems = self._close_selection() + self._close_layer()
        header = self.header
        if header is None:
            return problems
        for op in RECORD_TYPES:
            if header.counts[op] != self.counts[op]:
                problems.append(
                    f"line 1: header.counts.{op}: {header.counts[op]}, but the file has "
                    f"{self.counts[op]} {op} records"
                )
        total = sum(self.counts.values())
        if header.records != total:
            problems.append(
                f"line 1: header.records: {header.records}, but the file has {total} records"
            )
        for state in STATES:
            if header.skipped[state] != self.skipped[state]:
                problems.append(
                    f"line 1: header.skipped.{state}: {header.skipped[state]}, but the file "
                    f"skips {self.skipped[state]} {state} devices"
                )
        for value in header.outputs:
            if value["name"] not in self.defined and not self.too_many_names:
                problems.append(
                    f"line 1: header.outputs: {value['name']!r} is not produced by any record"
                )
        return problems

    # ---------------------------------------------------------------- programming
    def _array_known(self, array: int, where: str) -> list[str]:
        if self.arrays is not None and array not in self.arrays:
            return [f"{where}: {array} is not one of the header's arrays ({sorted(self.arrays)})"]
        return []

    def _close_selection(self) -> list[str]:
        if self.orphans:  # one problem for a run of devices with no array selected
            first, count = self.orphans
            self.orphans = []
            more = f" (nor before the {count - 1} write/skip records after it)" if count > 1 else ""
            return [f"line {first}: no select_array before this write/skip{more}"]
        if self.selected is None:
            return []
        record, lineno = self.selected
        self.selected = None
        if record.devices != self.selected_seen:
            return [
                f"line {lineno}: select_array.devices: {record.devices}, but {self.selected_seen} "
                "write/skip records follow it"
            ]
        return []

    def _device(self, record: Write | Skip, where: str, lineno: int) -> list[str]:
        problems: list[str] = []
        if isinstance(record, Skip):
            self.skipped[record.state] += 1
        if self.selected is None:
            self.orphans = [self.orphans[0], self.orphans[1] + 1] if self.orphans else [lineno, 1]
        elif self.selected[0].array != record.array:
            problems.append(
                f"{where}.array: {record.array} is not the selected array "
                f"{self.selected[0].array} (select_array on line {self.selected[1]})"
            )
        else:
            self.selected_seen += 1
        arr = self.arrays.get(record.array) if self.arrays is not None else None
        if self.arrays is not None and arr is None:
            problems += self._array_known(record.array, f"{where}.array")
        if arr is not None:
            if record.row >= arr.rows:
                problems.append(
                    f"{where}.row: {record.row} is outside array {arr.id} ({arr.rows} rows)"
                )
            if record.col >= arr.cols:
                problems.append(
                    f"{where}.col: {record.col} is outside array {arr.id} ({arr.cols} columns)"
                )
        self.devices.add(record, lineno)
        header = self.header
        if isinstance(record, Skip) and header is not None and record.target_level >= len(header.levels_uS):
            problems.append(
                f"{where}.target_level: {record.target_level} is not a level index (the header has "
                f"{len(header.levels_uS)} levels)"
            )
        if isinstance(record, Write) and header is not None:
            levels = header.levels_uS
            if record.level >= len(levels):
                problems.append(
                    f"{where}.level: {record.level} is not a level index (the header has "
                    f"{len(levels)} levels)"
                )
            elif record.target_uS != levels[record.level]:
                problems.append(
                    f"{where}.target_uS: {record.target_uS} is not levels_uS[{record.level}] = "
                    f"{levels[record.level]}"
                )
            if record.tolerance_uS != header.tolerance_uS:
                problems.append(
                    f"{where}.tolerance_uS: {record.tolerance_uS} is not the header's "
                    f"{header.tolerance_uS}"
                )
            if record.max_pulses != header.max_pulses:
                problems.append(
                    f"{where}.max_pulses: {record.max_pulses} is not the header's "
                    f"{header.max_pulses}"
                )
        return problems

    # ------------------------------------------------------------------- schedule
    def _values(self, record: Digital | LayerStart, where: str, lineno: int) -> list[str]:
        problems: list[str] = []
        if isinstance(record, Digital):
            for i, name in enumerate(record.inputs):
                if name is not None and name not in self.defined and name not in record.constants \
                        and not self.too_many_names:
                    problems.append(
                        f"{where}.inputs[{i}]: {name!r} is not a graph input, a constant or an "
                        "earlier record's output"
                    )
            problems += self._define(record.outputs, where)
            return problems
        if record.input not in self.defined and not self.too_many_names:
            problems.append(
                f"{where}.input: {record.input!r} is not a graph input or an earlier "
                "record's output"
            )
        problems += self._define([record.output], where)
        if record.rows != record.inputs + int(record.bias_row):
            problems.append(
                f"{where}.rows: {record.rows} is not inputs ({record.inputs}) "
                f"+ {int(record.bias_row)} bias row"
            )
        if (record.bias == "row") != record.bias_row:
            problems.append(
                f"{where}.bias: {record.bias!r} disagrees with bias_row = {_show(record.bias_row)}"
            )
        if len(record.scale_uS) != record.cols:
            problems.append(
                f"{where}.scale_uS: {len(record.scale_uS)} scales for {record.cols} columns"
            )
        if record.beta > record.alpha:
            problems.append(f"{where}.beta: {record.beta} is more than alpha = {record.alpha}")
        if record.cols % record.groups:
            problems.append(f"{where}.groups: {record.groups} groups do not divide the {record.cols} columns")
        elif record.vectors_per_sample is not None and record.vectors_per_sample % record.groups:
            problems.append(f"{where}.groups: {record.vectors_per_sample} vectors per sample are not runs of "
                            f"{record.groups} (one per group)")
        for key, bounds, size in (
            ("row_blocks", record.row_blocks, record.rows),
            ("col_blocks", record.col_blocks, record.cols),
        ):
            if any(stop > size for _, stop in bounds):
                problems.append(f"{where}.{key}: a range ends beyond {size}")
        self.layer = (record, lineno)
        self.layer_reads, self.layer_steps, self.combined = set(), Counter(), set()
        return problems

    def _define(self, names: Sequence[str], where: str) -> list[str]:
        """Record value names as defined; past `MAX_VALUE_NAMES` one problem, and no more names kept."""
        if self.too_many_names:
            return []
        self.defined.update(names)
        if len(self.defined) <= MAX_VALUE_NAMES:
            return []
        self.too_many_names = True
        return [f"{where}: more than {MAX_VALUE_NAMES} distinct value names, more than leac checks"]

    def _close_layer(self) -> list[str]:
        if self.layer is None:
            return []
        layer, lineno = self.layer
        self.layer = None
        where = f"line {lineno}: layer {layer.name!r}"
        missing = [
            (b, c, p)
            for b in range(layer.blocks)
            for c in range(layer.alpha)
            for p in POLARITIES
            if (b, c, p) not in self.layer_reads
        ]
        problems = []
        if missing:
            b, c, p = missing[0]
            problems.append(
                f"{where}: {len(missing)} copy halves are never read (the first: block {b} copy "
                f"{c} {p})"
            )
        uncombined = sorted(set(range(layer.blocks)) - self.combined)
        if uncombined:
            problems.append(f"{where}: blocks {uncombined} are never combined")
        expected = {"accumulate": 1, "scale": 1, "bias": int(layer.bias == "digital")}
        for op, count in expected.items():
            if self.layer_steps[op] != count:
                problems.append(
                    f"{where}: has {self.layer_steps[op]} {op} records, expected {count}"
                )
        return problems

    def _layer_step(self, record: Record, where: str) -> list[str]:
        if self.layer is None:
            return [f"{where}: not inside a layer (no layer record before it)"]
        layer = self.layer[0]
        name = getattr(record, "layer", None)
        if name != layer.name:
            return [f"{where}.layer: {_show(name)} is not the current layer {layer.name!r}"]
        self.layer_steps[record.op] += 1
        problems: list[str] = []
        if isinstance(record, (Read, Convert, Combine)):
            if record.block >= layer.blocks:
                problems.append(
                    f"{where}.block: {record.block} is not below the layer's {layer.blocks} blocks"
                )
        if isinstance(record, (Read, Convert)) and record.copy >= layer.alpha:
            problems.append(f"{where}.copy: {record.copy} is not below alpha = {layer.alpha}")
        if isinstance(record, Read):
            problems += self._read(record, layer, where)
        elif isinstance(record, Convert):
            problems += self._convert(record, where)
        elif isinstance(record, Combine):
            problems += self._combine(record, layer, where)
        elif isinstance(record, Accumulate):
            if record.cols != layer.cols:
                problems.append(f"{where}.cols: {record.cols} is not the layer's {layer.cols}")
            for i, (block, _, stop) in enumerate(record.terms):
                if block >= layer.blocks or stop > layer.cols:
                    problems.append(
                        f"{where}.terms[{i}]: {list(record.terms[i])} is outside the layer"
                    )
        elif isinstance(record, Scale):
            if len(record.scale_uS) != layer.cols:
                problems.append(
                    f"{where}.scale_uS: {len(record.scale_uS)} scales for {layer.cols} columns"
                )
            if record.x_fs_min < 0:
                problems.append(f"{where}.x_fs_min: {record.x_fs_min} is negative")
        elif isinstance(record, Bias):
            if layer.bias != "digital":
                problems.append(f"{where}: the layer's bias is {layer.bias!r}, not 'digital'")
            if len(record.values) != layer.cols:
                problems.append(
                    f"{where}.values: {len(record.values)} values for {layer.cols} columns"
                )
        return problems

    def _read(self, record: Read, layer: LayerStart, where: str) -> list[str]:
        problems = self._array_known(record.array, f"{where}.array")
        arr = self.arrays.get(record.array) if self.arrays is not None else None
        if arr is not None and (
            record.row + record.rows > arr.rows or record.col + record.cols > arr.cols
        ):
            problems.append(
                f"{where}: region rows {record.row}..{record.row + record.rows - 1}, cols "
                f"{record.col}..{record.col + record.cols - 1} is outside array {arr.id} "
                f"({arr.rows} x {arr.cols})"
            )
        driven = record.x_stop - record.x_start + (record.one_row is not None)
        if record.x_start > record.x_stop or record.x_stop > layer.inputs:
            problems.append(
                f"{where}: x_start..x_stop {record.x_start}..{record.x_stop} is not a slice of the "
                f"layer's {layer.inputs} inputs"
            )
        elif driven != record.rows:
            problems.append(f"{where}: drives {driven} rows but the region has {record.rows}")
        if record.one_row is not None and (not layer.bias_row or record.one_row >= record.rows):
            problems.append(f"{where}.one_row: {record.one_row} is not a bias row of this region")
        key = (record.block, record.copy, record.polarity)
        if key in self.layer_reads:
            problems.append(f"{where}: block {key[0]} copy {key[1]} {key[2]} is read twice")
        self.layer_reads.add(key)
        return problems

    def _convert(self, record: Convert, where: str) -> list[str]:
        read = self.previous
        if not isinstance(read, Read) or (read.block, read.copy, read.polarity, read.array) != (
            record.block,
            record.copy,
            record.polarity,
            record.array,
        ):
            return [
                f"{where}: does not follow the read of the same block, copy, polarity and array"
            ]
        problems = []
        if (record.col_start, record.col_stop) != (read.col, read.col + read.cols):
            problems.append(
                f"{where}: columns {record.col_start}..{record.col_stop} are not the columns read "
                f"({read.col}..{read.col + read.cols})"
            )
        header = self.header
        if header is not None and record.adcs != header.periphery["adcs_per_array"]:
            problems.append(
                f"{where}.adcs: {record.adcs} is not the header's adcs_per_array "
                f"({header.periphery['adcs_per_array']})"
            )
        width = max(record.col_stop - record.col_start, 0)
        if record.rounds != -(-width // record.adcs):
            problems.append(f"{where}.rounds: {record.rounds} is not ceil({width} / {record.adcs})")
        return problems

    def _combine(self, record: Combine, layer: LayerStart, where: str) -> list[str]:
        problems = []
        self.combined.add(record.block)
        if record.col_stop > layer.cols or record.col_stop - record.col_start != len(record.copies):
            problems.append(
                f"{where}: columns {record.col_start}..{record.col_stop} do not match the "
                f"{len(record.copies)} copy lists within the layer's {layer.cols} columns"
            )
        if record.divisor > layer.alpha:
            problems.append(f"{where}.divisor: {record.divisor} is more than alpha = {layer.alpha}")
        for j, chosen in enumerate(record.copies):
            if (
                len(chosen) != record.divisor
                or any(c >= layer.alpha for c in chosen)
                or list(chosen) != sorted(set(chosen))
            ):
                problems.append(
                    f"{where}.copies[{j}]: {list(chosen)} is not {record.divisor} distinct "
                    f"ascending copy indices below alpha = {layer.alpha}"
                )
                break
        return problems
