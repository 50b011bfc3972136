"""The read-back file (`leac-readback`, version 1): what a board or a test station measured on a chip's devices.

After a board programs a chip (write-verify, docs/board-format.md) it can read every device back; a lab's test
station can do the same. The measured conductances, in uS, with NaN for a device that was not read, are a
`ReadBack`. A closed-loop programming strategy re-encodes later copies of a weight from the read-back of the
earlier ones, and the read-back is saved next to the as-programmed Program. docs/readback-format.md defines the
file; this module is its one writer and its one reader.

The reader is safe against hostile files, like the chip loader: the file's size is bounded before it is read
(by what a read-back of the given chip can take), NaN and Infinity literals and repeated keys are reported, not
trusted, declared sizes are checked against the chip before anything is allocated for them, and every problem is
listed (`lea_compiler.problems`), each by its JSON path. A read-back of another chip is refused naming both.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import operator
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from types import MappingProxyType
from typing import Any

import numpy as np

from lea_compiler.chip.fields import MAX_PROBLEMS, NonFinite, int_problem, join, name_problem, show
from lea_compiler.chip.model import Chip, _id_ranges
from lea_compiler.chip_limits import MAX_ARRAY_COLS, MAX_ARRAY_ROWS, MAX_CONDUCTANCE_uS
from lea_compiler.errors import InvalidInputError
from lea_compiler.fileio import atomic_write_bytes, read_input, too_large
from lea_compiler.problems import Problems, json_value_problem

logger = logging.getLogger(__name__)

FORMAT = "leac-readback"
"""The value of the top-level `format` key."""
VERSION = 1
"""The newest `leac-readback` version this leac reads, and the one it writes."""
MAX_READS = 2**31 - 1
"""Most device reads one value may average (an int32 for any consumer); no station reads a device 2^31 times."""
MAX_READBACK_BYTES = 2**30
"""Largest read-back file leac reads (1 GiB): every device of a chip of about 40 million devices at full float
precision (~25 bytes a value). Decoding it takes about three times its size in memory."""
BYTES_PER_DEVICE = 64
"""Bytes a read-back file may spend per device of its chip: the longest value (`-1.2345678901234567e-305`,
24 characters) and its comma, on a line of its own indented by 20 spaces as `json.dumps(indent=4)` writes it,
with room to spare."""
BASE_BYTES = 2**20
"""Bytes a read-back file may spend besides its values (the header, the array entries, a long `source`)."""

_TOP_KEYS = ("format", "version", "chip", "reads", "source", "arrays")
_TOP_REQUIRED = ("format", "version", "chip", "reads", "arrays")
_CHIP_KEYS = ("name", "fingerprint")
_ARRAY_KEYS = ("array", "rows", "cols", "g_uS")
_HEX = frozenset("0123456789abcdef")

# Per-device problem codes (0: fine; NaN, a device not read, is fine).
_NOT_A_NUMBER, _NOT_FINITE, _NEGATIVE, _TOO_LARGE = 1, 2, 3, 4
_WHAT = {
    _NOT_A_NUMBER: "is not a number (a conductance in uS, or null for a device not read)",
    _NOT_FINITE: "is not a finite number (null marks a device not read)",
    _NEGATIVE: "is negative (a conductance is at least 0 uS)",
    _TOO_LARGE: f"is more than leac accepts ({MAX_CONDUCTANCE_uS:g} uS)",
}
_NOUNS = {_NOT_A_NUMBER: "not a number", _NOT_FINITE: "not finite", _NEGATIVE: "negative",
          _TOO_LARGE: "too large"}
_NUMBER_TYPES = frozenset((float, int))
_FLOAT_MAX = float(np.finfo(np.float64).max)
NAMED_PER_ARRAY = 20
"""Most bad values (or rows) of one array named one by one in an error; the rest are counted by kind in one line,
so that a hostile file of 10^7 bad values costs no 10^7 messages and every array's problems are shown."""


