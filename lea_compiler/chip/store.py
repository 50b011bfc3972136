"""The defects of a chip as numpy columns: the one representation every chip query and check works on.

A chip of 1024 arrays of 128 x 128 with 5% stuck devices has ~840,000 defect
entries; handling them one at a time takes tens of seconds. So a `Chip` keeps
its defects as a `DefectTable` (one numpy column per field, in file order)
beside the `Defect` objects, and everything that looks at many defects at once
uses the columns: the conflict checks (`cross_problems`), the stuck maps and
defect counts (`MapPlan`). Messages are still written entry by entry, but only
for the entries the bulk checks found may be bad (`_walk_cross_problems`).
"""

from __future__ import annotations

import contextlib
import gc
import math
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from lea_compiler.chip.fields import STUCK_HIGH, STUCK_LOW
from lea_compiler.chip.parts import Array, Defect, DeviceModel, trusted_defect
from lea_compiler.geometry import find_sorted

_FAR = 2**62
"""Where a row or column too large for int64 is put: outside every array (and never negative)."""


class DefectTable(NamedTuple):
    """The defects of a chip as numpy columns, in the chip's order."""

    pos: np.ndarray
    """int64: position of the defect's array in `Chip.arrays`; -1 for an id that is no array's."""
    row: np.ndarray
    """int64: the row; -1 where the defect marks a whole column."""
    col: np.ndarray
    """int64: the column; -1 where the defect marks a whole row."""
    high: np.ndarray
    """bool: stuck high (else stuck low)."""
    g_uS: np.ndarray
    """float64: the defect's g_uS; NaN where it gives none."""


