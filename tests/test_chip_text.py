"""Defect entries read and written in bulk (lea_compiler/chip/defect_text.py) give exactly what the general path
gives: the same text as `json.dumps` and `chip_to_text`, the same chip, table and fingerprint as decoding the JSON,
and for a file with any problem the general path's messages (issue 19: Program.load on a 2%-stuck chip)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lea_compiler.chip import Array, Chip, Defect, chip_to_text, decode_chip_json, parse_chip, synth_chip
from lea_compiler.chip.defect_text import PlainEntries, plain_entries_text, read_plain_entries
from lea_compiler.chip.forms import _canonical_defect_texts, _canonical_defects, _defect_lines
from lea_compiler.chip.io import parse_chip_text, written_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidChipError, InvalidInputError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from tests.helpers import mlp_model

_VALUES = st.integers(min_value=0, max_value=10**18 - 1) | st.integers(min_value=0, max_value=1200)
_ENTRIES = st.lists(st.tuples(_VALUES, _VALUES, _VALUES, st.booleans()), min_size=1, max_size=40)


def _columns(entries: list[tuple[int, int, int, bool]]) -> PlainEntries:
    a, r, c, h = zip(*entries, strict=True)
    return PlainEntries(np.array(a, np.int64), np.array(r, np.int64), np.array(c, np.int64), np.array(h, bool))


def _state(high: bool) -> str:
    return "stuck_high" if high else "stuck_low"


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
    _LINE.replace(b"3", b"1" * 19),  # beyond int64: the general path
    _LINE + b"\n",
    _LINE + b",\n" + _LINE.replace(b"    {", b"   {"),
    _LINE + b",\n" + _LINE + b",",
    b"\n" * 1000,  # more lines than entries could fill: refused before anything is allocated per line
])
def test_anything_but_the_written_layout_is_left_to_the_general_path(text: bytes) -> None:
    assert read_plain_entries(text) is None
    assert read_plain_entries(_LINE + b",\n" + _LINE) is not None


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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(_EDIT_BYTES), st.integers(0, 2)), min_size=1,
                max_size=3))
def test_an_edited_file_reads_the_same_as_through_the_json_decoder(edits) -> None:
    """Edits of the defect lines (a byte replaced, inserted or deleted): the bulk path gives what decoding the JSON
    gives, a chip or the same problems."""
    text = _EDIT_TEXT
    start = text.index('"defects": [') + 13
    for where, byte, kind in edits:
        at = start + where % (len(text) - start)
        text = text[:at] + (byte if kind < 2 else "") + text[at + (kind != 1):]
    try:
        general: Chip | str = parse_chip(decode_chip_json(text, "c.json"), "c.json")
    except InvalidChipError as exc:
        general = str(exc)
    try:
        fast: Chip | str = parse_chip_text(text, "c.json")
    except InvalidChipError as exc:
        fast = str(exc)
    if isinstance(general, str) or isinstance(fast, str):
        assert fast == general
    else:
        _same_chip(fast, general)


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