@dataclass(frozen=True, eq=False)
class ReadBack:
    """Measured conductances of one chip's devices, as a board or test station reports them.

    Each value is what the board reports for a device after its conductance has relaxed: the mean of `reads`
    reads, in uS (docs/readback-format.md). Constructing a ReadBack checks it, so every ReadBack can be saved
    and loaded again: array ids are integers >= 0, each array a non-empty 2-D matrix of at most
    `MAX_ARRAY_ROWS` x `MAX_ARRAY_COLS` values that are NaN (not read) or finite, >= 0 and at most
    `MAX_CONDUCTANCE_uS`. The arrays are kept as read-only float64 copies, by ascending id (-0.0 becomes 0.0).
    Whether the shapes fit a chip is `readback_of`'s and the reader's check.

    Attributes:
        chip_fingerprint: `Chip.fingerprint()` of the chip read (64 lowercase hex digits).
        chip_name: The chip's name, or None.
        reads: Device reads averaged per value (>= 1).
        arrays: Array id -> (rows, cols) float64 matrix in uS; NaN where the device was not read.
        source: Free text: e.g. "leac simulated board, seed 3" or a station's name.

    Raises:
        InvalidInputError: listing every problem of the fields.
    """

    chip_fingerprint: str
    chip_name: str | None
    reads: int
    arrays: Mapping[int, np.ndarray] = field(repr=False)
    source: str = ""

    def __post_init__(self) -> None:
        problems = Problems(MAX_PROBLEMS)
        if (p := _fingerprint_problem(self.chip_fingerprint, "chip_fingerprint")) is not None:
            problems.add(p)
        if self.chip_name is not None and (p := name_problem(self.chip_name, "chip_name")) is not None:
            problems.add(p)
        reads = int(self.reads) if isinstance(self.reads, np.integer) else self.reads
        if (p := int_problem(reads, "reads", minimum=1, maximum=MAX_READS)) is not None:
            problems.add(p)
        if (p := name_problem(self.source, "source")) is not None:
            problems.add(p)
        arrays: dict[int, np.ndarray] = {}
        if not isinstance(self.arrays, Mapping):
            problems.add(f"arrays: {type(self.arrays).__name__} is not a mapping of array id -> matrix")
        else:
            for key, value in self.arrays.items():
                matrix = _checked_matrix(key, value, problems)
                if matrix is not None:
                    arrays[int(key)] = matrix
        problems.raise_if_any(f"invalid read-back ({_count(problems.total)})")
        object.__setattr__(self, "reads", reads)
        object.__setattr__(self, "arrays", MappingProxyType(dict(sorted(arrays.items()))))

    def devices_read(self) -> int:
        """How many devices were read: the values that are not NaN, over every array."""
        return sum(int(np.count_nonzero(~np.isnan(m))) for m in self.arrays.values())

    def summary(self) -> str:
        """One line for people: the chip, the arrays and devices read, the reads per value, the source."""
        n = len(self.arrays)
        chip = f"chip {self.chip_name!r}" if self.chip_name is not None else "an unnamed chip"
        text = (f"read-back of {chip} ({self.chip_fingerprint[:12]}): {n} {'array' if n == 1 else 'arrays'}, "
                f"{self.devices_read()} devices read, mean of {self.reads} {'read' if self.reads == 1 else 'reads'}")
        return f"{text}, from {self.source}" if self.source else text


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _count(total: int) -> str:
    return _plural(total, "problem")


def _fingerprint_problem(value: object, path: str) -> str | None:
    """The problem with `value` as a chip fingerprint (a SHA-256 in lowercase hex), if any."""
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        return f"{path}: {show(value)} is not a chip fingerprint (64 lowercase hex digits, Chip.fingerprint())"
    return None


