"""Reading and writing `leac-chip` files, version 1, exactly as docs/chip-format.md defines them.

Loading collects every problem of a bad file, each reported by its JSON path
(validate.py and fields.py hold the rules); saving is deterministic, pretty
JSON (forms.py) that loads back into an equal `Chip`. A file whose defects
are laid out as leac writes them is read in bulk (`written_chip`), to the
same chip; any other goes through the JSON decoder.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from lea_compiler.arguments import check_path
from lea_compiler.chip.defect_text import PlainEntries, read_plain_entries
from lea_compiler.chip.fields import (
    ARRAY_KEYS,
    DEFECT_KEYS,
    DEVICE_KINDS,
    FORMAT,
    GRID_KEYS,
    MAX_FILE_BYTES,
    PERIPHERY_KINDS,
    TOP_KEYS,
    VERSION,
    NonFinite,
    array_problems,
    capped,
    defect_problems,
    int_problem,
    key_problems,
    model_problems,
    name_problem,
    show,
)
from lea_compiler.chip.forms import chip_to_text
from lea_compiler.chip.model import Chip
from lea_compiler.chip.parts import Array, Defect, DeviceModel, LineModel, Periphery, ProgrammingModel
from lea_compiler.chip.store import DefectTable, cross_problems, gc_paused, suspect_entries
from lea_compiler.chip.validate import Fields, Screened, arrays_cross_problems, screen_defects
from lea_compiler.chip.variability import VARIABILITY_KEYS, parse_variability, variability_problems
from lea_compiler.chip_limits import MAX_ARRAY_COLS, MAX_ARRAY_DEVICES, MAX_ARRAY_ROWS, MAX_ARRAYS, MAX_DEVICES
from lea_compiler.errors import InvalidChipError, InvalidInputError
from lea_compiler.fileio import atomic_write_text, read_input
from lea_compiler.geometry import find_sorted
from lea_compiler.problems import json_value_problem

logger = logging.getLogger(__name__)


class _DupDict(dict):  # type: ignore[type-arg]
    """A decoded JSON object in which some keys appeared more than once."""

    duplicates: list[str]


# --------------------------------------------------------------------------
# Parsing a decoded JSON object


def _object(
    value: object,
    path: str,
    allowed: Sequence[str],
    required: Sequence[str],
    problems: list[str],
) -> dict[str, Any] | None:
    """`value` if it is a JSON object; records duplicate, unknown and missing keys."""
    if not isinstance(value, dict):
        problems.append(f"{path or 'top level'}: {show(value)} is not a JSON object")
        return None
    problems += key_problems(value, path, allowed, required)
    return value if all(key in value for key in required) else None


def _parse_model(
    top: Mapping[str, object],
    key: str,
    kinds: Mapping[str, str],
    problems: list[str],
) -> dict[str, Any] | None:
    """The keyword arguments of a device or periphery model, or None if it has problems.

    A list (the levels) becomes a tuple, the `programming` object a `ProgrammingModel` and the `lines` object a
    `LineModel`.
    """
    if key not in top:
        return {}
    before = len(problems)
    device = key == "device"
    values = _object(top[key], key, (*kinds, *VARIABILITY_KEYS) if device else tuple(kinds), (), problems)
    if values is None:
        return None
    problems += model_problems(values, kinds, key)
    if device:
        problems += variability_problems(values, key, levels_uS=values.get("levels_uS", DeviceModel.levels_uS),
                                         stuck_high_uS=values.get("stuck_high_uS", DeviceModel.stuck_high_uS))
    if len(problems) > before:
        return None
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if "programming" in kwargs:
        kwargs["programming"] = ProgrammingModel(**values["programming"])
    if "lines" in kwargs:
        kwargs["lines"] = LineModel(**values["lines"])
    if device:
        kwargs.update(parse_variability(values))
    return kwargs


def _parse_arrays(raw: object, problems: list[str]) -> tuple[list[Array] | None, bool]:
    """The arrays (None if any entry is bad) and whether they were given as a grid."""
    if isinstance(raw, dict):
        before = len(problems)
        grid = _object(raw, "arrays", GRID_KEYS, GRID_KEYS, problems)
        if grid is None:
            return None, True
        for key in GRID_KEYS:
            if p := int_problem(grid[key], f"arrays.{key}", minimum=1):
                problems.append(p)
        if len(problems) > before:
            return None, True
        count, rows, cols = grid["count"], grid["rows"], grid["cols"]
        if count > MAX_ARRAYS:
            problems.append(f"arrays.count: {count} is more than leac accepts ({MAX_ARRAYS})")
        elif rows > MAX_ARRAY_ROWS:
            problems.append(f"arrays.rows: {rows} is more than leac accepts ({MAX_ARRAY_ROWS})")
        elif cols > MAX_ARRAY_COLS:
            problems.append(f"arrays.cols: {cols} is more than leac accepts ({MAX_ARRAY_COLS})")
        elif rows * cols > MAX_ARRAY_DEVICES:
            problems.append(
                f"arrays: {rows} x {cols} = {rows * cols} devices is more than leac accepts "
                f"in one array ({MAX_ARRAY_DEVICES})"
            )
        elif count * rows * cols > MAX_DEVICES:
            problems.append(
                f"arrays: {count * rows * cols} devices in total is more than leac accepts "
                f"({MAX_DEVICES})"
            )
        else:
            return [Array(i, rows, cols) for i in range(count)], True
        return None, True
    if isinstance(raw, list):
        if not raw:
            problems.append("arrays: [] lists no arrays")
            return None, False
        good: list[tuple[str, Array]] = []
        for i, item in enumerate(raw):
            path = f"arrays[{i}]"
            entry = _object(item, path, ARRAY_KEYS, ARRAY_KEYS, problems)
            if entry is None:
                continue
            if entry_problems := array_problems(entry, path):
                problems += entry_problems
            else:
                good.append((path, Array(**{k: v for k, v in entry.items() if k in ARRAY_KEYS})))
        cross = arrays_cross_problems(good, "arrays")
        problems += cross
        if len(good) < len(raw) or cross:
            return None, False
        return [a for _, a in good], False
    problems.append(
        f'arrays: {show(raw)} is neither a grid {{"count", "rows", "cols"}} nor a list of arrays'
    )
    return None, False


_DEFECT_KEY_SET = frozenset(DEFECT_KEYS)
_OPTIONAL_KEYS = ("row", "col", "g_uS")


def _usable_entries(raw: list[Any], columns: list[list[Any]] | None) -> np.ndarray | None:
    """Which defect entries are plain JSON objects with only known keys and no nulls (None: all are).

    Decided in bulk: counts over all entries first (`columns` holds each
    key's values, None where absent or null, if every entry is a dict), and
    masks entry by entry only if the counts say some entry may not be.
    """
    n = len(raw)
    if columns is not None:
        # The known keys holding a value are at most all the keys, and as many only if no key is unknown and
        # none is null (a null array or state, which this does not refuse, just takes the masks below).
        if sum(map(len, raw)) == sum(n - column.count(None) for column in columns):
            return None  # every key is a known one, and none is null
    usable = np.fromiter(map(operator.is_, map(type, raw), repeat(dict)), dtype=bool, count=n)
    at = np.flatnonzero(usable).tolist()
    items = [raw[k] for k in at]
    fine = np.fromiter(map(operator.le, map(dict.keys, items), repeat(_DEFECT_KEY_SET)), dtype=bool, count=len(at))
    for key in _OPTIONAL_KEYS:
        given = np.fromiter(map(dict.__contains__, items, repeat(key)), dtype=bool, count=len(at))
        null = np.fromiter(map(operator.is_, map(dict.get, items, repeat(key)), repeat(None)), bool, len(at))
        fine &= ~(given & null)
    usable[at] = fine
    return usable


def _entry_fields(raw: list[Any], problems: list[str]) -> Callable[[int], Fields | None]:
    """The per-entry check of a file's defect entries (see `validate.screen_defects`)."""

    def check(i: int) -> Fields | None:
        path = f"defects[{i}]"
        entry = _object(raw[i], path, DEFECT_KEYS, ("array", "state"), problems)
        if entry is None:
            return None
        nulls = [k for k in _OPTIONAL_KEYS if k in entry and entry[k] is None]
        for key in nulls:
            problems.append(f"{path}.{key}: null is not allowed (leave the key out instead)")
        if entry_problems := defect_problems(entry, path):
            problems.extend(entry_problems)
            return None
        if nulls:
            return None
        d = Defect(**{"row": None, "col": None, **{k: v for k, v in entry.items() if k in DEFECT_KEYS}})
        return d.array, d.row, d.col, d.state, d.g_uS

    return check


def _parse_defects(raw: object, arrays: Sequence[Array], problems: list[str]) -> Screened | None:
    """The defect entries free of field problems, or None if `defects` is not a list."""
    if not isinstance(raw, list):
        problems.append(f"defects: {show(raw)} is not a list")
        return None
    columns = None
    if set(map(type, raw)) <= {dict}:
        columns = [list(map(dict.get, raw, repeat(key))) for key in DEFECT_KEYS]
    usable = _usable_entries(raw, columns)
    if usable is not None:  # the columns of the usable entries only
        items = [raw[k] for k in np.flatnonzero(usable).tolist()]
        columns = [list(map(dict.get, items, repeat(key))) for key in DEFECT_KEYS]
    assert columns is not None  # (_usable_entries gives a mask when some entry is not a dict)
    return screen_defects(len(raw), usable, columns, arrays, _entry_fields(raw, problems))


def parse_chip(obj: object, source: str) -> Chip:
    """Validate a decoded `leac-chip` JSON object and build the Chip it describes.

    Every problem is collected before raising, each naming its JSON path and
    value, so a test station can fix a file in one round.

    Args:
        obj: The decoded JSON (as from `json.loads`).
        source: Where it came from (a file name), for the error message.

    Returns:
        The chip.

    Raises:
        InvalidChipError: the object breaks the format; `problems` lists every problem.
    """
    problems: list[str] = []
    top = _object(obj, "", TOP_KEYS, ("format", "version", "arrays"), problems)
    if not isinstance(obj, dict):
        raise InvalidChipError(source, problems)
    fmt = obj.get("format", FORMAT)
    if fmt != FORMAT:
        # A different kind of file: its other keys would only add noise.
        raise InvalidChipError(source, [f'format: {show(fmt)} is not "{FORMAT}"'])
    if "version" in obj:
        version = obj["version"]
        if p := int_problem(version, "version", minimum=1):
            problems.append(p)
        elif version > VERSION:
            raise InvalidChipError(
                source, [f"version: {version} is newer than this leac understands ({VERSION})"]
            )
    name = obj.get("name")
    if "name" in obj and (p := name_problem(name, "name")):
        problems.append(p)
    device_kwargs = _parse_model(obj, "device", DEVICE_KINDS, problems)
    periphery_kwargs = _parse_model(obj, "periphery", PERIPHERY_KINDS, problems)
    arrays, grid = _parse_arrays(obj["arrays"], problems) if "arrays" in obj else (None, False)
    with gc_paused():  # a large chip file has a million defect entries
        defects = _parse_defects(obj.get("defects", []), arrays or [], problems)
    if defects is not None and arrays is not None:
        problems += cross_problems(defects.table, arrays, defects.file_index, defects.columns)
    if problems or top is None or arrays is None:
        raise InvalidChipError(source, capped(problems))
    assert device_kwargs is not None and periphery_kwargs is not None and defects is not None
    return Chip.trusted(
        arrays=tuple(arrays),
        defects=None,  # made from the table when first read
        device=DeviceModel(**device_kwargs),
        periphery=Periphery(**periphery_kwargs),
        name=name,
        grid=grid,
        table=defects.table,
    )


# --------------------------------------------------------------------------
# Files


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """An input file (at most `MAX_FILE_BYTES`) decoded as UTF-8 (a leading byte-order mark is ignored)."""
    data = read_input(path, MAX_FILE_BYTES, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{os.fspath(path)}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); a {what} must be UTF-8"
        ) from None


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = dict(pairs)
    if len(obj) == len(pairs):  # no key repeated: the usual case, without a Python loop per object
        return obj
    seen: set[str] = set()
    duplicates: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    marked = _DupDict(obj)
    marked.duplicates = duplicates
    return marked


