"""Defect entries read and written in bulk (lea_compiler/chip/defect_text.py) give exactly what the general path
gives: the same text as `json.dumps` and `chip_to_text`, the same chip, table and fingerprint as decoding the JSON,
and for a file with any problem the general path's messages (issue 19: Program.load on a 2%-stuck chip)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lea_compiler.chip import (
    Array,
    Chip,
    Defect,
    chip_to_json,
    chip_to_text,
    decode_chip_json,
    load_chip,
    parse_chip,
    synth_chip,
)
from lea_compiler.chip.defect_text import PlainEntries, plain_entries_text, read_plain_entries
from lea_compiler.chip.forms import _canonical_defect_texts, _canonical_defects, _defect_lines
from lea_compiler.chip.io import parse_chip_text, written_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidChipError, InvalidInputError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from tests.helpers import mlp_model

_VALUES = st.integers(min_value=0, max_value=2**63 - 1) | st.integers(min_value=0, max_value=1200)
"""Anything the writer takes (every int64 >= 0, up to 19 digits), and the usual small numbers."""
_ENTRIES = st.lists(st.tuples(_VALUES, _VALUES, _VALUES, st.booleans()), min_size=1, max_size=40)


def _columns(entries: list[tuple[int, int, int, bool]]) -> PlainEntries:
    a, r, c, h = zip(*entries, strict=True)
    return PlainEntries(np.array(a, np.int64), np.array(r, np.int64), np.array(c, np.int64), np.array(h, bool))


def _state(high: bool) -> str:
    return "stuck_high" if high else "stuck_low"


def _both_readings(text: str) -> tuple[Chip | str, Chip | str]:
    """The chip (or the refusal's message) that decoding the JSON gives, and that parse_chip_text gives."""
    try:
        general: Chip | str = parse_chip(decode_chip_json(text, "c.json"), "c.json")
    except InvalidChipError as exc:
        general = str(exc)
    try:
        fast: Chip | str = parse_chip_text(text, "c.json")
    except InvalidChipError as exc:
        fast = str(exc)
    return general, fast


@settings(max_examples=60, deadline=None)
@given(_ENTRIES)
def test_the_text_is_what_json_dumps_and_chip_to_text_write_and_reads_back(entries) -> None:
    columns = _columns(entries)
    canonical = ",".join(json.dumps({"array": a, "row": r, "col": c, "state": _state(h)}, sort_keys=True,
                                    separators=(",", ":")) for a, r, c, h in entries)
    assert plain_entries_text(columns, canonical=True) == canonical.encode()
    lines = ",\n".join(_defect_lines([Defect(a, r, c, _state(h)) for a, r, c, h in entries])).encode()
    assert plain_entries_text(columns, canonical=False) == lines
    back = read_plain_entries(lines)
    assert back is not None and all(np.array_equal(x, y) for x, y in zip(back, columns, strict=True))


_LINE = b'    {"array": 3, "row": 10, "col": 7, "state": "stuck_high"}'


@pytest.mark.parametrize("text", [
    b"",
    _LINE.replace(b"10", b"010"),  # a leading zero: not JSON
    _LINE.replace(b'"row": 10, ', b'"row":10, '),  # other spacing: valid JSON, but not the layout read here
    _LINE.replace(b'"col"', b'"cl"'),
    _LINE.replace(b"stuck_high", b"stuck_hi"),
    _LINE.replace(b"stuck_high", b"stuck_hxgh"),
    _LINE.replace(b'"}', b'", "g_uS": 4.0}'),
    b'    {"array": 3, "row": 10, "state": "stuck_high"}',  # a whole row
    _LINE.replace(b"3", b"1" * 20),  # beyond int64: the general path
    _LINE.replace(b"3", b"9" * 19),  # 19 digits, beyond int64
    _LINE.replace(b"3", str(2**63).encode()),
    _LINE + b"\n",
    _LINE + b",\n" + _LINE.replace(b"    {", b"   {"),
    _LINE + b",\n" + _LINE + b",",
    b"\n" * 1000,  # more lines than entries could fill: refused before anything is allocated per line
])
def test_anything_but_the_written_layout_is_left_to_the_general_path(text: bytes) -> None:
    assert read_plain_entries(text) is None
    assert read_plain_entries(_LINE + b",\n" + _LINE) is not None


def test_every_int64_reads_back_and_a_number_beyond_the_bounds_given_is_not_read() -> None:
    top = 2**63 - 1
    entries = _columns([(top, 0, 5, True), (10**18, 4095, 0, False), (0, 9, 4095, True)])
    text = plain_entries_text(entries, canonical=False)
    assert text.decode().splitlines()[0] == f'    {{"array": {top}, "row": 0, "col": 5, "state": "stuck_high"}},'
    for largest in [(top, 4095, 4095), (top, 9999, 9999)]:
        back = read_plain_entries(text, largest)
        assert back is not None and all(np.array_equal(x, y) for x, y in zip(back, entries, strict=True))
    # A number larger than its bound (an entry outside the chip), with as many digits or more: not read.
    for largest in [(top - 1, 4095, 4095), (10**18, 4095, 4095), (top, 4094, 4095), (top, 4095, 999)]:
        assert read_plain_entries(text, largest) is None


def test_plain_entries_text_refuses_a_negative_value() -> None:
    for name, entries in [("array", _columns([(0, 1, 2, True), (-1, 0, 0, True)])),
                          ("row", _columns([(5, -3, 2, False)])), ("col", _columns([(5, 3, -2**63, False)]))]:
        for canonical in (False, True):
            with pytest.raises(ValueError, match=f"a {name} is negative .*every value must be >= 0"):
                plain_entries_text(entries, canonical=canonical)


def _canonical_fingerprint(chip: Chip) -> str:
    """`Chip.fingerprint` as its definition says, by json.dumps of the whole chip (docs/chip-format.md)."""
    obj = chip_to_json(chip)
    obj.pop("name", None)
    obj["arrays"] = [{"id": a.id, "rows": a.rows, "cols": a.cols} for a in chip.arrays]
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize("big", [10**18, 2**63 - 1])
def test_a_listed_array_with_a_19_digit_id_validates_shows_and_compiles_with_the_json_fingerprint(
        tmp_path: Path, capsys, big: int) -> None:
    """Array ids up to 2**63 - 1 (the writer's range): the fingerprint written in bulk is json.dumps's, and for
    10**18 the one leac gave before the bulk writer (e6b6e93)."""
    chip = Chip(arrays=tuple(Array(i, 64, 64) for i in range(4)) + (Array(big, 64, 64),),
                defects=(Defect(big, 0, 1, "stuck_high"), Defect(0, 3, 3, "stuck_low")))
    path = tmp_path / "c.json"
    path.write_text(chip_to_text(chip))
    expected = _canonical_fingerprint(chip)
    if big == 10**18:
        assert expected == "236062dc0c376f95643bf3b911ca2924a6219eef0d7e010c51590734dcec525c"
    assert parse_chip_text(path.read_text(), "c.json").fingerprint() == expected
    fingerprints = []
    for command in (["chip", "validate"], ["chip", "show"]):
        assert main([*command, str(path), "--json"]) == 0
        fingerprints.append(json.loads(capsys.readouterr().out)["fingerprint"])
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), model)
    program = compile_model(model, load_chip(path), CompileOptions(k=1, placer="greedy")).program
    fingerprints.append(Program.from_bytes(program.to_bytes()).chip.fingerprint())
    assert fingerprints == [expected] * 3