def _checked_matrix(key: object, value: object, problems: Problems) -> np.ndarray | None:
    """Array `key`'s values as a read-only float64 matrix, or None after adding what is wrong with them."""
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
        problems.add(f"arrays: the key {key!r} is not an array id (an integer >= 0)")
        return None
    path = f"array {int(key)}"
    try:
        matrix = np.asarray(value)
    except (ValueError, TypeError):  # rows of different lengths
        problems.add(f"{path}: not a matrix (rows x cols of real numbers)")
        return None
    if matrix.dtype.kind not in "iuf":
        problems.add(f"{path}: values of type {matrix.dtype} are not conductances (real numbers in uS)")
        return None
    if matrix.ndim != 2 or matrix.size == 0:
        problems.add(f"{path}: shape {matrix.shape} is not a non-empty matrix (rows x cols)")
        return None
    rows, cols = matrix.shape
    if rows > MAX_ARRAY_ROWS or cols > MAX_ARRAY_COLS:
        problems.add(f"{path}: {rows} x {cols} is larger than any array leac accepts "
                     f"({MAX_ARRAY_ROWS} x {MAX_ARRAY_COLS})")
        return None
    values = matrix.astype(np.float64) + 0.0  # a copy; + 0.0 turns -0.0 into 0.0
    codes = _value_codes(values)
    if codes.any():
        _add_value_problems(f"{path} g_uS", codes, lambda i: repr(float(values.flat[i])), problems)
        return None
    values.setflags(write=False)
    return values


def _value_codes(values: np.ndarray) -> np.ndarray:
    """The problem code of each value of a float64 matrix: the one definition of a valid read-back value.

    NaN (a device not read) is valid; otherwise a value must be finite, >= 0 and at most `MAX_CONDUCTANCE_uS`.
    """
    codes = np.zeros(values.shape, dtype=np.int8)
    codes[values < 0] = _NEGATIVE
    codes[values > MAX_CONDUCTANCE_uS] = _TOO_LARGE
    codes[np.isinf(values)] = _NOT_FINITE
    return codes


def _add_value_problems(path: str, codes: np.ndarray, shown: Callable[[int], str], problems: Problems) -> None:
    """One problem per bad value of a matrix (`codes`, see `_value_codes`) in row-major order, named
    `PATH[row][col]` and shown by `shown(flat index)`; past `NAMED_PER_ARRAY` of them, one line counting the
    rest by kind."""
    bad = np.flatnonzero(codes)
    cols = codes.shape[1]
    for i in bad[:NAMED_PER_ARRAY].tolist():
        row, col = divmod(i, cols)
        problems.add(f"{path}[{row}][{col}]: {shown(i)} {_WHAT[int(codes.flat[i])]}")
    rest = bad[NAMED_PER_ARRAY:]
    if rest.size:
        counts = np.bincount(codes.flat[rest], minlength=len(_WHAT) + 1)
        kinds = ", ".join(f"{n} {_NOUNS[code]}" for code, n in enumerate(counts.tolist()) if code and n)
        problems.add(f"{path}: {rest.size} more bad values ({kinds})")


def readback_of(chip: Chip, values: Mapping[int, np.ndarray], *, reads: int, source: str = "") -> ReadBack:
    """The read-back of `chip` holding `values` (array id -> rows x cols in uS, NaN where not read).

    Checks that every id is an array of the chip and every matrix has that array's rows x cols, and fills in
    the chip's fingerprint and name.

    Raises:
        InvalidInputError: listing every array the chip does not have or whose shape is wrong, and every
            problem of the values (see `ReadBack`).
    """
    problems = Problems(MAX_PROBLEMS)
    by_id = {a.id: a for a in chip.arrays}
    for key, value in values.items():
        array = by_id.get(key) if isinstance(key, (int, np.integer)) and not isinstance(key, bool) else None
        if array is None:
            problems.add(f"array {key!r}: the chip has no such array ({_ids(chip)})")
            continue
        try:
            shape = np.shape(value)
        except (ValueError, TypeError):
            continue  # not a matrix: ReadBack says so
        if shape != (array.rows, array.cols):
            problems.add(f"array {key}: shape {shape} is not the array's {array.rows} x {array.cols}")
    problems.raise_if_any(f"invalid read-back of {_chip_label(chip.display_name, chip.fingerprint())} "
                          f"({_count(problems.total)})")
    return ReadBack(chip.fingerprint(), chip.name, reads, values, source)