def _parse_float(text: str) -> float | NonFinite:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def decode_chip_json(text: str, source: str) -> object:
    """Decode chip-file text as strict JSON.

    NaN / Infinity literals and numbers too large for a float are kept as
    markers that validation reports with their path; keys repeated in one
    object are marked the same way.

    Raises:
        InvalidChipError: the text is empty or not JSON.
    """
    if not text.strip():
        raise InvalidChipError(source, ["the file is empty (expected a leac-chip JSON object)"])
    try:
        with gc_paused():  # a large chip file decodes to millions of objects
            return json.loads(
                text,
                parse_constant=NonFinite,
                parse_float=_parse_float,
                object_pairs_hook=_pairs_hook,
            )
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        hint = " (the file ends too early: is it truncated?)" if truncated else ""
        raise InvalidChipError(
            source, [f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}){hint}"]
        ) from None
    except RecursionError:
        raise InvalidChipError(source, ["not a chip file: JSON nested too deeply"]) from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise InvalidChipError(source, [f"not valid JSON: {json_value_problem(exc)}"]) from None


_DEFECTS_OPEN = '\n  "defects": [\n'
_DEFECTS_CLOSE = "\n  ]\n}\n"
"""How `chip_to_text` opens and closes a non-empty defect list, the file's last key."""


