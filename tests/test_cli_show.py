"""`leac show`: the placement table and picture from the command line, and its bad inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest

from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.program import Program
from tests.helpers import mlp_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def program_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("show")
    onnx.save(mlp_model(), folder / "mlp.onnx")
    save_chip(synth_chip(arrays=6, rows=16, cols=16, stuck_high=0.08, seed=2), folder / "chip.json")
    out = folder / "p.leac"
    assert main(["compile", str(folder / "mlp.onnx"), "--chip", str(folder / "chip.json"), "-k", "3",
                 "--placer", "greedy", "-o", str(out)]) == 0
    return out


def test_show_lists_every_half_and_draws_the_picture(program_file: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    assert main(["show", str(program_file), "--png", str(tmp_path / "p.png"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    program = Program.load(program_file)
    assert report["block_copies"] == 9 and len(report["halves"]) == 18
    assert report["arrays_used"] == len(program.arrays_used) and report["arrays_total"] == 6
    assert report["pages"] == [{"file": str(tmp_path / "p.png"), "arrays": [0, 1, 2, 3, 4, 5]}]
    assert report["arrays_not_drawn"] == []
    assert report["stuck_under_copies"] == sum(h["stuck"] for h in report["halves"]) > 0
    assert (tmp_path / "p.png").read_bytes().startswith(PNG_MAGIC)
    assert main(["show", str(program_file), "--png", str(tmp_path / "q.png"), "--per-page", "4"]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:8]) for line in out.splitlines()}
    for h in report["halves"]:
        assert (h["layer"], str(h["block"]), str(h["copy"]), "G+" if h["half"] == "pos" else "G-", str(h["array"]),
                str(h["row"]), str(h["col"]), str(h["rows"])) in rows
    assert "9 block copies (18 halves) on" in out
    written = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("q"))
    pages = -(-len(program.arrays_used) // 4)
    assert written == ([f"q-{i}.png" for i in range(1, pages + 1)] if pages > 1 else ["q.png"])
    assert f"wrote {tmp_path / written[0]}: arrays " in out


def test_show_without_png_writes_nothing(program_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["show", str(program_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["png"] is None and report["pages"] == [] and len(report["halves"]) == 18


@pytest.mark.parametrize("case", ["missing", "not a program", "missing folder", "over the input", "a folder",
                                  "per-page without png", "per-page out of range"])
def test_bad_inputs_are_refused_with_nothing_written(case: str, program_file: Path, tmp_path: Path,
                                                     capsys) -> None:
    junk = tmp_path / "junk.leac"
    junk.write_text("not a Program")
    (tmp_path / "folder.png").mkdir()
    out = str(tmp_path / "out.png")
    argv, status, message = {
        "missing": (["show", str(tmp_path / "none.leac"), "--png", out], 3, "no such Program"),
        "not a program": (["show", str(junk), "--png", out], 3, "not a leac Program file"),
        "missing folder": (["show", str(program_file), "--png", str(tmp_path / "no" / "p.png")], 2,
                           "the folder"),
        "over the input": (["show", str(program_file), "--png", str(program_file)], 2,
                           "refusing to write over the input file"),
        "a folder": (["show", str(program_file), "--png", str(tmp_path / "folder.png")], 2, "is a directory"),
        "per-page without png": (["show", str(program_file), "--per-page", "4"], 2,
                                 "--per-page and --all-arrays go with --png"),
        "per-page out of range": (["show", str(program_file), "--png", out, "--per-page", "0"], 2,
                                  "--per-page must be in 1..100"),
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    program_bytes = program_file.read_bytes()
    if case not in ("per-page without png",):
        pytest.importorskip("matplotlib")
    assert main(argv) == status
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert program_file.read_bytes() == program_bytes


def test_a_failed_page_write_removes_only_the_pages_this_run_wrote(program_file: Path, tmp_path: Path, monkeypatch,
                                                                    capsys) -> None:
    """An earlier run left q-1.png .. q-4.png; this run draws 3 pages and its third write fails (a full disk):
    the two pages it wrote go, the earlier run's q-3.png (not overwritten) and q-4.png stay as they were."""
    pytest.importorskip("matplotlib")
    import lea_compiler.plot_placement as plot_placement
    from lea_compiler.errors import UsageError

    earlier = {f"q-{i}.png": f"earlier page {i}".encode() for i in range(1, 5)}
    for name, data in earlier.items():
        (tmp_path / name).write_bytes(data)
    write = plot_placement.atomic_write_bytes
    calls: list[Path] = []

    def fails_on_the_third(path: Path, data: bytes) -> None:
        calls.append(Path(path))
        if len(calls) == 3:
            raise UsageError(f"cannot write {path}: No space left on device")
        write(path, data)

    monkeypatch.setattr(plot_placement, "atomic_write_bytes", fails_on_the_third)
    assert main(["show", str(program_file), "--png", str(tmp_path / "q.png"), "--per-page", "2", "--all-arrays"]) == 2
    assert f"cannot write {tmp_path / 'q-3.png'}: No space left on device" in capsys.readouterr().err
    assert calls == [tmp_path / f"q-{i}.png" for i in (1, 2, 3)]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"q-3.png": earlier["q-3.png"],
                                                                   "q-4.png": earlier["q-4.png"]}


def test_without_matplotlib_png_is_a_usage_error_and_nothing_is_written(program_file: Path, tmp_path: Path,
                                                                        monkeypatch, capsys) -> None:
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["show", str(program_file), "--png", str(tmp_path / "p.png"), "--json"]) == 2
    captured = capsys.readouterr()
    assert "leac show --png needs the plot extra: pip install 'lea-compiler[plot]'" in captured.err
    assert json.loads(captured.out)["kind"] == "UsageError"
    assert list(tmp_path.iterdir()) == []


def test_every_command_is_in_the_docs_command_table() -> None:
    """docs/cli.md's table at the top lists every `leac` command and links its section."""
    from lea_compiler.cli import build_parser

    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    table = text.split("\n## ")[0]
    commands = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in commands.choices:
        assert f"[`leac {name}" in table, name
        assert f"\n## leac {name}" in text, name