def test_an_array_id_beyond_int64_is_refused_with_its_path_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    """The chip format's largest array id is 2**63 - 1 (docs/chip-format.md, Limits): a larger one once passed
    `chip validate` but crashed `chip show`, the fingerprint and, since the bulk reader, loading."""
    text = chip_to_text(Chip(arrays=(Array(0, 4, 4), Array(1, 4, 4)),
                             defects=(Defect(0, 0, 1, "stuck_high"), Defect(1, 2, 3, "stuck_low"))))
    text = text.replace('"id": 1,', f'"id": {2**63},').replace('"array": 1,', '"array": 0,')
    message = f"arrays[1].id: {2**63} is more than leac supports ({2**63 - 1})"
    assert written_chip(text, "c.json") is None
    for parse in (lambda: parse_chip_text(text, "c.json"), lambda: parse_chip(decode_chip_json(text, "c"), "c"),
                  lambda: Chip(arrays=(Array(0, 4, 4), Array(2**63, 4, 4)))):
        with pytest.raises(InvalidChipError, match=re.escape(message)):
            parse()
    chip = tmp_path / "c.json"
    chip.write_text(text)
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), model)
    before = sorted(tmp_path.iterdir())
    for argv in (["chip", "validate", str(chip)], ["chip", "show", str(chip)],
                 ["compile", str(model), "--chip", str(chip), "-k", "1", "--placer", "greedy", "-o",
                  str(tmp_path / "p.leac")]):
        assert main(argv) == 3
        assert message in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == before
    # The largest id below the limit is still a chip, as every id below 2**63 always was.
    assert Chip(arrays=(Array(0, 4, 4), Array(2**63 - 1, 4, 4))).arrays[1].id == 2**63 - 1