def parse_chip_text(text: str, source: str) -> Chip:
    """The chip a chip file's text describes: `parse_chip(decode_chip_json(text, source), source)`, but read in
    bulk when its defects are in the layout leac writes (`written_chip`).

    Raises:
        InvalidChipError: the text is not JSON or breaks the format; every problem is listed.
    """
    chip = written_chip(text, source)
    return chip if chip is not None else parse_chip(decode_chip_json(text, source), source)


def written_chip(text: str, source: str) -> Chip | None:
    """The chip of a valid chip file whose defects are all single devices without g_uS, written one per line as
    `chip_to_text` writes them (every file leac writes for such a chip, and the chip inside a Program); None
    for any other text, valid or not, which `parse_chip` then reads and, if it is invalid, names every problem
    of.

    The rest of the file (its head) is decoded and checked first, as any
    chip file, with `"defects": []` in the list's place. The defect lines are
    then read as byte columns (defect_text.py) instead of 84,000 JSON objects,
    no number larger than the chip's largest array id, row or column, and
    checked as the general path checks them: known array, inside it, no
    device in two states (`store.suspect_entries`; a file with any such
    problem goes the general way for its messages). Whatever rules the lines
    out (g_uS, a whole row or column, another layout, a number outside the
    chip) is found by cheap checks before they are read, so that such a file
    costs little more than the JSON decoder alone.
    """
    start = text.find(_DEFECTS_OPEN)
    if start < 0 or not text.endswith(_DEFECTS_CLOSE) or start + len(_DEFECTS_OPEN) >= len(text) - len(_DEFECTS_CLOSE):
        return None
    lines = text[start + len(_DEFECTS_OPEN):len(text) - len(_DEFECTS_CLOSE)]
    # What rules the lines out costs next to nothing: a scan of the text, then its head (the models and arrays).
    # No "S" is in a device entry without g_uS (a search for one letter is memchr's, 30 times faster than '"g_uS"').
    if "S" in lines or not lines.isascii():
        return None
    try:
        head = decode_chip_json(text[:start] + '\n  "defects": []\n}\n', source)
        # The list's place: the top level's last key, given once (a _DupDict is not a dict's exact type).
        if type(head) is not dict or list(head)[-1:] != ["defects"] or head["defects"] != []:
            return None
        chip = parse_chip(head, source)
    except InvalidChipError:
        return None
    # An entry outside the chip is a problem the general path names: the bounds turn it away unread.
    largest = (max(a.id for a in chip.arrays), max(a.rows for a in chip.arrays) - 1,
               max(a.cols for a in chip.arrays) - 1)
    entries = read_plain_entries(lines.encode("ascii"), largest)
    if entries is None:
        return None
    table = _plain_table(entries, chip.arrays)
    if suspect_entries(table, chip.arrays).size:
        return None
    return Chip.trusted(arrays=chip.arrays, defects=None, device=chip.device, periphery=chip.periphery,
                        name=chip.name, grid=chip.grid, table=table)


