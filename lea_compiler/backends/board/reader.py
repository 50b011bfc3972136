"""The board reader: `read_board`, `check_board` and `validate_board`.

A file is streamed a MiB at a time (memory stays bounded whatever its size), each line decoded strictly (no
NaN, no repeated keys) and checked against its record's schema; the checks that span records are
`validator._Validator`'s. Only the first `MAX_PROBLEMS` problems are kept, in file order, with a count.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lea_compiler.backends.board.records import (
    _HEADER_SCHEMA,
    _PERIPHERY_KEYS,
    _SINCE,
    _VERSION_SCHEMAS,
    FORMAT,
    MAX_PROBLEMS,
    RECORD_TYPES,
    VERSION,
    VERSIONS,
    BoardHeader,
    BoardStream,
    Checker,
    Record,
    _Bad,
    _show,
)
from lea_compiler.backends.board.validator import _Validator
from lea_compiler.chip import Periphery
from lea_compiler.errors import InvalidInputError
from lea_compiler.fileio import open_input, too_large
from lea_compiler.problems import Problems, json_value_problem, listing, summary_lines
from lea_compiler.schedule.plan import Schedule, schedule_of_stream

MAX_BOARD_BYTES = 4 * 2**30
"""Largest board file leac reads."""
MAX_LINE_BYTES = 256 * 2**20
"""Longest line of a board file leac decodes: a `digital` record carries its node's constants, and a model's
largest constant (`onnx_frontend.MAX_TENSOR_ELEMENTS` = 2**24 float32 numbers, ~15 characters each in JSON)
fits; decoding one line takes about four times its size in memory."""


def read_board(path: str | os.PathLike[str]) -> BoardStream:
    """Read a `leac-board` file back into its header and typed records.

    Raises:
        InvalidInputError: the file cannot be read, or breaks the format; the
            message lists the first `MAX_PROBLEMS` problems in file order, each
            with its line number and field, and counts the rest.
    """
    check = _check_board(path, keep_records=True)
    check.raise_if_invalid()
    assert check.stream is not None
    return check.stream


@dataclass(frozen=True)
class BoardCheck:
    """What `check_board` found: the header (None if line 1 is not a valid header), the first `MAX_PROBLEMS`
    problems in file order, and how many there are in all."""

    path: str
    header: BoardHeader | None
    problems: tuple[str, ...]
    total: int
    stream: BoardStream | None = None  # the records too, when read with `read_board`

    @property
    def more(self) -> int:
        """How many problems are not listed."""
        return self.total - len(self.problems)

    @property
    def listing(self) -> list[str]:
        """The problems listed, then "... and N more problems" if some are not."""
        return summary_lines(self.problems, self.more)

    def raise_if_invalid(self) -> None:
        """Raise InvalidInputError listing the problems (nothing if the file is valid)."""
        if not self.total:
            return
        noun = "problem" if self.total == 1 else "problems"
        raise InvalidInputError(f"{self.path}: invalid board file ({self.total} {noun}):\n"
                                f"{listing(self.problems, self.more)}")


def check_board(path: str | os.PathLike[str]) -> BoardCheck:
    """Check a `leac-board` file (see `validate_board`), streaming it: memory stays bounded whatever its size
    (up to `MAX_BOARD_BYTES`), and only the first `MAX_PROBLEMS` problems are kept, with a count of the rest.

    Raises:
        InvalidInputError: the file cannot be read at all.
    """
    return _check_board(path, keep_records=False)


def validate_board(path: str | os.PathLike[str]) -> list[str]:
    """The problems of a `leac-board` file ("line N: op.field: what"), in file order; empty if it is valid.
    At most `MAX_PROBLEMS` are listed, then one "... and N more problems" (`check_board` gives the count).

    Checks: the header comes first with the known format and a version leac
    reads (1 or 2); every record's op is known and its keys (those of the
    file's version) and types are right; coordinates lie
    inside the header's arrays; no device appears twice; write targets equal
    the level they name; each array's writes follow its `select_array`; the
    schedule reads every copy half of every layer and refers to values that
    exist; the counts in the header match the records.

    Raises:
        InvalidInputError: the file cannot be read at all.
    """
    return check_board(path).listing


def _reject_constant(text: str) -> float:
    raise ValueError(f"{text} is not a finite number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice")
            seen.add(key)
    return out


# NaN and Infinity are refused here; a number too large for a float (1e999)
# decodes to inf and is refused by the field checks.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def _decode_line(raw: bytes) -> Any:
    """A line's JSON value. Raises ValueError (also for UTF-8 errors and nesting deeper than Python's
    recursion limit, which the decoder reports as a RecursionError)."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


