"""The common defect entry as JSON text, written and read in bulk with numpy.

Nearly every defect entry of a chip file marks one device without a measured
conductance: `{"array": 0, "row": 3, "col": 7, "state": "stuck_high"}`. A
chip of 256 arrays of 128 x 128 at 2% stuck has 84,000 of them, and a
Program embeds its chip whole, so loading the Program used to spend a quarter
of a second on them in Python: decoding the JSON, taking the fields out of
84,000 objects, and formatting each again for the fingerprint's canonical
text (`forms.fingerprint`). Here those entries are handled as byte columns
instead:

- `plain_entries_text` writes such entries in the chip file's layout (what
  `forms.chip_to_text` writes) or in the fingerprint's canonical layout (what
  `json.dumps(..., sort_keys=True, separators=(",", ":"))` writes);
- `read_plain_entries` reads the defect lines of a chip file back, and
  accepts them only if writing what it read gives the same bytes again, so
  it never accepts text the JSON decoder and the chip format would read
  otherwise (leading zeros, other spacing, other keys, another order): such
  a file takes the general path (io.py), which reads any valid file and names
  every problem of an invalid one.

Entries that mark a whole row or column or give `g_uS` are not handled here:
a chip that has any goes the general way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_MAX_DIGITS = 18
"""Longest number read here (every 18-digit number fits int64); a longer one takes the general path."""

_HIGH, _LOW = b"high", b"low"
_FILE_PARTS = (b'    {"array": ', "array", b', "row": ', "row", b', "col": ', "col", b', "state": "stuck_', "state",
               b'"}')  # fmt: skip
_FILE_SEPARATOR = b",\n"
_CANONICAL_PARTS = (b'{"array":', "array", b',"col":', "col", b',"row":', "row", b',"state":"stuck_', "state", b'"}')
_CANONICAL_SEPARATOR = b","
_STATE_WORDS = np.array([list(_LOW + b"\0"), list(_HIGH)], dtype=np.uint8)
_POW10 = 10 ** np.arange(_MAX_DIGITS, dtype=np.int64)
_THREE_DIGITS = np.frombuffer("".join(f"{v:03d}" for v in range(1000)).encode(), np.uint8).reshape(1000, 3)
_SHORT_DIGITS = np.frombuffer("".join(str(v).rjust(3, "\0") for v in range(1000)).encode(), np.uint8).reshape(1000, 3)
"""The digits of 0 to 999 zero-padded ("007") and NUL-padded ("\\0\\07")."""

_SHORTEST_LINE = sum(len(part) for part in _FILE_PARTS if isinstance(part, bytes)) + 3 + len(_LOW)
"""The shortest defect line: three one-digit numbers, stuck low."""


class PlainEntries(NamedTuple):
    """Device entries without g_uS as columns, in file order."""

    array: np.ndarray
    """int64: the array id."""
    row: np.ndarray
    """int64"""
    col: np.ndarray
    """int64"""
    high: np.ndarray
    """bool: stuck high (else stuck low)."""


def _digits(values: np.ndarray) -> np.ndarray:
    """Non-negative int64 `values` as right-aligned ASCII digits, (n, width) uint8, NUL before the shorter ones
    (three digits at a time, from tables)."""
    width = len(str(int(values.max()))) if values.size else 1
    if width <= 3:
        return _SHORT_DIGITS[values][:, 3 - width:]
    groups = -(-width // 3)
    digits = np.concatenate([_THREE_DIGITS[values // 1000**g % 1000] for g in range(groups - 1, -1, -1)], axis=1)
    digits = digits[:, 3 * groups - width:]
    length = np.ones(values.size, dtype=np.int64)
    for p in range(1, width):
        length += values >= _POW10[p]
    digits[np.arange(width) < (width - length)[:, None]] = 0
    return digits


def plain_entries_text(entries: PlainEntries, canonical: bool) -> bytes:
    """The entries as JSON text, separated as a chip file's defect lines are (`canonical` False) or as the
    fingerprint's canonical form (True); every value must be >= 0.

    Each entry is one row of a byte matrix as wide as the widest entry, the
    narrower numbers and states padded with NUL (which JSON text of these
    entries never holds); the text is the matrix's bytes without the NULs.
    """
    n = entries.array.size
    if n == 0:
        return b""
    parts, separator = (_CANONICAL_PARTS, _CANONICAL_SEPARATOR) if canonical else (_FILE_PARTS, _FILE_SEPARATOR)
    columns: list[np.ndarray] = []
    for part in parts:
        if isinstance(part, bytes):
            columns.append(np.frombuffer(part, dtype=np.uint8))
        elif part == "state":
            columns.append(_STATE_WORDS[entries.high.astype(np.intp)])
        else:
            columns.append(_digits(getattr(entries, part)))
    columns.append(np.frombuffer(separator, dtype=np.uint8))
    widths = [c.shape[-1] for c in columns]
    bounds = np.cumsum([0, *widths]).tolist()
    template = np.zeros(bounds[-1], dtype=np.uint8)  # the constant parts, in one row
    for values, start, stop in zip(columns, bounds, bounds[1:], strict=False):
        if values.ndim == 1:
            template[start:stop] = values
    matrix = np.tile(template, (n, 1))
    for values, start, stop in zip(columns, bounds, bounds[1:], strict=False):
        if values.ndim == 2:
            matrix[:, start:stop] = values
    return matrix.tobytes().replace(b"\0", b"")[:-len(separator)]  # no separator after the last entry


def read_plain_entries(text: bytes) -> PlainEntries | None:
    """The entries of a chip file's defect lines (the text between `"defects": [` and `]`, without the newlines
    that open and close the list) if every line is a device entry without g_uS in the layout
    `forms.chip_to_text` writes; None otherwise.

    Each line is read where that layout puts its fields: the digits after
    `"array": `, then after `"row": ` and `"col": `, then the letter after
    `stuck_`. The text is accepted only if `plain_entries_text` of what was
    read is the text itself, byte for byte: so whatever else it holds, it
    takes the general path.
    """
    if not text:
        return None
    data = np.frombuffer(text, dtype=np.uint8)
    line_start = np.concatenate(([0], np.flatnonzero(data == ord("\n")) + 1))
    if line_start.size * (_SHORTEST_LINE + len(_FILE_SEPARATOR)) > data.size + len(_FILE_SEPARATOR):
        return None  # lines too short to be entries (and the columns below are never larger than the text)
    # Reading past the end reads NUL: a line starts at most at the end, and is read at most this far past it.
    reach = len(_FILE_PARTS[0]) + sum(_MAX_DIGITS + 1 + len(gap) for gap in _FILE_PARTS[2:7:2])
    padded = np.concatenate((data, np.zeros(reach + 1, dtype=np.uint8)))
    at = line_start + len(_FILE_PARTS[0])
    values: list[np.ndarray] = []
    for gap in (_FILE_PARTS[2], _FILE_PARTS[4], _FILE_PARTS[6]):
        number = _number_at(padded, at)
        if number is None:
            return None
        values.append(number[0])
        at = at + number[1] + len(gap)  # type: ignore[arg-type]
    entries = PlainEntries(values[0], values[1], values[2], padded[at] == ord("h"))
    return entries if plain_entries_text(entries, canonical=False) == text else None


def _number_at(data: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The numbers whose digits start at `at` in `data` and their lengths in digits (0 where there is none);
    None if one has more than `_MAX_DIGITS`."""
    value = np.zeros(at.size, dtype=np.int64)
    length = np.zeros(at.size, dtype=np.int64)
    going = np.ones(at.size, dtype=bool)
    for j in range(_MAX_DIGITS + 1):
        digit = data[at + j] - np.uint8(48)  # a byte below "0" wraps around to more than 9
        going &= digit <= 9
        if not going.any():
            return value, length
        if j == _MAX_DIGITS:
            return None
        value = np.where(going, value * 10 + digit, value)
        length += going
    raise AssertionError("unreachable")