def _plain_table(entries: PlainEntries, arrays: Sequence[Array]) -> DefectTable:
    """The table of device entries without g_uS: an array id that is no array's at position -1 (the ids are a
    valid chip's, each at most `MAX_ARRAY_ID`, an int64)."""
    ids = np.array([a.id for a in arrays], dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    at, found = find_sorted(ids[order], entries.array)
    pos = np.where(found, order[at], -1)
    return DefectTable(pos, entries.row, entries.col, entries.high, np.full(entries.array.size, np.nan))


def load_chip(path: str | os.PathLike[str]) -> Chip:
    """Read and validate a `leac-chip` file.

    Args:
        path: The file (UTF-8 JSON).

    Returns:
        The chip.

    Raises:
        UsageError: `path` is not a file path (str or os.PathLike).
        InvalidInputError: the file cannot be read (missing, a directory, not UTF-8, too large).
        InvalidChipError: the file is not JSON or breaks the format; every problem is listed.
    """
    check_path(path, "path")
    source = os.fspath(path)
    chip = parse_chip_text(read_text(path, "chip file"), source)
    chip = chip.with_file_name(os.path.basename(source))
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s: %s", source, chip.summary())
    return chip


def save_chip(chip: Chip, path: str | os.PathLike[str]) -> None:
    """Write the chip to `path` atomically (see `chip_to_text` for the layout)."""
    atomic_write_text(path, chip_to_text(chip))
    if logger.isEnabledFor(logging.INFO):
        logger.info("wrote %s: %s", os.fspath(path), chip.summary())