def _same_chip(fast: Chip, general: Chip) -> None:
    assert fast == general and fast.grid == general.grid and fast.name == general.name
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(fast._table, general._table, strict=True))
    assert fast.fingerprint() == general.fingerprint()


@pytest.mark.parametrize("seed", range(4))
def test_a_written_chip_reads_as_the_json_decoder_reads_it(seed: int) -> None:
    chip = synth_chip(arrays=6, rows=20, cols=12, stuck_high=0.05, stuck_low=0.03, seed=seed,
                      name=None if seed % 2 else f"chip {seed}")
    text = chip_to_text(chip)
    fast = written_chip(text, "c.json")
    assert fast is not None
    _same_chip(fast, parse_chip(decode_chip_json(text, "c.json"), "c.json"))
    _same_chip(fast, chip)


def test_a_chip_of_arrays_listed_with_large_ids_reads_the_same_both_ways() -> None:
    arrays = (Array(123456, 3000, 2), Array(7, 4, 4096), Array(1000, 2, 2))
    defects = (Defect(123456, 2999, 1, "stuck_low"), Defect(7, 0, 4095, "stuck_high"), Defect(1000, 1, 1, "stuck_high"),
               Defect(7, 3, 999, "stuck_low"))
    chip = Chip(arrays=arrays, defects=defects, name="listed")
    text = chip_to_text(chip)
    fast = written_chip(text, "c.json")
    assert fast is not None
    _same_chip(fast, parse_chip(decode_chip_json(text, "c.json"), "c.json"))
    assert _canonical_defects(fast._table, fast.arrays) == ",".join(
        _canonical_defect_texts(fast._table, fast.arrays)).encode()


def test_lines_and_measured_conductances_take_the_general_path_and_read_the_same() -> None:
    chip = Chip(arrays=(Array(0, 4, 4),), defects=(Defect(0, 1, 2, "stuck_high"), Defect(0, 3, None, "stuck_low"),
                                                   Defect(0, 0, 0, "stuck_low", g_uS=4.25)))
    text = chip_to_text(chip)
    assert written_chip(text, "c.json") is None
    _same_chip(parse_chip_text(text, "c.json"), chip)


_UNREADABLE = {  # an edit of the last defect line; whether io.py's own checks let read_plain_entries see it
    "g_uS": ('"}', '", "g_uS": 4.25}', False),
    "whole row": (', "col": 1', "", True),
    "a number beyond the chip's ids": ('"array": 1,', '"array": 123456789012345678,', True),
    "a row beyond its rows": ('"row": 2,', '"row": 123456789012345678,', True),
    "a col beyond its cols": ('"col": 1,', '"col": 41,', True),
    "a space before a number": ('"col": 1,', '"col":  1,', True),
    "a line too long for its digits": ('_high"}', '_highs"}', True),
    "carriage return": ("},\n", "},\r\n", True),
}