def _ids(chip: Chip) -> str:
    """The chip's array ids for a message, as ranges ("its arrays: 0..3, 7"), as `Chip.array` names them."""
    return f"its arrays: {_id_ranges(sorted(a.id for a in chip.arrays))}"


def _chip_label(name: str | None, fingerprint: str) -> str:
    """A chip for a message: its name and the first 12 digits of its fingerprint."""
    named = f"chip {name!r}" if name is not None else "an unnamed chip"
    return f"{named} (fingerprint {fingerprint[:12]}...)"


# --------------------------------------------------------------------------
# Writing


def readback_bytes(readback: ReadBack) -> bytes:
    """The bytes of `readback`'s file (docs/readback-format.md): ASCII JSON, 2-space indented, one matrix row
    per line, arrays by ascending id, every value as Python's `repr` (the shortest text that reads back to the
    same float) and `null` for NaN. Deterministic: equal read-backs give identical bytes."""

    def text(value: object) -> str:
        return json.dumps(value, ensure_ascii=True, allow_nan=False)

    chip = f'{{"name": {text(readback.chip_name)}, "fingerprint": {text(readback.chip_fingerprint)}}}'
    lines = ["{", f'  "format": {text(FORMAT)},', f'  "version": {VERSION},', f'  "chip": {chip},',
             f'  "reads": {readback.reads},', f'  "source": {text(readback.source)},']
    if not readback.arrays:
        lines.append('  "arrays": []')
    else:
        lines.append('  "arrays": [')
        entries = []
        for array_id, matrix in readback.arrays.items():  # a loop over arrays; each row is formatted in bulk
            rows, cols = matrix.shape
            # float.__repr__ of a valid value is digits, ".", "e", "+", "-"; of NaN it is "nan", written null
            body = ",\n".join(f"      [{', '.join(map(float.__repr__, row))}]" for row in matrix.tolist())
            entries.append(f'    {{"array": {array_id}, "rows": {rows}, "cols": {cols}, "g_uS": [\n'
                           f"{body.replace('nan', 'null')}\n    ]}}")
        lines += [",\n".join(entries), "  ]"]
    return ("\n".join(lines) + "\n}\n").encode("ascii")


def save_readback(readback: ReadBack, path: str | os.PathLike[str]) -> None:
    """Write `readback` to `path` atomically (`readback_bytes`; lea_compiler/fileio.py).

    Raises:
        UsageError: `path` exists and is not a regular file (a FIFO, a device node, a folder), or cannot be
            written; nothing is written then.
    """
    atomic_write_bytes(path, readback_bytes(readback))
    if logger.isEnabledFor(logging.INFO):
        logger.info("wrote %s: %s", os.fspath(path), readback.summary())


# --------------------------------------------------------------------------
# Reading


def max_readback_bytes(chip: Chip) -> int:
    """The largest read-back file of `chip` leac reads: `BASE_BYTES` + `BYTES_PER_DEVICE` per device of the
    chip, at most `MAX_READBACK_BYTES`. Known before reading, so a hostile file is refused by its size."""
    return min(MAX_READBACK_BYTES, BASE_BYTES + BYTES_PER_DEVICE * chip.device_count)