_BOM = b"\xef\xbb\xbf"
_CHUNK = 2**20
_NEWLINES = re.compile(rb"\n+")


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line without its newline, count) for the lines of the file, streamed a MiB at a time:
    the line is None when longer than `MAX_LINE_BYTES` (skipped unkept), and count > 1 for a run of empty
    lines (yielded once, so that 30 MB of them cost no more than a few records)."""
    source = os.fspath(path)
    with open_input(source, MAX_BOARD_BYTES, "board file") as handle:
        total = lineno = size = 0
        parts: list[bytes] = []  # the pieces of the current line so far (none kept once it is too long)
        try:
            while chunk := handle.read(_CHUNK):
                total += len(chunk)
                if total > MAX_BOARD_BYTES:
                    raise too_large(source, MAX_BOARD_BYTES, "board file")
                start = 0
                while start < len(chunk):
                    if not size and (run := _NEWLINES.match(chunk, start)):  # empty lines
                        count = run.end() - start
                        yield lineno + 1, b"", count
                        lineno, start = lineno + count, run.end()
                        continue
                    end = chunk.find(b"\n", start)
                    piece = chunk[start:] if end < 0 else chunk[start:end]
                    size += len(piece)
                    if size <= MAX_LINE_BYTES:
                        parts.append(piece)
                    else:
                        parts = []
                    if end < 0:
                        break
                    lineno += 1
                    yield lineno, None if size > MAX_LINE_BYTES else b"".join(parts), 1
                    parts, size, start = [], 0, end + 1
        except OSError as exc:
            raise InvalidInputError(f"{source}: cannot read the board file ({exc.strerror or exc})") from None
        if size:
            yield lineno + 1, None if size > MAX_LINE_BYTES else b"".join(parts), 1


class _Problems(Problems):
    """The first `MAX_PROBLEMS` problems in file order ("line N: ..."), and how many were found in all.

    Problems arrive nearly in line order (the end-of-layer and end-of-file checks name earlier lines), so each
    is ordered by the line it names."""

    def __init__(self) -> None:
        super().__init__(MAX_PROBLEMS)

    def extend(self, texts: Iterable[str], order: int = 0) -> None:
        for text in texts:
            self.add(text, int(text.split(maxsplit=2)[1].rstrip(":")))

    def add_run(self, line: int, repeats: int) -> None:
        """`repeats` lines identical to `line` (a line that is not a record) follow it: one problem for them."""
        self.extend([f"line {line + 1}: the {repeats} lines {line + 1}..{line + repeats} are the same as line "
                     f"{line}, with the same problem"])


def _parse_fields(
    obj: dict[str, Any], schema: Mapping[str, Checker], where: str, since: Mapping[str, int] | None = None,
    version: int = VERSION,
) -> tuple[dict[str, Any], list[str]]:
    """Check `obj` against `schema`: missing and unknown keys, then each value's type. A key `since` says
    belongs to a version later than the file's `version` is named as such."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    missing = 0
    for key, check in schema.items():
        try:
            values[key] = check(obj[key])
        except KeyError:
            missing += 1
            problems.append(f"{where}: missing key {key!r}")
        except _Bad as bad:
            problems.append(f"{where}.{key}{bad.suffix}: {bad.text}")
    if len(obj) - ("op" in obj) != len(schema) - missing:  # some key is not in the schema
        since = since or {}
        problems += [
            f"{where}: key {key!r} needs version {since[key]} of the format (the header says version {version})"
            if key in since else f"{where}: unknown key {key!r}"
            for key in obj if key not in schema and key != "op"
        ]
    return values, problems


def _parse_header(raw: bytes) -> tuple[BoardHeader | None, list[str], int | None]:
    """The header, its problems, and the file's version if reading the rest makes sense (a board file of a
    version leac reads)."""
    try:
        obj = _decode_line(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"line 1: the header is not valid JSON ({json_value_problem(exc)})"], None
    if not isinstance(obj, dict):
        return None, ["line 1: the header is not a JSON object"], None
    if obj.get("format") != FORMAT:
        shown = _show(obj["format"]) if "format" in obj else "missing"
        return (
            None,
            [f"line 1: header.format: {shown}, not {FORMAT!r}: not a leac board file"],
            None,
        )
    version = obj.get("version")
    if type(version) is not int or version not in VERSIONS:
        newer = type(version) is int and version > VERSION
        why = "newer than this leac reads" if newer else "not a version leac knows"
        known = ", ".join(map(str, VERSIONS[:-1])) + f" and {VERSIONS[-1]}"
        return (
            None,
            [f"line 1: header.version: {_show(version)} is {why} (it reads versions {known})"],
            None,
        )
    values, problems = _parse_fields(obj, _HEADER_SCHEMA, "line 1: header")
    if problems:
        return None, problems, version
    return BoardHeader(**values), [], version