@pytest.mark.parametrize("case", sorted(_UNREADABLE))
def test_lines_the_bulk_path_cannot_take_are_turned_away_before_they_are_written_again(case: str,
                                                                                       monkeypatch) -> None:
    """Issue 19 review: a file the bulk path cannot take costs next to nothing over the JSON decoder: it is turned
    away by cheap checks (g_uS in the text; line lengths, line endings, numbers beyond the chip's bounds), never by
    writing the lines again and comparing (which costs a few times the text's size)."""
    chip = Chip(arrays=(Array(0, 40, 40), Array(1, 40, 40)),
                defects=(Defect(0, 0, 1, "stuck_high"), Defect(1, 3, 5, "stuck_low"), Defect(1, 2, 1, "stuck_high")))
    text = chip_to_text(chip)
    old, new, read = _UNREADABLE[case]
    at = text.rindex(old)
    edited = text[:at] + new + text[at + len(old):]
    calls: list[str] = []

    def never(*args, **kwargs):
        raise AssertionError("the lines were written again")

    def counted(*args, **kwargs):
        calls.append("read")
        return read_plain_entries(*args, **kwargs)

    monkeypatch.setattr("lea_compiler.chip.defect_text.plain_entries_text", never)
    monkeypatch.setattr("lea_compiler.chip.io.read_plain_entries", counted)
    assert written_chip(edited, "c.json") is None
    assert calls == (["read"] if read else [])
    monkeypatch.undo()
    assert written_chip(text, "c.json") is not None  # (the file before the edit is read in bulk)
    general, fast = _both_readings(edited)
    if isinstance(general, str) or isinstance(fast, str):
        assert fast == general
    else:
        _same_chip(fast, general)


_BAD_DEFECTS = {
    "unknown array": ('{"array": 0, "row": 0, "col": 1,', '{"array": 9, "row": 0, "col": 1,',
                      "defects[0].array: 9 is not the id of any array"),
    "outside": ('{"array": 0, "row": 0, "col": 1,', '{"array": 0, "row": 4, "col": 1,',
                "defects[0].row: 4 is outside array 0 (4 rows)"),
    "two states": ('{"array": 1, "row": 2, "col": 3, "state": "stuck_low"}',
                   '{"array": 1, "row": 0, "col": 1, "state": "stuck_low"}',
                   "device (array 1, row 0, col 1) is marked stuck_low here and stuck_high in defects[1]"),
    "bad head": ('"levels_uS": [', '"levels_uS": [-1.0, ', "device.levels_uS"),
    "a second defect list": ('"arrays": [', '"defects": [], "arrays": [', "defects: key appears more than once"),
}


@pytest.mark.parametrize("case", sorted(_BAD_DEFECTS))
def test_a_file_with_a_problem_in_the_written_layout_gets_the_general_path_s_messages(case: str) -> None:
    chip = Chip(arrays=(Array(0, 4, 4), Array(1, 4, 4)),
                defects=(Defect(0, 0, 1, "stuck_high"), Defect(1, 0, 1, "stuck_high"), Defect(1, 2, 3, "stuck_low")))
    old, new, message = _BAD_DEFECTS[case]
    text = chip_to_text(chip)
    assert old in text
    bad = text.replace(old, new, 1)
    assert written_chip(bad, "c.json") is None
    with pytest.raises(InvalidChipError) as general:
        parse_chip(decode_chip_json(bad, "c.json"), "c.json")
    with pytest.raises(InvalidChipError) as fast:
        parse_chip_text(bad, "c.json")
    assert str(fast.value) == str(general.value) and message in str(fast.value)


_EDIT_BYTES = '0123456789 ",:{}[]\nabcdefghiklorstuwy_-.e+'
_EDIT_TEXT = chip_to_text(Chip(
    arrays=(Array(0, 12, 12), Array(1, 12, 12), Array(2, 3, 200)),
    defects=(Defect(0, 0, 1, "stuck_high"), Defect(1, 10, 11, "stuck_low"), Defect(1, 2, 3, "stuck_high"),
             Defect(2, 2, 199, "stuck_low"), Defect(0, 11, 0, "stuck_high"), Defect(2, 0, 100, "stuck_high"))))


