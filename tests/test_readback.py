"""Tests of lea_compiler/programming/readback.py: the `leac-readback` file (docs/readback-format.md)."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lea_compiler.chip import Array, Chip, Defect
from lea_compiler.chip_limits import MAX_CONDUCTANCE_uS
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.programming.readback import (
    BASE_BYTES,
    BYTES_PER_DEVICE,
    MAX_READBACK_BYTES,
    ReadBack,
    load_readback,
    max_readback_bytes,
    readback_bytes,
    readback_from_bytes,
    readback_of,
    save_readback,
)

NAN = math.nan


def _chip(name: str | None = "lab") -> Chip:
    """Array 0 of 2 x 3 and array 3 of 1 x 2 (ids need not be 0..n-1)."""
    return Chip(arrays=(Array(0, 2, 3), Array(3, 1, 2)), name=name)


def _readback(chip: Chip | None = None, source: str = "leac simulated board, seed 3") -> ReadBack:
    chip = chip or _chip()
    return readback_of(chip, {3: np.array([[1.5, NAN]]), 0: np.array([[133.0, -0.0, 1e-7], [2, 3, 4]])},
                       reads=8, source=source)


def _document(chip: Chip | None = None) -> dict[str, Any]:
    """A valid read-back of `_chip()` as a decoded JSON document, for the tests to break."""
    chip = chip or _chip()
    return {"format": "leac-readback", "version": 1, "chip": {"name": "lab", "fingerprint": chip.fingerprint()},
            "reads": 8, "source": "station 2",
            "arrays": [{"array": 0, "rows": 2, "cols": 3, "g_uS": [[133.2, None, 200], [166.9, 233.1, 0]]},
                       {"array": 3, "rows": 1, "cols": 2, "g_uS": [[10.0, 500.0]]}]}


def _refused(text: str | bytes, chip: Chip | None = None) -> str:
    """The message refusing `text` as a read-back of `chip`."""
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(InvalidInputError) as info:
        readback_from_bytes(data, chip or _chip(), "r.json")
    return str(info.value)


def _same(a: ReadBack, b: ReadBack) -> None:
    assert (a.chip_fingerprint, a.chip_name, a.reads, a.source) == (b.chip_fingerprint, b.chip_name, b.reads,
                                                                    b.source)
    assert list(a.arrays) == list(b.arrays)
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])  # NaN == NaN here, values bit for bit


# --------------------------------------------------------------------------
# Writing and round trips


def test_the_file_is_the_documented_layout_byte_for_byte() -> None:
    chip = _chip()
    expected = (
        "{\n"
        '  "format": "leac-readback",\n'
        '  "version": 1,\n'
        f'  "chip": {{"name": "lab", "fingerprint": "{chip.fingerprint()}"}},\n'
        '  "reads": 8,\n'
        '  "source": "leac simulated board, seed 3",\n'
        '  "arrays": [\n'
        '    {"array": 0, "rows": 2, "cols": 3, "g_uS": [\n'
        "      [133.0, 0.0, 1e-07],\n"
        "      [2.0, 3.0, 4.0]\n"
        "    ]},\n"
        '    {"array": 3, "rows": 1, "cols": 2, "g_uS": [\n'
        "      [1.5, null]\n"
        "    ]}\n"
        "  ]\n"
        "}\n"
    )
    assert readback_bytes(_readback(chip)).decode("ascii") == expected


def test_the_documents_examples_are_what_leac_reads_and_writes() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "readback-format.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", doc, flags=re.DOTALL)
    assert len(blocks) == 2
    minimal = readback_from_bytes(blocks[0].encode(), _chip(), "docs")
    np.testing.assert_array_equal(minimal.arrays[0], [[133.2, NAN, 200.0], [166.9, 233.1, 0.0]])
    assert blocks[1] == readback_bytes(_readback()).decode()


def test_save_and_load_give_an_equal_readback_and_resaving_identical_bytes(tmp_path: Path) -> None:
    chip = _chip()
    first = _readback(chip)
    save_readback(first, tmp_path / "a.json")
    loaded = load_readback(tmp_path / "a.json", chip)
    _same(first, loaded)
    save_readback(loaded, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert loaded.arrays[0][0, 1] == 0.0 and not math.copysign(1.0, loaded.arrays[0][0, 1]) < 0  # -0.0 saved as 0.0


def test_nan_is_written_as_null_and_null_reads_as_nan() -> None:
    chip = _chip()
    readback = readback_of(chip, {0: np.full((2, 3), NAN)}, reads=1)
    text = readback_bytes(readback).decode()
    assert "[null, null, null],\n      [null, null, null]" in text
    assert readback.devices_read() == 0
    loaded = readback_from_bytes(text.encode(), chip)
    assert np.isnan(loaded.arrays[0]).all() and loaded.arrays[0].shape == (2, 3)


def test_a_hand_written_minimal_file_loads_with_its_values() -> None:
    chip = _chip()
    text = ('{"format": "leac-readback", "version": 1, "chip": {"fingerprint": "FP"}, "reads": 3,\n'
            ' "arrays": [{"array": 3, "rows": 1, "cols": 2, "g_uS": [[200, null]]}]}').replace("FP", chip.fingerprint())
    readback = readback_from_bytes(text.encode(), chip, "hand.json")
    assert readback.chip_name is None and readback.source == "" and readback.reads == 3
    assert list(readback.arrays) == [3]
    assert readback.arrays[3].dtype == np.float64 and readback.arrays[3][0, 0] == 200.0
    assert np.isnan(readback.arrays[3][0, 1])
    assert readback.devices_read() == 1
    assert readback.chip_fingerprint == chip.fingerprint()


def test_a_file_with_a_byte_order_mark_and_the_other_name_of_the_same_chip_loads() -> None:
    chip = _chip("lab")
    document = _document(chip)
    document["chip"]["name"] = "renamed"  # the fingerprint does not hash the name: the same chip
    readback = readback_from_bytes(b"\xef\xbb\xbf" + json.dumps(document).encode(), chip)
    assert readback.chip_name == "renamed"
    np.testing.assert_array_equal(readback.arrays[0], [[133.2, NAN, 200.0], [166.9, 233.1, 0.0]])


def test_devices_read_counts_every_value_but_nan() -> None:
    assert _readback().devices_read() == 7  # 6 of array 0, 1 of array 3


def test_readback_of_fills_the_chip_and_keeps_arrays_read_only_by_ascending_id() -> None:
    chip = _chip("lab")
    values = {3: np.array([[1, 2]]), 0: np.zeros((2, 3))}
    readback = readback_of(chip, values, reads=2, source="s")
    assert (readback.chip_fingerprint, readback.chip_name) == (chip.fingerprint(), "lab")
    assert list(readback.arrays) == [0, 3] and readback.arrays[3].dtype == np.float64
    with pytest.raises(ValueError):
        readback.arrays[0][0, 0] = 1.0
    values[0][0, 0] = 9.0  # a copy was kept
    assert readback.arrays[0][0, 0] == 0.0
    with pytest.raises(TypeError):
        readback.arrays[5] = np.zeros((1, 1))  # type: ignore[index]


def test_an_empty_readback_round_trips() -> None:
    chip = _chip(None)
    readback = readback_of(chip, {}, reads=1)
    data = readback_bytes(readback)
    assert b'"arrays": []' in data and b'"name": null' in data
    _same(readback, readback_from_bytes(data, chip))


# --------------------------------------------------------------------------
# Constructing a ReadBack or readback_of with bad values


def test_readback_of_lists_every_array_the_chip_lacks_and_every_wrong_shape() -> None:
    with pytest.raises(InvalidInputError) as info:
        readback_of(_chip(), {7: np.zeros((1, 1)), 0: np.zeros((3, 2)), 3: np.zeros((1, 2))}, reads=1)
    message = str(info.value)
    assert "invalid read-back of chip 'lab' (fingerprint " in message and "(2 problems)" in message
    assert "array 7: the chip has no such array (its arrays: 0, 3)" in message
    assert "array 0: shape (3, 2) is not the array's 2 x 3" in message


def test_a_readback_with_bad_fields_lists_every_problem() -> None:
    with pytest.raises(InvalidInputError) as info:
        ReadBack("abc", 5, 0, {0: np.array([[-1.0, np.inf, 2e6, NAN]]), -1: np.zeros((1, 1)),  # type: ignore[arg-type]
                              1: np.array(["a"]), 2: np.zeros(3), 4: [[1.0], [1.0, 2.0]]}, source=3)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("invalid read-back (11 problems):")
    for line in ("chip_fingerprint: \"abc\" is not a chip fingerprint (64 lowercase hex digits",
                 "chip_name: 5 is not a string", "reads: 0 is not positive", "source: 3 is not a string",
                 "array 0 g_uS[0][0]: -1.0 is negative", "array 0 g_uS[0][1]: inf is not a finite number",
                 "array 0 g_uS[0][2]: 2000000.0 is more than leac accepts (1e+06 uS)",
                 "arrays: the key -1 is not an array id", "array 1: values of type <U1 are not conductances",
                 "array 2: shape (3,) is not a non-empty matrix", "array 4: not a matrix"):
        assert line in message, line


def test_reads_must_be_an_integer_not_a_bool_or_beyond_int32() -> None:
    fingerprint = _chip().fingerprint()
    for reads, words in ((True, "true is not an integer"), (2.0, "2.0 is not an integer"),
                         (2**31, "2147483648 is more than leac supports (2147483647)")):
        with pytest.raises(InvalidInputError, match=re.escape(f"reads: {words}")):
            ReadBack(fingerprint, None, reads, {})  # type: ignore[arg-type]
    assert ReadBack(fingerprint, None, np.int64(4), {}).reads == 4  # type: ignore[arg-type]


def test_the_largest_accepted_value_is_the_chip_files_largest_conductance() -> None:
    fingerprint = _chip().fingerprint()
    assert ReadBack(fingerprint, None, 1, {0: [[0.0, MAX_CONDUCTANCE_uS]]}).devices_read() == 2
    with pytest.raises(InvalidInputError, match="is more than leac accepts"):
        ReadBack(fingerprint, None, 1, {0: [[np.nextafter(MAX_CONDUCTANCE_uS, np.inf)]]})


# --------------------------------------------------------------------------
# Reading bad files: each refused with its message


def _with(change: Any) -> str:
    document = _document()
    change(document)
    return json.dumps(document)


BAD_FILES: list[tuple[str, str, list[str]]] = [
    ("not json", "{format: 1}", ["not valid JSON: Expecting property name enclosed in double quotes (line 1"]),
    ("truncated", json.dumps(_document())[:40], ["not valid JSON: Expecting ',' delimiter (line 1, column 41) "
                                                      "(the file ends too early: is it truncated?)"]),
    ("empty", "  \n", ["the file is empty (expected a leac-readback JSON object)"]),
    ("a list", "[1, 2]", ["top level: [1, 2] is not a JSON object"]),
    ("too deep", "[" * 100_000 + "]" * 100_000, ["not valid JSON for leac: nested too deeply"]),
    ("huge integer", '{"reads": 1' + "0" * 5000 + "}", ["not valid JSON: a number of more than 4300 digits"]),
    ("missing keys", '{"format": "leac-readback", "version": 1}',
     ["chip: missing (required)", "reads: missing (required)", "arrays: missing (required)"]),
    ("unknown key", _with(lambda d: d.update(read=3)), ["read: unknown key (did you mean 'reads'?)"]),
    ("repeated key", json.dumps(_document())[:-1] + ', "reads": 9}', ["reads: key appears more than once"]),
    ("version text", _with(lambda d: d.update(version="1")), ['version: "1" is not an integer']),
    ("reads 0", _with(lambda d: d.update(reads=0)), ["reads: 0 is not positive"]),
    ("reads text", _with(lambda d: d.update(reads="8")), ['reads: "8" is not an integer']),
    ("reads float", _with(lambda d: d.update(reads=8.0)), ["reads: 8.0 is not an integer"]),
    ("source", _with(lambda d: d.update(source=["x"])), ['source: ["x"] is not a string']),
    ("chip", _with(lambda d: d.update(chip="lab")), ['chip: "lab" is not a JSON object']),
    ("no fingerprint", _with(lambda d: d["chip"].pop("fingerprint")), ["chip.fingerprint: missing (required)"]),
    ("bad fingerprint", _with(lambda d: d["chip"].update(fingerprint="ABC")),
     ['chip.fingerprint: "ABC" is not a chip fingerprint (64 lowercase hex digits, Chip.fingerprint())']),
    ("chip name", _with(lambda d: d["chip"].update(name=7)), ["chip.name: 7 is not a string"]),
    ("arrays", _with(lambda d: d.update(arrays={"array": 0})), ['arrays: {"array": 0} is not a list of arrays']),
    ("entry", _with(lambda d: d["arrays"].__setitem__(1, 3)), ["arrays[1]: 3 is not a JSON object"]),
    ("entries", _with(lambda d: d["arrays"].append(3)),
     ["arrays: 3 entries, but the chip has only 2 arrays (each is listed at most once)"]),
    ("entry keys", _with(lambda d: d["arrays"][1].pop("g_uS")), ["arrays[1].g_uS: missing (required)"]),
    ("no such array", _with(lambda d: d["arrays"][1].update(array=9)),
     ["arrays[1].array: the chip has no array 9 (its arrays: 0, 3)"]),
    ("array id", _with(lambda d: d["arrays"][1].update(array=-1)), ["arrays[1].array: -1 is negative"]),
    ("duplicate", _with(lambda d: d["arrays"][1].update(array=0, rows=2, cols=3)),
     ["arrays[1].array: array 0 is listed again (first at arrays[0])"]),
    ("rows", _with(lambda d: d["arrays"][0].update(rows=3)), ["arrays[0].rows: 3, but array 0 of the chip has 2 rows"]),
    ("cols", _with(lambda d: d["arrays"][0].update(cols=True)), ["arrays[0].cols: true is not an integer"]),
    ("g_uS", _with(lambda d: d["arrays"][0].update(g_uS=5)), ["arrays[0].g_uS: 5 is not a list of rows"]),
    ("row count", _with(lambda d: d["arrays"][0]["g_uS"].pop()), ["arrays[0].g_uS: 1 row, but the array has 2"]),
    ("row length", _with(lambda d: d["arrays"][0]["g_uS"][1].append(1.0)),
     ["arrays[0].g_uS[1]: 4 values, but the array has 3 columns"]),
    ("row", _with(lambda d: d["arrays"][0]["g_uS"].__setitem__(0, {"a": 1})),
     ['arrays[0].g_uS[0]: {"a": 1} is not a list of values']),
]


@pytest.mark.parametrize(("case", "text", "lines"), BAD_FILES, ids=[c for c, _, _ in BAD_FILES])
def test_a_bad_file_is_refused_with_each_problem_named(case: str, text: str, lines: list[str]) -> None:
    message = _refused(text)
    assert message.startswith("r.json: invalid read-back file")
    for line in lines:
        assert f"\n  {line}" in message, (line, message)


@pytest.mark.parametrize(("value", "words"), [
    ("-0.5", "-0.5 is negative (a conductance is at least 0 uS)"),
    ("NaN", "NaN is not a finite number (null marks a device not read)"),
    ("-Infinity", "-Infinity is not a finite number"),
    ("1e999", "Infinity is not a finite number"),  # the decoder reads 1e999 as inf
    ('"133"', '"133" is not a number (a conductance in uS, or null for a device not read)'),
    ("true", "true is not a number"),
    ("[1]", "[1] is not a number"),
    ("1000000.5", "1000000.5 is more than leac accepts (1e+06 uS)"),
    ("1" + "0" * 400, "is more than leac accepts"),  # an integer beyond float64
    ("-" + "1" * 400, "is negative"),
])
def test_a_bad_value_is_refused_with_its_path(value: str, words: str) -> None:
    text = json.dumps(_document()).replace("166.9", value)
    message = _refused(text)
    assert "(1 problem):" in message
    assert "\n  arrays[0].g_uS[1][0]: " in message and words in message, message


def test_every_problem_of_a_file_is_listed_together_in_file_order() -> None:
    def change(d: dict[str, Any]) -> None:
        d.update(reads=0, extra=1)
        d["arrays"][0]["g_uS"][0][2] = -1
        d["arrays"][0]["g_uS"][1][1] = "x"
        d["arrays"][1]["array"] = 5

    message = _refused(_with(change))
    assert message.splitlines() == [
        "r.json: invalid read-back file (5 problems):",
        "  extra: unknown key",
        "  reads: 0 is not positive",
        "  arrays[0].g_uS[0][2]: -1 is negative (a conductance is at least 0 uS)",
        '  arrays[0].g_uS[1][1]: "x" is not a number (a conductance in uS, or null for a device not read)',
        "  arrays[1].array: the chip has no array 5 (its arrays: 0, 3)",
    ]


def test_many_bad_values_are_named_up_to_the_limit_then_counted_by_kind() -> None:
    chip = Chip(arrays=(Array(0, 30, 30), Array(1, 1, 1)))
    rows = [[-1.0] * 30 for _ in range(10)] + [["x"] * 30 for _ in range(10)] + [[5.0] * 30 for _ in range(10)]
    document = {"format": "leac-readback", "version": 1, "chip": {"fingerprint": chip.fingerprint()}, "reads": 1,
                "arrays": [{"array": 0, "rows": 30, "cols": 30, "g_uS": rows},
                           {"array": 1, "rows": 1, "cols": 1, "g_uS": [[1e7]]}]}
    lines = _refused(json.dumps(document), chip).splitlines()
    assert lines[0] == "r.json: invalid read-back file (22 problems):"  # 20 named, 1 line for the other 580, 1 more
    assert lines[1] == "  arrays[0].g_uS[0][0]: -1.0 is negative (a conductance is at least 0 uS)"
    assert lines[20] == "  arrays[0].g_uS[0][19]: -1.0 is negative (a conductance is at least 0 uS)"
    assert lines[21] == "  arrays[0].g_uS: 580 more bad values (300 not a number, 280 negative)"
    assert lines[22] == "  arrays[1].g_uS[0][0]: 10000000.0 is more than leac accepts (1e+06 uS)"
    assert len(lines) == 23


def test_many_unknown_and_repeated_keys_are_named_up_to_the_limit_then_counted() -> None:
    pairs = ", ".join(f'"k{i}": 0' for i in range(1000)) + ", " + ", ".join(['"reads": 1'] * 30)
    lines = _refused(json.dumps(_document())[:-1] + ", " + pairs + "}").splitlines()
    assert lines[1] == "  reads: key appears more than once"
    assert lines[2] == "  k0: unknown key"
    assert lines[21] == "  k19: unknown key"
    assert lines[22] == "  top level: 980 more unknown keys"
    assert len(lines) == 23


def test_many_rows_of_the_wrong_length_are_named_up_to_the_limit_then_counted() -> None:
    chip = Chip(arrays=(Array(0, 30, 2),))
    document = {"format": "leac-readback", "version": 1, "chip": {"fingerprint": chip.fingerprint()}, "reads": 1,
                "arrays": [{"array": 0, "rows": 30, "cols": 2, "g_uS": [[1.0]] * 29 + [[1.0, 2.0]]}]}
    lines = _refused(json.dumps(document), chip).splitlines()
    assert lines[1] == "  arrays[0].g_uS[0]: 1 value, but the array has 2 columns"
    assert lines[-1] == "  arrays[0].g_uS: 9 more rows that are not lists of 2 values"
    assert len(lines) == 22


def test_a_newer_version_or_another_format_is_refused_alone() -> None:
    newer = _refused(_with(lambda d: d.update(version=2, reads=0)))
    assert newer == "r.json: invalid read-back file:\n  version: 2 is newer than this leac understands (1)"
    other = _refused(_with(lambda d: d.update(format="leac-chip", reads=0)))
    assert other == 'r.json: invalid read-back file:\n  format: "leac-chip" is not "leac-readback"'


def test_a_readback_of_another_chip_is_refused_naming_both_chips() -> None:
    mine, other = _chip("lab"), Chip(arrays=(Array(0, 2, 3),), name="other")
    message = _refused(json.dumps(_document(mine)), other)
    assert message == (f"r.json: a read-back file from another chip: it is for chip 'lab' (fingerprint "
                       f"{mine.fingerprint()[:12]}...), but the chip given is chip 'other' (fingerprint "
                       f"{other.fingerprint()[:12]}...)")
    document = _document(mine)
    document["chip"]["name"] = None
    message = _refused(json.dumps(document), Chip(arrays=(Array(0, 2, 3),)))
    assert "it is for an unnamed chip (fingerprint " in message and "the chip given is an unnamed chip" in message


def test_the_chip_given_by_file_name_is_named_by_it(tmp_path: Path) -> None:
    other = Chip(arrays=(Array(0, 2, 3),)).with_file_name("c.json")
    assert "the chip given is chip 'c.json' (fingerprint" in _refused(json.dumps(_document()), other)


def test_a_chip_with_defects_is_another_chip() -> None:
    clean = _chip()
    broken = Chip(arrays=clean.arrays, defects=(Defect(0, 1, 1, "stuck_high"),), name="lab")
    assert "a read-back file from another chip" in _refused(json.dumps(_document(clean)), broken)


def test_text_that_is_not_utf8_is_refused() -> None:
    message = _refused(b'{"format": "leac-readback\xff"}')
    assert message == "r.json: invalid read-back file:\n  not UTF-8 text (byte 0xff at offset 25)"


# --------------------------------------------------------------------------
# Hostile input and output paths


def test_a_huge_declared_size_is_refused_before_anything_is_allocated() -> None:
    document = _document()
    document["arrays"][0].update(rows=10**9, cols=10**9, g_uS=[[1.0] * 3] * 2)
    text = json.dumps(document).encode()
    tracemalloc.start()
    try:
        message = _refused(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "arrays[0].rows: 1000000000, but array 0 of the chip has 2 rows" in message
    assert "arrays[0].cols: 1000000000, but array 0 of the chip has 3 cols" in message
    assert peak < 2**20  # nothing near 10^18 values: the file's own few kB


def test_a_file_larger_than_the_chip_can_need_is_refused_by_its_size_before_reading(tmp_path: Path) -> None:
    chip = _chip()
    limit = max_readback_bytes(chip)
    assert limit == BASE_BYTES + BYTES_PER_DEVICE * 8
    assert max_readback_bytes(Chip(arrays=(Array(0, 1024, 1024),))) == BASE_BYTES + 64 * 1024**2
    big = Chip(arrays=tuple(Array(i, 4096, 4096) for i in range(64)), grid=True)
    assert max_readback_bytes(big) == MAX_READBACK_BYTES
    path = tmp_path / "r.json"
    path.write_bytes(json.dumps(_document()).encode() + b" " * limit)
    with pytest.raises(InvalidInputError, match=f"r.json: larger than {limit} bytes .* for a read-back file"):
        load_readback(path, chip)
    with pytest.raises(InvalidInputError, match=f"<read-back>: larger than {limit} bytes"):
        readback_from_bytes(path.read_bytes(), chip)


def test_a_file_written_with_json_dumps_indent_4_fits_the_bytes_per_device() -> None:
    value = 1.2345678901234567e-100  # one of the longest valid values (23 characters)
    assert len(repr(value)) == 23
    chip = Chip(arrays=(Array(0, 64, 64),))
    document = {"format": "leac-readback", "version": 1, "chip": {"fingerprint": chip.fingerprint()}, "reads": 1,
                "arrays": [{"array": 0, "rows": 64, "cols": 64, "g_uS": [[value] * 64] * 64}]}
    text = json.dumps(document, indent=4)
    assert len(text) < BYTES_PER_DEVICE * chip.device_count  # about 45 bytes a value, header included
    assert readback_from_bytes(text.encode(), chip).devices_read() == 4096


def test_a_fifo_or_a_missing_file_as_input_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InvalidInputError, match="fifo: is a FIFO, not a read-back file"):
        load_readback(tmp_path / "fifo", _chip())
    with pytest.raises(InvalidInputError, match="missing.json: no such read-back file"):
        load_readback(tmp_path / "missing.json", _chip())


def test_a_fifo_as_the_output_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="out.json: is a FIFO; leac writes only regular files"):
        save_readback(_readback(), fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left


def test_a_folder_as_the_output_or_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        save_readback(_readback(), tmp_path)
    with pytest.raises(UsageError, match="cannot write"):
        save_readback(_readback(), tmp_path / "no" / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_saving_over_an_existing_file_replaces_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    save_readback(_readback(), path)
    assert path.read_bytes() == readback_bytes(_readback())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


# --------------------------------------------------------------------------
# Properties


_VALUES = (st.floats(min_value=0.0, max_value=MAX_CONDUCTANCE_uS, allow_nan=False)
           | st.just(NAN) | st.integers(0, 10**6).map(float) | st.floats(0, 1e-300))


@st.composite
def chips_and_values(draw: st.DrawFn) -> tuple[Chip, dict[int, np.ndarray]]:
    """A chip of 1 to 4 arrays of 1 to 5 x 1 to 5 devices with any ids, and values for a subset of its arrays."""
    ids = draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=4, unique=True))
    arrays = tuple(Array(i, draw(st.integers(1, 5)), draw(st.integers(1, 5))) for i in ids)
    name = draw(st.none() | st.text(max_size=8))
    chip = Chip(arrays=arrays, name=name)
    read = draw(st.lists(st.sampled_from(arrays), unique=True))
    values = {a.id: np.array(draw(st.lists(_VALUES, min_size=a.devices, max_size=a.devices))).reshape(a.rows, a.cols)
              for a in read}
    return chip, values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chips_and_values(), reads=st.integers(1, 2**31 - 1), source=st.text(max_size=20))
def test_random_readbacks_round_trip_to_equal_values_and_identical_bytes(
        case: tuple[Chip, dict[int, np.ndarray]], reads: int, source: str) -> None:
    chip, values = case
    readback = readback_of(chip, values, reads=reads, source=source)
    data = readback_bytes(readback)
    data.decode("ascii")
    loaded = readback_from_bytes(data, chip)
    _same(readback, loaded)
    assert readback_bytes(loaded) == data
    assert loaded.devices_read() == sum(int(np.count_nonzero(~np.isnan(v))) for v in values.values())
    assert json.loads(data)["arrays"] == [  # an independent reading: the standard library's
        {"array": i, "rows": v.shape[0], "cols": v.shape[1],
         "g_uS": [[None if math.isnan(x) else x for x in row] for row in v.tolist()]}
        for i, v in sorted(values.items())]


@settings(max_examples=200, deadline=None)
@given(value=st.floats(allow_nan=False) | st.integers(-(10**20), 10**20))
def test_a_value_loads_exactly_when_it_is_finite_non_negative_and_at_most_the_maximum(value: float) -> None:
    document = _document()
    document["arrays"][1]["g_uS"][0][1] = value
    text = json.dumps(document)  # inf becomes the literal Infinity, as a hand-written file might have
    if math.isfinite(value) and 0 <= value <= MAX_CONDUCTANCE_uS:
        assert readback_from_bytes(text.encode(), _chip()).arrays[3][0, 1] == float(value)
    else:
        assert "\n  arrays[1].g_uS[0][1]: " in _refused(text)
