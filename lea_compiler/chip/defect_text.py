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
  every problem of an invalid one. Given the largest array id, row and col
  of the chip, it turns away lines that cannot be its entries (too long, too
  short, a number out of bounds) before it allocates more than a column per
  line.

Numbers are int64 >= 0 (up to 19 digits; the chip format's array ids stop
at 2**63 - 1, fields.MAX_ARRAY_ID).

Entries that mark a whole row or column or give `g_uS` are not handled here:
a chip that has any goes the general way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_MAX_DIGITS = 19
"""The most digits a number written or read here has: every int64 >= 0 has at most 19 (2**63 - 1 is
9223372036854775807), the widest array id a chip file may give (fields.MAX_ARRAY_ID)."""
_INT64_MAX = int(np.iinfo(np.int64).max)

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

_CONSTANT = sum(len(part) for part in _FILE_PARTS if isinstance(part, bytes))
"""The bytes of a defect line besides its numbers and its state's last word."""


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
    fingerprint's canonical form (True).

    Each entry is one row of a byte matrix as wide as the widest entry, the
    narrower numbers and states padded with NUL (which JSON text of these
    entries never holds); the text is the matrix's bytes without the NULs.

    Raises:
        ValueError: an array id, row or col is negative (no valid defect's is; the digit tables have no sign).
    """
    n = entries.array.size
    if n == 0:
        return b""
    for name in ("array", "row", "col"):
        if (lowest := int(getattr(entries, name).min())) < 0:
            raise ValueError(f"plain_entries_text: a {name} is negative ({lowest}); every value must be >= 0")
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


def read_plain_entries(text: bytes, largest: tuple[int, int, int] = (_INT64_MAX,) * 3) -> PlainEntries | None:
    """The entries of a chip file's defect lines (the text between `"defects": [` and `]`, without the newlines
    that open and close the list) if every line is a device entry without g_uS in the layout
    `forms.chip_to_text` writes, with an array id, row and col no larger than `largest`'s; None otherwise.

    Each line is read where that layout puts its fields: the digits after
    `"array": `, then after `"row": ` and `"col": `, then the letter after
    `stuck_`. The text is accepted only if `plain_entries_text` of what was
    read is the text itself, byte for byte: so whatever else it holds, it
    takes the general path. Before that, which costs a few times the text's
    size in memory, cheap checks turn away what cannot be such lines: a line
    not ended by `,\\n`, a line shorter or longer than entries within
    `largest` can be, a number longer than its bound's or larger than it, a
    line whose length is not what the digits read and its state make it. A
    chip's `largest` (its largest array id, rows - 1 and cols - 1) sends any
    entry outside the chip to the general path, which names the problem.
    """
    data = np.frombuffer(text, dtype=np.uint8)
    n = int(np.count_nonzero(data == ord("\n"))) + 1
    widths = [len(str(bound)) for bound in largest]
    shortest = _CONSTANT + 3 + len(_LOW)  # one digit each, stuck low
    longest = _CONSTANT + sum(widths) + len(_HIGH)
    separators = (n - 1) * len(_FILE_SEPARATOR)
    if not text or not n * shortest <= len(text) - separators <= n * longest:
        return None  # (before anything is allocated per line)
    ends = np.flatnonzero(data == ord("\n"))
    if (data[ends - 1] != _FILE_SEPARATOR[0]).any():
        return None
    line_start = np.concatenate(([0], ends + 1))
    length = np.append(ends - 1, data.size) - line_start
    if ((length < shortest) | (length > longest)).any():
        return None
    # Reading past the end reads NUL: a line starts at most at the end, and is read at most this far past it.
    reach = len(_FILE_PARTS[0]) + sum(_MAX_DIGITS + 1 + len(gap) for gap in _FILE_PARTS[2:7:2])
    padded = np.concatenate((data, np.zeros(reach + 1, dtype=np.uint8)))
    at = line_start + len(_FILE_PARTS[0])
    values: list[np.ndarray] = []
    expected = length - _CONSTANT
    for gap, width, bound in zip((_FILE_PARTS[2], _FILE_PARTS[4], _FILE_PARTS[6]), widths, largest, strict=True):
        number = _number_at(padded, at, width, bound)
        if number is None:
            return None
        values.append(number[0])
        expected -= number[1]
        at = at + number[1] + len(gap)
    high = padded[at] == ord("h")
    if (expected != np.where(high, len(_HIGH), len(_LOW))).any():
        return None
    entries = PlainEntries(values[0], values[1], values[2], high)
    return entries if plain_entries_text(entries, canonical=False) == text else None


def _number_at(data: np.ndarray, at: np.ndarray, width: int, bound: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The numbers whose digits start at `at` in `data` and their lengths in digits; None if one has no digit,
    more than `width` digits or is larger than `bound` (at most 2**63 - 1)."""
    value = np.zeros(at.size, dtype=np.uint64)  # 19 digits fit: 10**19 - 1 < 2**64
    length = np.zeros(at.size, dtype=np.int64)
    going = np.ones(at.size, dtype=bool)
    for j in range(width + 1):
        digit = data[at + j] - np.uint8(48)  # a byte below "0" wraps around to more than 9
        going &= digit <= 9
        if not going.any():
            break
        if j == width:
            return None
        value = np.where(going, value * np.uint64(10) + digit, value)
        length += going
    if not length.all() or (value > np.uint64(bound)).any():
        return None
    return value.astype(np.int64), length
