"""Whether a chip is valid: every rule of docs/chip-format.md over a whole chip, with every problem named.

The file loader (io.py) and the `Chip` constructor (model.py) check the same
rules and write the same messages, naming each problem by the JSON path it
has in a chip file. Over the defects, which may number a million, the checks
run in bulk: `screen_defects` finds in numpy which entries are certainly free
of problems and asks the one per-entry check (fields.py, or the loader's) only
about the others, and `store.cross_problems` finds conflicts in bulk and
writes messages only where there are some. A valid chip leaves with its
defects as a `DefectTable`, the columns every later query uses.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lea_compiler.chip.fields import (
    DEFECT_KEYS,
    MAX_ARRAY_ID,
    STUCK_HIGH,
    STUCK_LOW,
    capped,
    defect_problems,
    fields_of,
    name_problem,
)
from lea_compiler.chip.fields import array_problems as array_entry_problems
from lea_compiler.chip.parts import Array, Defect, DeviceModel, Periphery
from lea_compiler.chip.store import (
    DefectTable,
    cross_problems,
    defect_table,
    float64_column,
    int64_column,
    none_mask,
)
from lea_compiler.chip_limits import (
    MAX_ARRAY_COLS,
    MAX_ARRAY_DEVICES,
    MAX_ARRAY_ROWS,
    MAX_ARRAYS,
    MAX_DEVICES,
    MAX_CONDUCTANCE_uS,
    MIN_CONDUCTANCE_uS,
)
from lea_compiler.errors import InvalidChipError

if TYPE_CHECKING:
    from lea_compiler.chip.model import Chip

_NONE_TYPE: type = type(None)
_INT: frozenset[type] = frozenset((int,))
_INT_OR_NONE: frozenset[type] = frozenset((int, _NONE_TYPE))
_STR: frozenset[type] = frozenset((str,))
_G_TYPES: frozenset[type] = frozenset((int, float, _NONE_TYPE))
_STATE_SET = frozenset((STUCK_HIGH, STUCK_LOW))

Fields = tuple[Any, Any, Any, Any, Any]
"""One defect entry's array, row, col, state and g_uS, normalised as `Defect` holds them."""