_BYTE_EDIT = st.tuples(st.just("byte"), st.integers(0, 10**6), st.sampled_from(_EDIT_BYTES), st.integers(0, 2))
_LINE_EDIT = st.tuples(st.sampled_from(["flip", "drop", "copy", "number"]), st.integers(0, 10**6), st.integers(0, 2),
                       st.integers(0, 3) | st.integers(0, 250))


def _edited(text: str, edit: tuple) -> str:
    """`text` with one edit of its defect lines: a byte replaced, inserted or deleted (`byte`), or a whole line
    edited as leac would write it: its state flipped, the line dropped or copied elsewhere, one of its numbers
    replaced (`flip`, `drop`, `copy`, `number`; nothing if byte edits have broken the list's layout)."""
    kind, where, what, how = edit
    start = text.index('"defects": [') + 13
    if kind == "byte":
        at = start + where % (len(text) - start)
        return text[:at] + (what if how < 2 else "") + text[at + (how != 1):]
    stop = text.rfind("\n  ]\n}")
    if text[start - 2:start] != "[\n" or stop <= start:
        return text
    lines = text[start:stop].split(",\n")
    i = where % len(lines)
    if kind == "flip":
        lines[i] = lines[i].replace("high", "\0").replace("low", "high").replace("\0", "low")
    elif kind == "drop" and len(lines) > 1:
        del lines[i]
    elif kind == "copy":
        lines.insert(how % (len(lines) + 1), lines[i])
    elif kind == "number":
        numbers = list(re.finditer(r"\d+", lines[i]))
        if numbers:
            found = numbers[what % len(numbers)]
            lines[i] = lines[i][:found.start()] + str(how) + lines[i][found.end():]
    return text[:start] + ",\n".join(lines) + text[stop:]


@settings(max_examples=300, deadline=None)
@given(st.lists(_BYTE_EDIT | _LINE_EDIT, min_size=1, max_size=3))
def test_an_edited_file_reads_the_same_as_through_the_json_decoder(edits) -> None:
    """Edits of the defect lines (bytes replaced, inserted or deleted; whole lines edited as leac writes them):
    parse_chip_text gives what decoding the JSON gives, a chip or the same problems; and a file that is what leac
    writes for the chip it holds, as every valid chip made by line edits alone is, is read in bulk."""
    text = _EDIT_TEXT
    for edit in edits:
        text = _edited(text, edit)
    general, fast = _both_readings(text)
    if isinstance(general, str) or isinstance(fast, str):
        assert fast == general
        return
    _same_chip(fast, general)
    written = chip_to_text(general) == text
    if all(kind != "byte" for kind, *_ in edits):
        assert written  # line edits keep the layout: the bulk assertion below holds for them
    if written and all(d.row is not None and d.col is not None and d.g_uS is None for d in general.defects):
        bulk = written_chip(text, "c.json")
        assert bulk is not None
        _same_chip(bulk, general)
        event("read in bulk")


def test_line_edits_make_valid_chips_read_in_bulk_often() -> None:
    """The edits above reach the bulk path (a fair share of them: the test is not about the general path only)."""
    rng = np.random.default_rng(5)
    bulk = 0
    for _ in range(200):
        text = _EDIT_TEXT
        for _ in range(rng.integers(1, 4)):
            kind = ["flip", "drop", "copy", "number"][rng.integers(4)]
            text = _edited(text, (kind, int(rng.integers(10**6)), int(rng.integers(3)),
                                  int(rng.integers(4) if rng.random() < 0.5 else rng.integers(251))))
        bulk += written_chip(text, "c.json") is not None
    assert bulk >= 100, bulk


