"""Tests of lea_compiler/cli/chip.py: `leac chip synth | validate | show | import`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lea_compiler.chip import load_chip, save_chip
from lea_compiler.cli import main
from lea_compiler.errors import InvalidInputError

MEASURED = Path(__file__).resolve().parents[2] / "shared" / "data" / "measured"
HIGH, LOW = "stuck_high", "stuck_low"


def _valid() -> dict[str, Any]:
    return {
        "format": "leac-chip",
        "version": 1,
        "name": "test chip",
        "device": {"levels_uS": [133, 167, 200, 233], "stuck_high_uS": 500},
        "periphery": {"dac_bits": 12, "t_adc_ns": 10},
        "arrays": [{"id": 0, "rows": 25, "cols": 25}, {"id": 4, "rows": 8, "cols": 16}],
        "defects": [
            {"array": 0, "row": 3, "col": 7, "state": HIGH},
            {"array": 0, "row": 5, "col": 2, "state": LOW, "g_uS": 4.2},
            {"array": 4, "row": 7, "state": LOW},
            {"array": 4, "col": 15, "state": LOW, "g_uS": 2.0},
        ],
    }


def _edit(change: Callable[[dict[str, Any]], object]) -> str:
    document = _valid()
    change(document)
    return json.dumps(document, indent=2)


def _load_then_save(source: Path, output: Path) -> None:
    """What any command that reads a chip and writes one does."""
    save_chip(load_chip(source), output)


# Each corruption: the file's text (or bytes) and the text the error must contain.
CORRUPTIONS: dict[str, tuple[str | bytes, str]] = {
    "wrong type": (
        _edit(lambda d: d["periphery"].update(dac_bits=True)),
        "periphery.dac_bits: true is not an integer",
    ),
    "wrong type in a list": (
        _edit(lambda d: d["arrays"][1].update(rows="8")),
        'arrays[1].rows: "8" is not an integer',
    ),
    "out-of-range coordinate": (
        _edit(lambda d: d["defects"][0].update(row=30)),
        "defects[0].row: 30 is outside array 0 (25 rows)",
    ),
    "out-of-range column": (
        _edit(lambda d: d["defects"][3].update(col=16)),
        "defects[3].col: 16 is outside array 4 (16 columns)",
    ),
    "NaN": (
        _edit(lambda d: d["device"].update(stuck_high_uS=float("nan"))),
        "device.stuck_high_uS: NaN is not a finite number",
    ),
    "Infinity": (
        _edit(lambda d: d["defects"][1].update(g_uS=float("inf"))),
        "defects[1].g_uS: Infinity is not a finite number",
    ),
    "unknown key": (
        _edit(lambda d: d["periphery"].update(adc_bit=10)),
        "periphery.adc_bit: unknown key (did you mean 'adc_bits'?)",
    ),
    "unknown top-level key": (_edit(lambda d: d.update(foo=1)), "foo: unknown key"),
    "duplicate id": (
        _edit(lambda d: d["arrays"][1].update(id=0)),
        "arrays[1].id: 0 is used twice",
    ),
    "conflicting duplicate defect": (
        _edit(lambda d: d["defects"].append({"array": 0, "row": 3, "col": 7, "state": LOW})),
        "defects[4]: device (array 0, row 3, col 7) is marked stuck_low here and stuck_high "
        "in defects[0]",
    ),
    "device in a line of the other state": (
        _edit(lambda d: d["defects"].append({"array": 4, "row": 7, "col": 0, "state": HIGH})),
        "defects[4]: device (array 4, row 7, col 0) is marked stuck_high here and lies in row 7",
    ),
    "truncated JSON": (_edit(lambda d: None)[:-40], "truncated"),
    "empty file": ("", "the file is empty"),
    "not JSON": ("array 0: 25 x 25\n", "not valid JSON"),
    "not UTF-8": (b'{"format": "leac-chip", "name": "\xff"}', "not UTF-8 text"),
    "newer version": (
        _edit(lambda d: d.update(version=2)),
        "version: 2 is newer than this leac understands (1)",
    ),
    "missing required key": (_edit(lambda d: d.pop("arrays")), "arrays: missing (required)"),
    "missing defect state": (
        _edit(lambda d: d["defects"][2].pop("state")),
        "defects[2].state: missing (required)",
    ),
    "levels not ascending": (
        _edit(lambda d: d["device"].update(levels_uS=[133, 120])),
        "device.levels_uS: [133, 120] is not strictly ascending",
    ),
    "non-positive time": (
        _edit(lambda d: d["periphery"].update(t_adc_ns=0)),
        "periphery.t_adc_ns: 0 is not positive",
    ),
    "duplicate key": (
        _edit(lambda d: None).replace('"version": 1,', '"version": 1, "version": 1,'),
        "version: key appears more than once",
    ),
}


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# --help


@pytest.mark.parametrize(
    "command",
    [["chip"], ["chip", "synth"], ["chip", "validate"], ["chip", "show"], ["chip", "import"]],
)
def test_help_works_for_every_chip_command(command: list[str], capsys: pytest.CaptureFixture[str]):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: leac " + " ".join(command))
    assert "-h, --help" in out


def test_help_describes_each_option(capsys: pytest.CaptureFixture[str]):
    assert main(["chip", "synth", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--arrays", "--rows", "--cols", "--stuck-high", "--stuck-low", "--dead-rows",
                   "--dead-cols", "--name", "--seed", "--output"):  # fmt: skip
        assert option in out
    assert "probability that a device is stuck high (default: 0.025)" in " ".join(out.split())


def test_chip_needs_a_subcommand(capsys: pytest.CaptureFixture[str]):
    assert main(["chip"]) == 2
    assert "SUBCOMMAND" in capsys.readouterr().err


# --------------------------------------------------------------------------
# synth and validate


def test_synth_writes_a_valid_deterministic_chip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    args = ["chip", "synth", "--arrays", "6", "--rows", "10", "--cols", "12", "--seed", "5",
            "--stuck-high", "0.05", "--dead-cols", "0.1", "--name", "demo"]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"wrote {tmp_path / 'a.json'}: chip 'demo': 6 arrays of 10 x 12, 720 devices"
    )
    assert len(out.splitlines()) == 1
    assert main([*args, "-o", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    args[args.index("--seed") + 1] = "6"
    assert main([*args, "-o", str(tmp_path / "c.json")]) == 0
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()
    chip = load_chip(tmp_path / "a.json")
    assert chip.name == "demo" and chip.grid and chip.device_count == 720


def test_synth_defaults_are_the_seed_papers_chip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["chip", "synth", "--seed", "1", "-o", str(tmp_path / "c.json")]) == 0
    assert "32 arrays of 25 x 25, 20000 devices" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--stuck-high", "1.5", "1.5 is not a probability between 0 and 1"),
        ("--dead-rows", "x", "'x' is not a number"),
        ("--arrays", "0", "0 is not positive"),
        ("--seed", "-2", "-2 is negative"),
    ],
)
def test_synth_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, expected: str
):
    args = {"--seed": "1", option: value}
    flat = [x for pair in args.items() for x in pair]
    assert main(["chip", "synth", *flat, "-o", str(tmp_path / "c.json")]) == 2
    assert expected in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_synth_refuses_rates_adding_up_to_more_than_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    args = ["--stuck-high", "0.8", "--stuck-low", "0.3", "--seed", "1"]
    assert main(["chip", "synth", *args, "-o", str(tmp_path / "c.json")]) == 2
    assert "stuck_high + stuck_low" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_synth_into_a_missing_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "nowhere" / "c.json"
    assert main(["chip", "synth", "--seed", "1", "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_validate_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _write(tmp_path / "c.json", json.dumps(_valid()))
    before = path.read_bytes()
    assert main(["chip", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"{path}: valid. chip 'test chip': 2 arrays of mixed sizes, 753 devices, 1 stuck high, "
        "24 stuck low (3.32% stuck), 1 dead rows, 1 dead columns, 728 healthy\n"
    )
    assert path.read_bytes() == before  # the file is never modified


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_chip_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
):
    content, expected = CORRUPTIONS[name]
    path = _write(tmp_path / "bad.json", content)
    assert main(["chip", "validate", str(path)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"leac: error: {path}: ")
    assert expected in captured.err
    assert "Traceback" not in captured.err
    # A command that loads then saves writes nothing, not even a temporary file.
    output = tmp_path / "out.json"
    with pytest.raises(InvalidInputError):
        _load_then_save(path, output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]
    # show refuses it too, before writing its picture.
    assert main(["chip", "show", str(path), "--png", str(tmp_path / "out.png")]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_every_problem_is_listed_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    document = _valid()
    document["foo"] = 1
    document["periphery"]["dac_bits"] = True
    document["defects"][0]["row"] = 30
    path = _write(tmp_path / "bad.json", json.dumps(document))
    assert main(["chip", "validate", str(path)]) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"leac: error: {path}: invalid chip file (3 problems):",
        "  foo: unknown key",
        "  periphery.dac_bits: true is not an integer",
        "  defects[0].row: 30 is outside array 0 (25 rows)",
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_corrupted_value_is_refused_by_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
):
    document = _valid()
    leaves: list[tuple[str, Any, Any]] = [("", document, None)]
    targets: list[tuple[str, Any, Any]] = []
    while leaves:  # every (path, container, key) below the root
        path, node, _ = leaves.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            child = (
                f"{path}[{key}]" if isinstance(node, list) else (f"{path}.{key}" if path else key)
            )
            targets.append((child, node, key))
            if isinstance(value, (dict, list)):
                leaves.append((child, value, None))
    path, node, key = data.draw(st.sampled_from(targets), label="target")
    node[key] = data.draw(st.sampled_from([True, None, float("nan"), [1], {"k": 1}]), label="value")
    chip_file = _write(tmp_path / "hyp.json", json.dumps(document))
    assert main(["chip", "validate", str(chip_file)]) == 3
    err = capsys.readouterr().err
    assert f"\n  {path}" in err, err


def test_validate_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["chip", "validate", str(tmp_path / "missing.json")]) == 3
    assert "no such chip file" in capsys.readouterr().err
    assert main(["chip", "validate", str(tmp_path)]) == 3
    assert "is a directory" in capsys.readouterr().err


# --------------------------------------------------------------------------
# show


def test_show_prints_a_table_with_totals(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _write(tmp_path / "c.json", json.dumps(_valid()))
    assert main(["chip", "show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("chip 'test chip': 2 arrays of mixed sizes, 753 devices")
    assert lines[1].startswith("fingerprint: ") and len(lines[1]) == len("fingerprint: ") + 64
    header = lines[3].split()
    assert header == ["array", "rows", "cols", "stuck_high", "stuck_low", "dead_rows",
                      "dead_cols", "healthy"]  # fmt: skip
    assert lines[4].split() == ["0", "25", "25", "1", "1", "0", "0", "623"]
    assert lines[5].split() == ["4", "8", "16", "0", "23", "1", "1", "105"]
    assert lines[7].split() == ["total", "1", "24", "1", "1", "728"]
    assert any(line.startswith("device: levels_uS=[133.0, 167.0, 200.0, 233.0]") for line in lines)
    assert any(line.startswith("periphery: v_read_V=0.2, dac_bits=12") for line in lines)


def test_show_json_is_one_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _write(tmp_path / "c.json", json.dumps(_valid()))
    assert main(["chip", "show", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"] == {
        "stuck_high": 1, "stuck_low": 24, "dead_rows": 1, "dead_cols": 1, "healthy": 728,
    }  # fmt: skip
    assert [a["id"] for a in report["arrays"]] == [0, 4]
    assert report["arrays"][1]["stuck_low"] == 23
    assert report["devices"] == 753 and report["name"] == "test chip"
    assert report["periphery"]["e_adc_pJ"] == 2.0 and len(report["fingerprint"]) == 64


def test_show_png_writes_a_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("matplotlib")
    path = _write(tmp_path / "c.json", json.dumps(_valid()))
    assert main(["chip", "show", str(path), "--png", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {tmp_path / 'c.png'}" in capsys.readouterr().out


def test_show_png_refuses_to_overwrite_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = _write(tmp_path / "c.json", json.dumps(_valid()))
    before = path.read_bytes()
    assert main(["chip", "show", str(path), "--png", str(path)]) == 2
    assert "refusing to write over the input file" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_show_png_without_matplotlib_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = _write(tmp_path / "c.json", json.dumps(_valid()))
    assert main(["chip", "show", str(path), "--png", str(tmp_path / "c.png")]) == 2
    assert "pip install 'lea-compiler[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


# --------------------------------------------------------------------------
# import


def _measured(name: str) -> Path:
    if not MEASURED.is_dir():
        pytest.skip(f"measured data not found at {MEASURED} (shared/ must sit beside the repo)")
    return MEASURED / name


def test_import_the_measured_kernels(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    k0, k17 = _measured("kernel0_S.txt"), _measured("kernel17_S.txt")
    out = tmp_path / "kernels.json"
    assert main(["chip", "import", str(k0), str(k17), "-o", str(out), "--name", "kernels"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{k0} -> array 0 (25 x 25): 36 stuck-high devices, 50 stuck-low devices "
        "(0 outside dead lines), dead rows: none, dead columns: 4, 24"
    )
    assert lines[1] == (
        f"{k17} -> array 1 (25 x 25): 9 stuck-high devices, 0 stuck-low devices "
        "(0 outside dead lines), dead rows: none, dead columns: none"
    )
    assert lines[2].startswith(f"wrote {out}: chip 'kernels': 2 arrays of 25 x 25")
    chip = load_chip(out)
    assert chip.name == "kernels" and chip.defect_counts()["stuck_high"] == 45
    assert main(["chip", "validate", str(out)]) == 0


def test_import_thresholds_are_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    k0 = _measured("kernel0_S.txt")
    out = tmp_path / "k.json"
    args = ["--high-above-uS", "1000", "--low-below-uS", "5", "--dead-line-fraction", "1.0"]
    assert main(["chip", "import", str(k0), "-o", str(out), *args]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "dead columns: none" in line and "36 stuck-high" not in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-4 2e-4\n3e-4\n", "line 2 has 1 values but line 1 has 2"),
        ("1e-4 2e-4\n3e-4 oops\n", "line 2, value 2: 'oops' is not a number"),
        ("", "no values"),
        ("1e-4 nan\n2e-4 3e-4\n", "line 1, value 2: 'nan' is not a finite number"),
        ("150 160\n170 180\n", "is the map in microsiemens?"),
        ("1e-4;2e-4\n", "'1e-4;2e-4' is not a number"),
    ],
)
def test_import_refuses_bad_maps_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
):
    good = _write(tmp_path / "good.txt", "1e-4 2e-4\n3e-4 4e-4\n")
    bad = _write(tmp_path / "bad.txt", text)
    out = tmp_path / "out.json"
    assert main(["chip", "import", str(good), str(bad), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"leac: error: {bad}: ") and expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt"]


def test_import_refuses_to_overwrite_an_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good = _write(tmp_path / "good.txt", "1e-4 2e-4\n3e-4 4e-4\n")
    assert main(["chip", "import", str(good), "-o", str(good)]) == 2
    assert "refusing to write over the input file" in capsys.readouterr().err
    assert good.read_text() == "1e-4 2e-4\n3e-4 4e-4\n"


def test_import_refuses_bad_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good = _write(tmp_path / "good.txt", "1e-4 2e-4\n3e-4 4e-4\n")
    out = tmp_path / "out.json"
    assert main(["chip", "import", str(good), "-o", str(out), "--high-above-uS", "200"]) == 2
    assert "not above the top device level (233.0 uS)" in capsys.readouterr().err
    assert not out.exists()


def test_import_a_missing_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "out.json"
    assert main(["chip", "import", str(tmp_path / "nope.txt"), "-o", str(out)]) == 3
    assert "no such conductance map" in capsys.readouterr().err
    assert not out.exists()


# Issue 13, item 8: tiny files that declare chips too large to compile or show, refused at load (exit 3)
# with a message naming the limit, before any work and without writing anything.
EXAMPLE_MODEL = Path(__file__).resolve().parents[1] / "examples" / "data" / "digits_mlp.onnx"


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"count": 14, "rows": 8192, "cols": 8192}, "arrays.rows: 8192 is more than leac accepts (4096)"),
        ({"count": 10**6, "rows": 1, "cols": 1000}, "arrays.count: 1000000 is more than leac accepts (65536)"),
        ([{"id": 0, "rows": 3, "cols": 5000}], "arrays[0].cols: 5000 is more than leac supports (4096)"),
    ],
)
@pytest.mark.parametrize("command", ["compile", "show", "validate"])
def test_chips_beyond_the_limits_are_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, arrays: object,
    expected: str, command: str,
):
    def never(problem: object) -> None:  # before the limits, compile got here and allocated 7 GiB at once
        raise AssertionError("the placer ran on a chip beyond the limits")

    monkeypatch.setattr("lea_compiler.placement.context.cost_maps", never)  # where the placers look it up
    chip = tmp_path / "big.json"
    chip.write_text(json.dumps({"format": "leac-chip", "version": 1, "arrays": arrays}))
    out = tmp_path / "out.leac"
    argv = {
        "compile": ["compile", str(EXAMPLE_MODEL), "--chip", str(chip), "-o", str(out), "--json"],
        "show": ["chip", "show", str(chip), "--json"],
        "validate": ["chip", "validate", str(chip)],
    }[command]
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert expected in captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.json"]


def test_import_keeps_every_reading_as_a_read_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import numpy as np

    from lea_compiler.programming.readback import load_readback

    good = _write(tmp_path / "good.txt", "1e-4 2e-4\n3e-4 -1e-6\n")
    out, readings = tmp_path / "chip.json", tmp_path / "readings.json"
    assert main(["chip", "import", str(good), "-o", str(out), "--conductances", str(readings)]) == 0
    back = load_readback(readings, load_chip(out))
    np.testing.assert_allclose(back.arrays[0], [[100.0, 200.0], [300.0, np.nan]])  # healthy devices too
    assert back.reads == 1 and "good.txt" in back.source
    assert main(["chip", "import", str(good), "-o", str(tmp_path / "c2.json"), "--conductances", str(good)]) == 2
    assert "--conductances" in capsys.readouterr().err
    assert not (tmp_path / "c2.json").exists()


def test_import_with_an_unwritable_output_writes_neither(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`-o` and `--conductances` are both checked before the maps are read, and written both or neither: a
    `--conductances` in a folder that cannot hold files (here its parent is a regular file) left the chip file
    behind."""
    from lea_compiler.cli import chip as cli_chip

    good = _write(tmp_path / "good.txt", "1e-4 2e-4\n3e-4 -1e-6\n")
    afile = _write(tmp_path / "afile", "")
    out = tmp_path / "chip.json"
    capsys.readouterr()
    assert main(["chip", "import", str(good), "-o", str(out), "--conductances", str(afile / "c.json")]) == 2
    assert capsys.readouterr().err.strip() == f"leac: error: --conductances {afile / 'c.json'}: {afile} is not a folder"
    assert main(["chip", "import", str(good), "-o", str(afile / "chip.json"), "--conductances",
                 str(tmp_path / "c.json")]) == 2
    assert capsys.readouterr().err.strip() == f"leac: error: -o {afile / 'chip.json'}: {afile} is not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "good.txt"]

    # the second output's folder stops holding files after the checks: the first is not left behind
    later = tmp_path / "later"
    later.mkdir()
    real = cli_chip.import_measured

    def then_break_the_folder(*args: Any, **kwargs: Any) -> Any:
        made = real(*args, **kwargs)
        later.rmdir()
        later.write_text("")
        return made

    monkeypatch.setattr(cli_chip, "import_measured", then_break_the_folder)
    assert main(["chip", "import", str(good), "-o", str(out), "--conductances", str(later / "c.json")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"leac: error: cannot write {later / 'c.json'}: " \
                                                                "Not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "good.txt", "later"]


def test_import_with_one_file_for_both_outputs_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-o imp.json --conductances imp.json` said 'refusing to write over the input file imp.json'; an existing
    file and a hard link to it are one file too."""
    good = _write(tmp_path / "good.txt", "1e-4 2e-4\n3e-4 -1e-6\n")
    out = _write(tmp_path / "imp.json", "old")
    import os

    os.link(out, tmp_path / "link.json")
    for conductances in (out, tmp_path / "link.json"):
        capsys.readouterr()
        assert main(["chip", "import", str(good), "-o", str(out), "--conductances", str(conductances)]) == 2
        assert capsys.readouterr().err == (f"leac: error: --conductances {conductances}: the same file as -o {out}; "
                                           "the two outputs need different names\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.txt", "imp.json", "link.json"]
    assert out.read_text() == "old"