def arrays_cross_problems(arrays: Sequence[tuple[str, Array]], where: str) -> list[str]:
    """Unique ids and size limits over arrays that are each well-typed (path, array)."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    total = 0
    for path, a in arrays:
        if a.id in seen:
            problems.append(f"{path}.id: {a.id} is used twice (also {seen[a.id]}.id)")
        else:
            seen[a.id] = path
        if a.devices > MAX_ARRAY_DEVICES:
            problems.append(
                f"{path}: {a.rows} x {a.cols} = {a.devices} devices is more than leac accepts "
                f"in one array ({MAX_ARRAY_DEVICES})"
            )
        total += a.devices
    if len(arrays) > MAX_ARRAYS:
        problems.append(f"{where}: {len(arrays)} arrays is more than leac accepts ({MAX_ARRAYS})")
    if total > MAX_DEVICES:
        problems.append(f"{where}: {total} devices in total is more than leac accepts ({MAX_DEVICES})")
    return problems


def _arrays_are_valid(arrays: tuple[Any, ...]) -> bool:
    """True if the arrays certainly pass the per-array checks and `arrays_cross_problems` (found in bulk)."""
    if not arrays or set(map(type, arrays)) != {Array} or len(arrays) > MAX_ARRAYS:
        return False
    ids = list(map(operator.attrgetter("id"), arrays))
    rows = list(map(operator.attrgetter("rows"), arrays))
    cols = list(map(operator.attrgetter("cols"), arrays))
    if set(map(type, ids)) | set(map(type, rows)) | set(map(type, cols)) != {int}:
        return False
    if min(ids) < 0 or max(ids) > MAX_ARRAY_ID or min(rows) < 1 or min(cols) < 1 or len(set(ids)) != len(ids):
        return False
    if max(rows) > MAX_ARRAY_ROWS or max(cols) > MAX_ARRAY_COLS:
        return False
    sizes = list(map(operator.mul, rows, cols))
    return max(sizes) <= MAX_ARRAY_DEVICES and sum(sizes) <= MAX_DEVICES


def is_grid(arrays: Sequence[Array]) -> bool:
    """True if the arrays are a uniform grid: ids 0..n-1 in order, all one size."""
    first = arrays[0]
    return all(a.id == i and (a.rows, a.cols) == (first.rows, first.cols) for i, a in enumerate(arrays))


def _types_in(values: Sequence[Any], allowed: frozenset[type]) -> np.ndarray:
    """Which values are of exactly one of the `allowed` types (a bool mask)."""
    n = len(values)
    if set(map(type, values)) <= allowed:
        return np.ones(n, dtype=bool)
    return np.fromiter(map(allowed.__contains__, map(type, values)), dtype=bool, count=n)


def _where(values: Sequence[Any], ok: np.ndarray, default: object) -> Sequence[Any]:
    """`values` with `default` where not `ok`."""
    if ok.all():
        return values
    return [v if k else default for v, k in zip(values, ok.tolist(), strict=True)]


def _plain(arrays: Sequence[Array], columns: Sequence[Sequence[Any]]) -> tuple[np.ndarray, DefectTable]:
    """Which entries are certainly free of field problems (`defect_problems`), and the table of those.

    An entry is plain when its fields have exactly the types a chip file
    gives (int, None, str, float), its array id and coordinates are not
    negative, it has a row or a col, its state is one of the two and its
    g_uS is none or within the conductance range. The table's rows for the
    other entries are meaningless.
    """
    array_ids, rows, cols, states, g_uS = columns
    n = len(array_ids)
    a_ok = _types_in(array_ids, _INT)
    r_ok = _types_in(rows, _INT_OR_NONE)
    c_ok = _types_in(cols, _INT_OR_NONE)
    s_ok = _types_in(states, _STR)
    g_ok = _types_in(g_uS, _G_TYPES)
    ids = _where(array_ids, a_ok, -1)
    position = {a.id: p for p, a in enumerate(arrays)}
    pos = np.fromiter(map(position.get, ids, repeat(-1)), dtype=np.int64, count=n)
    unknown = np.flatnonzero(a_ok & (pos < 0))  # a known id is a valid one; others must be >= 0
    if unknown.size:
        a_ok[unknown] = [ids[k] >= 0 for k in unknown.tolist()]
    row, row_none = int64_column(_where(rows, r_ok, 0))
    col, col_none = int64_column(_where(cols, c_ok, 0))
    known_states = _where(states, s_ok, "")
    high = np.fromiter(map(STUCK_HIGH.__eq__, known_states), dtype=bool, count=n)
    if not set(known_states) <= _STATE_SET:
        s_ok &= high | np.fromiter(map(STUCK_LOW.__eq__, known_states), dtype=bool, count=n)
    given = _where(g_uS, g_ok, None)
    g = float64_column(given)
    g_none = none_mask(given)
    plain = a_ok & r_ok & c_ok & s_ok & g_ok & ~(row_none & col_none)
    plain &= (row_none | (row >= 0)) & (col_none | (col >= 0))
    plain &= g_none | ((g >= MIN_CONDUCTANCE_uS) & (g <= MAX_CONDUCTANCE_uS))
    return plain, DefectTable(pos, row, col, high, g)


class Screened(NamedTuple):
    """The defect entries free of field problems, in file order."""

    file_index: Sequence[int]
    """Each entry's index in the file (or in `Chip.defects`)."""
    columns: list[Sequence[Any]]
    """Their array ids, rows, cols, states and g_uS, normalised as `Defect` holds them."""
    table: DefectTable
    """Their table (coordinates not yet checked against the arrays: `store.cross_problems`)."""