def load_readback(path: str | os.PathLike[str], chip: Chip) -> ReadBack:
    """Read and check the read-back file at `path` against `chip` (the chip that was read).

    Raises:
        InvalidInputError: the file cannot be read (missing, not a regular file, larger than
            `max_readback_bytes(chip)`), or is not a valid read-back of `chip`; every problem is listed.
    """
    source = os.fspath(path)
    readback = readback_from_bytes(read_input(path, max_readback_bytes(chip), "read-back file"), chip, source)
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s: %s", source, readback.summary())
    return readback


def readback_from_bytes(data: bytes, chip: Chip, source: str = "<read-back>") -> ReadBack:
    """The read-back in `data` (a file's bytes), checked against `chip`; `source` names it in messages.

    Refused, every problem listed by its JSON path: not UTF-8 JSON; not `leac-readback` or a newer version
    (alone); a read-back of another chip (alone, naming both chips); unknown, missing or repeated keys; `reads`
    not an integer >= 1; an array the chip does not have or listed twice; `rows`/`cols` that are not the chip
    array's (its values are then not looked at, so a declared size allocates nothing); `g_uS` without that
    many rows of that many values; a value that is not a number, not finite, negative or too large.

    Raises:
        InvalidInputError: as above, or `data` is larger than `max_readback_bytes(chip)`.
    """
    limit = max_readback_bytes(chip)
    if len(data) > limit:
        raise too_large(source, limit, "read-back file")
    heading = f"{source}: invalid read-back file"
    obj = _decode(data, heading)
    problems = Problems(MAX_PROBLEMS)
    top = _object(obj, "", _TOP_KEYS, _TOP_REQUIRED, problems)
    if top is None:  # not an object: nothing else to look at
        raise InvalidInputError(f"{heading}:\n{problems.listing()}")
    if "format" in top and top["format"] != FORMAT:  # another kind of file: its other keys would be noise
        raise InvalidInputError(f'{heading}:\n  format: {show(top["format"])} is not "{FORMAT}"')
    if "version" in top:
        if (p := int_problem(top["version"], "version", minimum=1)) is not None:
            problems.add(p)
        elif top["version"] > VERSION:
            raise InvalidInputError(f"{heading}:\n  version: {top['version']} is newer than this leac "
                                    f"understands ({VERSION})")
    name = _chip_entry(top, chip, source, problems)
    reads = top.get("reads")
    if "reads" in top and (p := int_problem(reads, "reads", minimum=1, maximum=MAX_READS)) is not None:
        problems.add(p)
    text = top.get("source", "")
    if (p := name_problem(text, "source")) is not None:
        problems.add(p)
    arrays = _arrays(top["arrays"], chip, problems) if "arrays" in top else None
    problems.raise_if_any(f"{heading} ({_count(problems.total)})")
    assert arrays is not None and isinstance(reads, int)
    return ReadBack(chip.fingerprint(), name, reads, arrays, text)