_DIGIT_AT = [i for i, c in enumerate(_EDIT_TEXT) if c.isdigit() and i > _EDIT_TEXT.index('"defects": [')]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_DIGIT_AT), st.sampled_from("0123456789")), min_size=1, max_size=4))
def test_a_file_with_other_numbers_reads_the_same_as_through_the_json_decoder(edits) -> None:
    """Digits replaced by digits: mostly another valid chip, read in bulk, the same as decoding the JSON gives
    (or, with a leading zero, a device outside its array or in two states, the same problems)."""
    text = _EDIT_TEXT
    for at, digit in edits:
        text = text[:at] + digit + text[at + 1:]
    try:
        general: Chip | str = parse_chip(decode_chip_json(text, "c.json"), "c.json")
    except InvalidChipError as exc:
        general = str(exc)
    if isinstance(general, str):
        with pytest.raises(InvalidChipError) as fast:
            parse_chip_text(text, "c.json")
        assert str(fast.value) == general
    else:  # valid JSON (no leading zero) and a valid chip: read in bulk
        bulk = written_chip(text, "c.json")
        assert bulk is not None
        _same_chip(bulk, general)


# ------------------------------------------------------------- a Program's chip
def _program_with_chip_text(tmp_path: Path, edit) -> tuple[Path, Program]:
    """A Program compiled for a 2%-stuck chip, and the same file with its chip.json's text edited."""
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), model)
    chip = synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.015, stuck_low=0.005, seed=3)
    program = compile_model(model, chip, CompileOptions(k=1, placer="greedy")).program
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(program.to_bytes())) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, edit(data.decode(), program).encode() if info.filename == "chip.json" else data)
    path = tmp_path / "edited.leac"
    path.write_bytes(buffer.getvalue())
    return path, program


def _unused_line(text: str, program: Program) -> tuple[int, str]:
    """The index and line of the first defect entry of an array the Program does not use."""
    used = set(program.arrays_used)
    lines = text[text.index('"defects": [\n') + 13:].splitlines()
    for i, line in enumerate(lines):
        if json.loads(line.strip().rstrip(","))["array"] not in used:
            return i, line
    raise AssertionError("every array with defects is used")


def test_a_program_loads_its_written_chip_in_bulk_and_the_same_as_before(tmp_path: Path) -> None:
    path, program = _program_with_chip_text(tmp_path, lambda text, _: text)
    text = chip_to_text(program.chip)
    assert written_chip(text, "chip.json") is not None
    loaded = Program.load(path)
    _same_chip(loaded.chip, parse_chip(decode_chip_json(text, "c.json"), "c.json"))
    assert loaded.to_bytes() == program.to_bytes()


@pytest.mark.parametrize("damage", ["outside", "two states"])
def test_a_program_whose_chip_has_a_bad_defect_in_an_array_it_does_not_use_is_refused(tmp_path: Path, capsys,
                                                                                        damage: str) -> None:
    """The chip inside a Program is a chip file, validated whole (docs/chip-format.md: a file that breaks any
    rule is refused before any work starts), whichever arrays the Program uses."""
    found: dict[str, object] = {}

    def edit(text: str, program: Program) -> str:
        i, line = _unused_line(text, program)
        entry = json.loads(line.strip().rstrip(","))
        if damage == "outside":
            new = line.replace(f'"row": {entry["row"]},', '"row": 16,')
            found["message"] = f"defects[{i}].row: 16 is outside array {entry['array']} (16 rows)"
        else:  # the same device again, in the other state, as the next entry
            other = "stuck_low" if entry["state"] == "stuck_high" else "stuck_high"
            new = line.rstrip(",") + ",\n" + line.replace(entry["state"], other)
            found["message"] = f"is marked {other} here and {entry['state']} in defects[{i}]"
        return text.replace(line, new, 1)

    path, _ = _program_with_chip_text(tmp_path, edit)
    with pytest.raises(InvalidInputError, match=str(found["message"]).replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        Program.load(path)
    out = tmp_path / "p.board"
    assert main(["emit", str(path), "-o", str(out)]) == 3
    assert str(found["message"]) in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["edited.leac", "mlp.onnx"]