def _parse_record(raw: bytes, lineno: int, version: int) -> tuple[Record | None, list[str]]:
    """The record on one line of a file of `version`, or its problems."""
    where = f"line {lineno}"
    if not raw.strip():
        return None, [f"{where}: empty line (every line after the header is one record)"]
    try:
        obj = _decode_line(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [f"{where}: not valid JSON ({json_value_problem(exc)})"]
    if not isinstance(obj, dict):
        return None, [f"{where}: not a JSON object"]
    if "op" not in obj:
        return None, [f"{where}: missing key 'op'"]
    op = obj["op"]
    kind = RECORD_TYPES.get(op) if isinstance(op, str) else None
    if kind is None:
        return None, [
            f"{where}: op: {_show(op)} is not a known record kind ({', '.join(RECORD_TYPES)})"
        ]
    schema = _VERSION_SCHEMAS[version][op]
    later = {key: since for key, since in _SINCE[op].items() if key not in schema}
    values, problems = _parse_fields(obj, schema, f"{where}: {op}", later, version)
    if problems:
        return None, problems
    return kind(**values), []


def _check_board(path: str | os.PathLike[str], *, keep_records: bool) -> BoardCheck:
    source = os.fspath(path)
    problems = _Problems()
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        problems.extend(["line 1: the file is empty (expected the leac-board header)"])
        return BoardCheck(source, None, problems.kept, problems.total)
    raw = first[1]
    if raw is None:
        problems.extend([f"line 1: longer than {MAX_LINE_BYTES} bytes: not a leac board file"])
        return BoardCheck(source, None, problems.kept, problems.total)
    if raw.startswith(_BOM):
        # the format is ASCII only; Python's json and many firmware parsers refuse a BOM, so a file that
        # has one is not what the board reads: say so, and check the rest as if it were removed
        problems.extend(["line 1: the file starts with a UTF-8 byte order mark (bytes EF BB BF), which a "
                         "leac-board file (ASCII only) never has: remove those three bytes"])
        raw = raw[len(_BOM):]
    header, found, version = _parse_header(raw)
    problems.extend(found)
    if version is None:
        return BoardCheck(source, None, problems.kept, problems.total)
    checker = _Validator(header)
    records: list[Record] = []
    bad: bytes | None = None  # the last line that is not a record, and how many identical lines follow it
    bad_line = repeats = 0
    for lineno, raw, count in lines:
        if raw is not None and raw == bad:  # 30 MB of empty lines: one problem per run, not per line
            repeats += count
            continue
        if repeats:
            problems.add_run(bad_line, repeats)
            repeats = 0
        if raw is None:
            problems.extend([f"line {lineno}: longer than {MAX_LINE_BYTES} bytes, more than leac reads"])
            continue
        record, found = _parse_record(raw, lineno, version)
        problems.extend(found)
        bad, bad_line = (raw, lineno) if record is None else (None, 0)
        repeats = count - 1  # more empty lines (never a record)
        if record is not None:
            if keep_records:
                records.append(record)
            problems.extend(checker.check(record, lineno))
    if repeats:
        problems.add_run(bad_line, repeats)
    problems.extend(checker.finish())
    duplicates, count = checker.devices.duplicates(MAX_PROBLEMS)
    problems.extend(duplicates)
    problems.total += count - len(duplicates)  # counted, not listed
    stream = BoardStream(header, tuple(records)) if keep_records and header and not problems.total else None
    return BoardCheck(source, header, problems.kept, problems.total, stream)


def board_schedule(stream: BoardStream) -> Schedule:
    """The schedule a board file holds, as the simulator runs it (`simulate(..., board=...)`): its programming
    records as each array's levels and skipped devices, and its crossbar and digital records."""
    header = stream.header
    origin = {"model_sha256": header.model.get("sha256"), "chip_fingerprint": header.chip.get("fingerprint"),
              "compile_options": header.compile_options, "tolerance_uS": header.tolerance_uS,
              "max_pulses": header.max_pulses}
    return schedule_of_stream(header.levels_uS, [(a.id, a.rows, a.cols) for a in header.arrays], stream.records,
                              origin)



def periphery_differences(stream: BoardStream, periphery: Periphery) -> list[str]:
    """The header's periphery values (a missing optional key: its default, `chip.Periphery`) that differ from
    `periphery`'s, as 'key: file value, chip value' texts. The simulator times and prices a board file's
    schedule with the simulating chip's periphery, so a file that assumed another is reported (`leac simulate`
    warns; docs/board-format.md)."""
    header = stream.header.periphery
    default = Periphery()
    out = []
    for key in _PERIPHERY_KEYS:
        value = header.get(key, getattr(default, key))
        if value != getattr(periphery, key):
            out.append(f"{key} {value!r} in the file, {getattr(periphery, key)!r} on the chip")
    return out