def screen_defects(
    count: int,
    usable: np.ndarray | None,
    columns: Sequence[Sequence[Any]],
    arrays: Sequence[Array],
    check_entry: Callable[[int], Fields | None],
) -> Screened:
    """The defect entries free of field problems, found in bulk, the others checked one by one.

    Args:
        count: The number of entries.
        usable: Which entries are well-formed containers (a Defect, a JSON
            object with known keys and no nulls), whose fields `columns`
            holds; None if all are.
        columns: The five fields of the usable entries, in their order.
        arrays: The chip's arrays, for the table's array positions.
        check_entry: The per-entry check, called in file order on every
            entry that may have a problem: it records the entry's problems
            and returns its normalised fields if it has none.
    """
    plain, table = _plain(arrays, columns)
    if usable is None and plain.all():
        return Screened(range(count), list(columns), table)
    at = np.arange(count) if usable is None else np.flatnonzero(usable)
    suspect = np.ones(count, dtype=bool)
    suspect[at[plain]] = False
    found: dict[int, Fields] = {}
    for i in np.flatnonzero(suspect).tolist():
        if (fields := check_entry(i)) is not None:
            found[i] = fields
    if not found:
        kept = np.flatnonzero(plain)
        return Screened(at[kept].tolist(), [_pick(c, kept) for c in columns], _rows(table, kept))
    kept_plain = np.flatnonzero(plain)
    index = np.concatenate([at[kept_plain], np.array(list(found), dtype=np.int64)])
    order = np.argsort(index, kind="stable")
    merged = [_pick(c, kept_plain) + [f[k] for f in found.values()] for k, c in enumerate(columns)]
    in_order = order.tolist()
    picked: list[Sequence[Any]] = [[c[k] for k in in_order] for c in merged]
    return Screened(index[order].tolist(), picked, defect_table(arrays, *picked))


def _pick(values: Sequence[Any], at: np.ndarray) -> list[Any]:
    """values[at] for increasing indices `at` (all of them: a copy)."""
    if at.size == len(values):
        return list(values)
    return [values[k] for k in at.tolist()]


def _rows(table: DefectTable, at: np.ndarray) -> DefectTable:
    return DefectTable(*(column[at] for column in table))


def _object_fields(defects: Sequence[object], problems: list[str]) -> Callable[[int], Fields | None]:
    """The per-entry check of the constructor's defects (see `screen_defects`)."""

    def check(i: int) -> Fields | None:
        d = defects[i]
        path = f"defects[{i}]"
        if not isinstance(d, Defect):
            problems.append(f"{path}: {d!r} is not a Defect")
            return None
        if found := defect_problems(fields_of(d), path):
            problems.extend(found)
            return None
        return d.array, d.row, d.col, d.state, d.g_uS

    return check


def chip_problems(chip: Chip) -> tuple[list[str], DefectTable | None]:
    """Every problem of a constructed Chip, with the JSON paths its file would have, and its table if none."""
    problems: list[str] = []
    if not isinstance(chip.device, DeviceModel):
        problems.append(f"device: {chip.device!r} is not a DeviceModel")
    if not isinstance(chip.periphery, Periphery):
        problems.append(f"periphery: {chip.periphery!r} is not a Periphery")
    if chip.name is not None and (p := name_problem(chip.name, "name")):
        problems.append(p)
    if not isinstance(chip.grid, bool):
        problems.append(f"grid: {chip.grid!r} is not a bool")
    if not isinstance(chip.arrays, tuple) or not isinstance(chip.defects, tuple):
        return problems + ["arrays and defects must be sequences of Array and Defect"], None
    arrays: list[Array] = list(chip.arrays)
    if not _arrays_are_valid(chip.arrays):
        good: list[tuple[str, Array]] = []
        for i, a in enumerate(chip.arrays):
            path = f"arrays[{i}]"
            if not isinstance(a, Array):
                problems.append(f"{path}: {a!r} is not an Array")
            elif found := array_entry_problems(fields_of(a), path):
                problems += found
            else:
                good.append((path, a))
        if not chip.arrays:
            problems.append("arrays: the chip has no arrays")
        problems += arrays_cross_problems(good, "arrays")
        arrays = [a for _, a in good]
    defects = chip.defects
    usable = _types_in(defects, frozenset((Defect,)))
    items = defects if usable.all() else [defects[k] for k in np.flatnonzero(usable).tolist()]
    columns: list[Sequence[Any]] = [list(map(operator.attrgetter(key), items)) for key in DEFECT_KEYS]
    screened = screen_defects(
        len(defects), None if usable.all() else usable, columns, arrays, _object_fields(defects, problems)
    )
    if not problems:
        problems += cross_problems(screened.table, arrays, screened.file_index, screened.columns)
    if chip.grid is True and not problems and not is_grid(chip.arrays):
        problems.append("grid: the arrays are not a uniform grid (ids 0..n-1, all one size)")
    return problems, None if problems else screened.table


def checked_table(chip: Chip) -> DefectTable:
    """The table of a valid chip's defects.

    Raises:
        InvalidChipError: the chip has problems; every one is listed (up to `MAX_PROBLEMS`).
    """
    problems, table = chip_problems(chip)
    if table is None:
        raise InvalidChipError("chip", capped(problems))
    return table