def int64_column(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Ints or None as (int64 with -1 for None, the None mask); ints beyond int64 are clipped to +-2**62."""
    n = len(values)
    missing = none_mask(values)
    filled = [-1 if v is None else v for v in values] if missing.any() else values
    try:
        column = np.array(filled, dtype=np.int64)
    except OverflowError:
        column = np.array([min(max(v, -_FAR), _FAR) for v in filled], dtype=np.int64)
    return column.reshape(n), missing


def none_mask(values: Sequence[Any]) -> np.ndarray:
    """Which of these numbers or None are None (counted first: a column is mostly all or none None)."""
    n = len(values)
    nones = values.count(None)
    if nones in (0, n):
        return np.full(n, nones > 0)
    return np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=n)


def float64_column(values: Sequence[Any]) -> np.ndarray:
    """Real numbers or None as float64 (NaN for None; an int too large for a float is inf)."""
    n = len(values)
    if n and values.count(None) == n:
        return np.full(n, np.nan)
    try:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64).reshape(n)
    except OverflowError:
        return np.array([math.nan if v is None else v if abs(v) < 2**1023 else math.inf for v in values],
                        dtype=np.float64)  # fmt: skip


def defect_table(
    arrays: Sequence[Array], array_ids: Sequence[Any], rows: Sequence[Any], cols: Sequence[Any],
    states: Sequence[Any], g_uS: Sequence[Any],
) -> DefectTable:  # fmt: skip
    """The table of defect fields given as columns, each entry free of field problems (`defect_problems`)."""
    position = {a.id: p for p, a in enumerate(arrays)}
    n = len(array_ids)
    pos = np.fromiter(map(position.get, array_ids, repeat(-1)), dtype=np.int64, count=n)
    row, _ = int64_column(rows)
    col, _ = int64_column(cols)
    high = np.fromiter(map(STUCK_HIGH.__eq__, states), dtype=bool, count=n)
    return DefectTable(pos, row, col, high, float64_column(g_uS))


def unique(values: np.ndarray) -> np.ndarray:
    """np.unique(values) for int64, by sorting (numpy 2's hash-based unique is far slower here)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _two_states(keys: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The keys that appear both stuck high and stuck low."""
    if keys.size < 2:
        return keys[:0]
    marked = unique(keys * 2 + high)
    both = (marked[1:] >> 1) == (marked[:-1] >> 1)
    return marked[1:][both] >> 1


def _in_other_state(keys: np.ndarray, high: np.ndarray, line_keys: np.ndarray, line_high: np.ndarray) -> np.ndarray:
    """Which keys are among `line_keys` with the other state (a bool mask)."""
    if keys.size == 0 or line_keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    marked = unique(line_keys * 2 + line_high)
    wanted = keys * 2 + (~high).astype(np.int64)
    return find_sorted(marked, wanted)[1]


def _conflicting_arrays(
    pos: np.ndarray, row: np.ndarray, col: np.ndarray, high: np.ndarray, arrays: Sequence[Array]
) -> np.ndarray:
    """Which arrays (a bool per position) have a device marked with two states.

    The defects must lie inside their arrays (-1 for an absent row or col).
    A device can be covered twice only by: two device entries, a device entry
    and a marked row or column through it, two entries for the same row or
    column, or a marked row and a marked column of one array (which always
    cross). Each is checked for both states at once over the whole chip.
    """
    m = len(arrays)
    bad = np.zeros(m, dtype=bool)
    if pos.size == 0:
        return bad
    rows = np.array([a.rows for a in arrays], dtype=np.int64)
    cols = np.array([a.cols for a in arrays], dtype=np.int64)
    row_line = col < 0  # a whole row (its row is given)
    col_line = row < 0  # a whole column
    device = ~(row_line | col_line)
    sizes = rows * cols
    device_start = np.cumsum(sizes) - sizes
    row_start = np.cumsum(rows) - rows
    col_start = np.cumsum(cols) - cols
    d_pos, d_high = pos[device], high[device]
    d_key = device_start[d_pos] + row[device] * cols[d_pos] + col[device]
    r_key = row_start[pos[row_line]] + row[row_line]
    c_key = col_start[pos[col_line]] + col[col_line]
    r_high, c_high = high[row_line], high[col_line]
    for keys, states, starts in (
        (d_key, d_high, device_start),
        (r_key, r_high, row_start),
        (c_key, c_high, col_start),
    ):
        both = _two_states(keys, states)  # keys of array p lie in [starts[p], starts[p + 1])
        bad[np.searchsorted(starts, both, side="right") - 1] = True
    bad[d_pos[_in_other_state(row_start[d_pos] + row[device], d_high, r_key, r_high)]] = True
    bad[d_pos[_in_other_state(col_start[d_pos] + col[device], d_high, c_key, c_high)]] = True
    if r_key.size and c_key.size:

        def present(where: np.ndarray) -> np.ndarray:
            return np.bincount(pos[where], minlength=m) > 0

        rows_high, rows_low = present(row_line & high), present(row_line & ~high)
        cols_high, cols_low = present(col_line & high), present(col_line & ~high)
        bad |= (rows_high & cols_low) | (rows_low & cols_high)
    return bad


Entry = tuple[int, Any, Any, Any, Any]
"""(index in the file, array, row, col, state) of one defect entry free of field problems."""


def suspect_entries(table: DefectTable, arrays: Sequence[Array]) -> np.ndarray:
    """The entries `cross_problems` walks, in order (none: the entries have no such problem): those with an
    unknown array or outside their array, and every entry of an array where some device has two states."""
    if table.pos.size == 0:
        return np.zeros(0, dtype=np.int64)
    pos, row, col = table.pos, table.row, table.col
    rows = np.array([a.rows for a in arrays], dtype=np.int64)
    cols = np.array([a.cols for a in arrays], dtype=np.int64)
    known = pos >= 0
    safe = np.where(known, pos, 0)
    inside = known & (row < rows[safe]) & (col < cols[safe])
    bad = _conflicting_arrays(pos[inside], row[inside], col[inside], table.high[inside], arrays)
    return np.flatnonzero(~inside | bad[safe])


def cross_problems(
    table: DefectTable, arrays: Sequence[Array], index: Sequence[int], columns: Sequence[Any]
) -> list[str]:
    """Coordinates inside their array, and no device marked with two different states.

    Found in bulk; the messages are written by walking, in file order, only
    the entries that may have a problem: an entry with an unknown array or
    outside its array gets its message and leaves no trace for later
    entries, and conflicts are found within one array only, so walking just
    those entries and every entry of the arrays with a conflict writes the
    messages a walk over every entry would write, in its order.

    Args:
        table: The entries' table (`defect_table`).
        arrays: The chip's arrays, each free of problems.
        index: Each entry's index in the file (or in `Chip.defects`), for the messages.
        columns: The entries' array ids, rows, cols and states (each a sequence), as given.
    """
    walk = suspect_entries(table, arrays).tolist()
    if not walk:
        return []
    array_ids, rows_given, cols_given, states = columns[:4]
    entries = [(index[k], array_ids[k], rows_given[k], cols_given[k], states[k]) for k in walk]
    return _walk_cross_problems(entries, {a.id: a for a in arrays})


def _walk_cross_problems(entries: Iterable[Entry], arrays: Mapping[int, Array]) -> list[str]:
    """The messages of `cross_problems`, comparing each entry with the entries before it.

    Device against device, a device against a marked row or column through
    it, a row against a row, a column against a column, and a row against
    every column it crosses.
    """
    problems: list[str] = []
    dev: dict[tuple[int, int, int], tuple[str, int]] = {}
    row_line: dict[tuple[int, int], dict[str, int]] = {}
    col_line: dict[tuple[int, int], dict[str, int]] = {}
    dev_in_row: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
    dev_in_col: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
    rows_of_array: dict[int, dict[str, tuple[int, int]]] = {}
    cols_of_array: dict[int, dict[str, tuple[int, int]]] = {}
    for i, a, r, c, s in entries:
        path = f"defects[{i}]"
        arr = arrays.get(a)
        if arr is None:
            problems.append(f"{path}.array: {a} is not the id of any array")
            continue
        bad = False
        if r is not None and r >= arr.rows:
            problems.append(f"{path}.row: {r} is outside array {arr.id} ({arr.rows} rows)")
            bad = True
        if c is not None and c >= arr.cols:
            problems.append(f"{path}.col: {c} is outside array {arr.id} ({arr.cols} columns)")
            bad = True
        if bad:
            continue
        other = STUCK_LOW if s == STUCK_HIGH else STUCK_HIGH
        conflict: str | None = None
        if r is not None and c is not None:
            where = f"device (array {a}, row {r}, col {c}) is marked {s} here"
            earlier = dev.get((a, r, c))
            if earlier is not None and earlier[0] == other:
                conflict = f"{where} and {other} in defects[{earlier[1]}]"
            elif other in row_line.get((a, r), {}):
                j = row_line[(a, r)][other]
                conflict = f"{where} and lies in row {r}, marked {other} in defects[{j}]"
            elif other in col_line.get((a, c), {}):
                j = col_line[(a, c)][other]
                conflict = f"{where} and lies in column {c}, marked {other} in defects[{j}]"
            if conflict is None:
                dev.setdefault((a, r, c), (s, i))
                dev_in_row.setdefault((a, r), {}).setdefault(s, (i, c))
                dev_in_col.setdefault((a, c), {}).setdefault(s, (i, r))
        else:
            if c is None:
                kind, line, cross = "row", r, "column"
                same, devs, crossing = row_line, dev_in_row, cols_of_array
            else:
                kind, line, cross = "column", c, "row"
                same, devs, crossing = col_line, dev_in_col, rows_of_array
            where = f"{kind} {line} of array {a} is marked {s} here"
            if other in same.get((a, line), {}):
                conflict = f"{where} and {other} in defects[{same[(a, line)][other]}]"
            elif other in devs.get((a, line), {}):
                j, k = devs[(a, line)][other]
                rc = f"row {line}, col {k}" if kind == "row" else f"row {k}, col {line}"
                conflict = f"{where} but device ({rc}) is marked {other} in defects[{j}]"
            elif other in crossing.get(a, {}):
                j, k = crossing[a][other]
                conflict = f"{where} and crosses {cross} {k}, marked {other} in defects[{j}]"
            if conflict is None:
                same.setdefault((a, line), {}).setdefault(s, i)
                own = rows_of_array if kind == "row" else cols_of_array
                own.setdefault(a, {}).setdefault(s, (i, line))
        if conflict is not None:
            problems.append(f"{path}: {conflict}")
    return problems


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many objects that form no cycles.

    Otherwise allocating a million objects on a heap that already holds
    millions triggers full collections that scan the whole heap again and
    again: about half the time of building the defects of a large chip.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def trusted_defects(
    array_ids: Sequence[int], rows: Sequence[int | None], cols: Sequence[int | None], table: DefectTable,
    g_uS: Sequence[Any],
) -> list[Defect]:  # fmt: skip
    """Defects from columns free of problems whose table is `table`, normalised as Defect's __init__ would."""
    states = list(map((STUCK_LOW, STUCK_HIGH).__getitem__, table.high.tolist()))
    if int in set(map(type, g_uS)):
        g_uS = [float(v) if type(v) is int else v for v in g_uS]  # as Defect's __init__ does
    with gc_paused():
        return list(map(trusted_defect, array_ids, rows, cols, states, g_uS))


def table_defects(table: DefectTable, arrays: Sequence[Array]) -> list[Defect]:
    """The Defects of a valid chip whose table is `table`, as `trusted_defects` makes them from the chip's
    columns: the array's id, None for a whole line's absent row or col (-1) and for no g_uS (NaN)."""
    ids = np.array([a.id for a in arrays], dtype=np.int64)[table.pos].tolist()
    rows: list[int | None] = table.row.tolist()
    cols: list[int | None] = table.col.tolist()
    if (table.row < 0).any() or (table.col < 0).any():
        rows = [None if r < 0 else r for r in rows]  # type: ignore[operator]
        cols = [None if c < 0 else c for c in cols]  # type: ignore[operator]
    g_uS: list[float | None] = table.g_uS.tolist()
    if np.isnan(table.g_uS).any():
        g_uS = [None if math.isnan(v) else v for v in g_uS]  # type: ignore[arg-type]
    return trusted_defects(ids, rows, cols, table, g_uS)


class MapPlan(NamedTuple):
    """What `Chip.stuck_map` and the defect counts need, per array, from a defect table.

    `*_bounds[p] : *_bounds[p + 1]` is the slice of the array at position p.
    """

    line_bounds: list[int]
    line_row: np.ndarray  # the line entries, grouped by array, in file order within one
    line_col: np.ndarray
    line_code: np.ndarray
    line_g: np.ndarray
    device_bounds: list[int]
    device_flat: np.ndarray  # the last entry of each device, grouped by array
    device_code: np.ndarray
    device_g: np.ndarray
    device_high: np.ndarray  # per array: devices marked stuck high by device entries
    device_low: np.ndarray
    dead_rows: np.ndarray  # per array: distinct rows marked as a whole line
    dead_cols: np.ndarray


def map_plan(table: DefectTable, arrays: Sequence[Array], device: DeviceModel) -> MapPlan:
    """The plan of a valid chip's table: its line entries and the last entry of each device, per array."""
    m = len(arrays)
    rows = np.array([a.rows for a in arrays], dtype=np.int64)
    cols = np.array([a.cols for a in arrays], dtype=np.int64)
    pos, row, col, high = table.pos, table.row, table.col, table.high
    code = np.where(high, 1, -1).astype(np.int8)
    default = np.where(high, device.stuck_high_uS, device.stuck_low_uS)
    value = np.where(np.isnan(table.g_uS), default, table.g_uS)
    is_line = (row < 0) | (col < 0)
    lines = np.flatnonzero(is_line)
    lines = lines[np.argsort(pos[lines], kind="stable")]
    line_bounds = np.searchsorted(pos[lines], np.arange(m + 1))
    devices = np.flatnonzero(~is_line)
    sizes = rows * cols
    start = np.cumsum(sizes) - sizes
    d_pos = pos[devices]
    key = start[d_pos] + row[devices] * cols[d_pos] + col[devices]
    # The last entry of each device: its first in the reversed order (sorted by key).
    _, first_reversed = np.unique(key[::-1], return_index=True)
    keep = devices.size - 1 - first_reversed
    kept = devices[keep]
    device_bounds = np.searchsorted(key[keep], np.append(start, start[-1] + sizes[-1]))
    kept_pos, kept_code = pos[kept], code[kept]
    row_lines = col < 0
    col_lines = row < 0

    def distinct_per_array(where: np.ndarray, index: np.ndarray, span: int) -> np.ndarray:
        marked = unique(pos[where] * span + index[where])
        return np.bincount(marked // span, minlength=m)

    return MapPlan(
        line_bounds=line_bounds.tolist(),
        line_row=row[lines],
        line_col=col[lines],
        line_code=code[lines],
        line_g=value[lines],
        device_bounds=device_bounds.tolist(),
        device_flat=key[keep] - start[kept_pos],
        device_code=kept_code,
        device_g=value[kept],
        device_high=np.bincount(kept_pos[kept_code == 1], minlength=m),
        device_low=np.bincount(kept_pos[kept_code == -1], minlength=m),
        dead_rows=distinct_per_array(row_lines, row, int(rows.max())),
        dead_cols=distinct_per_array(col_lines, col, int(cols.max())),
    )