class _Repeated(dict):  # type: ignore[type-arg]
    """A decoded JSON object in which some keys appeared more than once (`repeated` names them)."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Repeated(obj)
    marked.repeated = [key for key, n in Counter(key for key, _ in pairs).items() if n > 1]
    return marked


def _decode(data: bytes, heading: str) -> object:
    """`data` decoded as strict JSON: NaN and Infinity literals become `NonFinite` markers (a number too large
    for a float, 1e999, decodes to inf) and repeated keys are marked, all reported by path later; text that is
    not JSON is refused. Numbers are parsed by the decoder itself: a Python hook per value would double the
    time of a large file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{heading}:\n  not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                f"{exc.start})") from None
    if not text or text.isspace():  # (isspace stops at the first other character; strip would copy)
        raise InvalidInputError(f"{heading}:\n  the file is empty (expected a {FORMAT} JSON object)")
    try:
        return json.loads(text, parse_constant=NonFinite, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        hint = " (the file ends too early: is it truncated?)" if truncated else ""
        raise InvalidInputError(f"{heading}:\n  not valid JSON: {exc.msg} (line {exc.lineno}, column "
                                f"{exc.colno}){hint}") from None
    except RecursionError:
        raise InvalidInputError(f"{heading}:\n  not valid JSON for leac: nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise InvalidInputError(f"{heading}:\n  not valid JSON: {json_value_problem(exc)}") from None


def _object(value: object, path: str, allowed: Sequence[str], required: Sequence[str],
            problems: Problems) -> dict[str, Any] | None:
    """`value` if it is a JSON object (None if not); adds its repeated, unknown and missing keys."""
    if not isinstance(value, dict):
        problems.add(f"{path or 'top level'}: {show(value)} is not a JSON object")
        return None
    repeated = getattr(value, "repeated", ())
    for key in repeated[:NAMED_PER_ARRAY]:
        problems.add(f"{join(path, key)}: key appears more than once")
    if len(repeated) > NAMED_PER_ARRAY:
        problems.add(f"{path or 'top level'}: {len(repeated) - NAMED_PER_ARRAY} more keys that appear more than once")
    unknown = [key for key in value if key not in allowed]
    for key in unknown[:NAMED_PER_ARRAY]:
        close = difflib.get_close_matches(key, allowed, n=1)
        problems.add(f"{join(path, key)}: unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if len(unknown) > NAMED_PER_ARRAY:
        problems.add(f"{path or 'top level'}: {len(unknown) - NAMED_PER_ARRAY} more unknown keys")
    for key in required:
        if key not in value:
            problems.add(f"{join(path, key)}: missing (required)")
    return value


def _chip_entry(top: Mapping[str, Any], chip: Chip, source: str, problems: Problems) -> str | None:
    """The chip name the file gives; a fingerprint of another chip refuses the file at once, naming both."""
    if "chip" not in top:
        return None
    entry = _object(top["chip"], "chip", _CHIP_KEYS, ("fingerprint",), problems)
    if entry is None:
        return None
    name = entry.get("name")
    if name is not None and (p := name_problem(name, "chip.name")) is not None:
        problems.add(p)
        name = None
    if "fingerprint" not in entry:
        return name
    given = entry["fingerprint"]
    if (p := _fingerprint_problem(given, "chip.fingerprint")) is not None:
        problems.add(p)
    elif given != chip.fingerprint():
        raise InvalidInputError(
            f"{source}: a read-back file from another chip: it is for "
            f"{_chip_label(name if isinstance(name, str) else None, given)}, but the chip given is "
            f"{_chip_label(chip.display_name, chip.fingerprint())}")
    return name if isinstance(name, str) else None


def _arrays(raw: object, chip: Chip, problems: Problems) -> dict[int, np.ndarray] | None:
    """The arrays of the file, checked against the chip (None after adding problems)."""
    if not isinstance(raw, list):
        problems.add(f"arrays: {show(raw)} is not a list of arrays")
        return None
    if len(raw) > len(chip.arrays):  # some array twice or one the chip lacks: not worth naming each of millions
        problems.add(f"arrays: {len(raw)} entries, but the chip has only "
                     f"{_plural(len(chip.arrays), 'array')} (each is listed at most once)")
        return None
    by_id = {a.id: a for a in chip.arrays}
    first: dict[int, int] = {}
    out: dict[int, np.ndarray] = {}
    ok = True
    for i, item in enumerate(raw):  # a loop over array entries, each bounded by the chip's arrays below
        path = f"arrays[{i}]"
        entry = _object(item, path, _ARRAY_KEYS, _ARRAY_KEYS, problems)
        if entry is None or any(key not in entry for key in _ARRAY_KEYS):
            ok = False
            continue
        before = problems.total
        sizes: dict[str, int] = {}
        for key in ("rows", "cols"):
            if (p := int_problem(entry[key], join(path, key), minimum=1)) is not None:
                problems.add(p)
            else:
                sizes[key] = entry[key]
        array_id = entry["array"]
        if (p := int_problem(array_id, join(path, "array"), minimum=0)) is not None:
            problems.add(p)
        elif array_id in first:
            problems.add(f"{path}.array: array {array_id} is listed again (first at arrays[{first[array_id]}])")
        elif array_id not in by_id:
            problems.add(f"{path}.array: the chip has no array {array_id} ({_ids(chip)})")
        else:
            first[array_id] = i
            array = by_id[array_id]
            for key, want in (("rows", array.rows), ("cols", array.cols)):
                if key in sizes and sizes[key] != want:
                    problems.add(f"{path}.{key}: {sizes[key]}, but array {array_id} of the chip has {want} {key}")
        if problems.total > before:  # the values are not looked at: a declared size may be hostile
            ok = False
            continue
        matrix = _matrix(entry["g_uS"], f"{path}.g_uS", entry["rows"], entry["cols"], problems)
        if matrix is None:
            ok = False
        else:
            out[array_id] = matrix
    return out if ok else None


def _matrix(raw: object, path: str, rows: int, cols: int, problems: Problems) -> np.ndarray | None:
    """`raw` as a rows x cols float64 matrix (NaN for null), or None after adding its problems.

    `rows` x `cols` is the chip array's shape, so nothing here allocates more than the chip has devices; the
    values are checked in bulk (their types as a set, then `_value_codes`), and one by one only to name the
    bad ones.
    """
    if not isinstance(raw, list):
        problems.add(f"{path}: {show(raw)} is not a list of rows")
        return None
    if len(raw) != rows:
        problems.add(f"{path}: {_plural(len(raw), 'row')}, but the array has {rows}")
        return None
    bad_rows = [r for r, row in enumerate(raw) if type(row) is not list or len(row) != cols]  # over rows
    for r in bad_rows[:NAMED_PER_ARRAY]:
        row = raw[r]
        if type(row) is list:
            problems.add(f"{path}[{r}]: {_plural(len(row), 'value')}, but the array has {cols} columns")
        else:
            problems.add(f"{path}[{r}]: {show(row)} is not a list of values")
    if len(bad_rows) > NAMED_PER_ARRAY:
        problems.add(f"{path}: {len(bad_rows) - NAMED_PER_ARRAY} more rows that are not lists of {cols} values")
    if bad_rows:
        return None
    flat = list(chain.from_iterable(raw))
    types = set(map(type, flat))
    values = None
    if types <= {float, int, type(None)}:
        try:
            values = np.array(flat, dtype=np.float64)  # null -> NaN
        except OverflowError:  # an integer beyond float64: the slow path names it
            values = None
    if values is not None:
        codes = _value_codes(values)
    else:
        kinds = list(map(type, flat))
        number = np.fromiter(map(_NUMBER_TYPES.__contains__, kinds), dtype=bool, count=len(flat))
        marker = np.fromiter(map(operator.is_, kinds, repeat(NonFinite)), dtype=bool, count=len(flat))
        null = np.fromiter(map(operator.is_, flat, repeat(None)), dtype=bool, count=len(flat))
        values = np.fromiter(map(_as_float, flat), dtype=np.float64, count=len(flat))
        codes = _value_codes(values)
        codes[~(number | marker | null)] = _NOT_A_NUMBER
        codes[marker] = _NOT_FINITE
    codes = codes.reshape(rows, cols)
    if codes.any():
        _add_value_problems(path, codes, lambda i: show(flat[i]), problems)
        return None
    return values.reshape(rows, cols)


def _as_float(value: object) -> float:
    """A decoded value as a float for the checks: a number as itself (an integer beyond float64 as the
    largest float of its sign, so that it is too large or negative), null as NaN, anything else 0.0 (the
    caller flags it by its type)."""
    if value is None:
        return math.nan
    if type(value) in _NUMBER_TYPES:
        try:
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            return _FLOAT_MAX if value > 0 else -_FLOAT_MAX  # type: ignore[operator]
    return 0.0
