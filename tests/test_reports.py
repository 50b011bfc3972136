"""docs/reports.md and the `--json` reports agree: every key a command prints is documented, and every
documented key is printed; every command has `--json`; the exit statuses are the documented ones."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

import lea_compiler.compiler
from lea_compiler import cli
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import build_parser, main
from tests.helpers import make_model, mlp_model

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reports.md"
SINGLE_RUN_ONLY = {"board", "trials", "allocation", "after_s"}  # a board file, --trials, -k auto, --after: not in a
# batch's reports
EMBEDDED_WITHOUT = {  # (report, embedded report) -> the embedded keys it does not print (a key and its children)
    ("leac-compile-batch", "leac-compile"): SINGLE_RUN_ONLY,
    ("leac-simulate-batch", "leac-simulate"): SINGLE_RUN_ONLY,
    ("leac-report", "leac-compile"): {"pass_seconds", "compile_seconds", "allocation.simulated_agreement"},
    ("leac-report", "leac-simulate"): {"board", "after_s"},
}
EMBED = re.compile(r"^(.*)<([a-z-]+)>$")  # `chips[].<leac-compile>`: every key of that report, under chips[]


def documented() -> dict[str, list[str]]:
    """Report name -> the keys its table lists, from docs/reports.md."""
    reports: dict[str, list[str]] = {}
    for section in DOC.read_text().split("\n## ")[1:]:
        title, _, body = section.partition("\n")
        if not title.startswith("leac-"):
            continue
        reports[title.strip()] = re.findall(r"^\| `([^`]+)` \|", body, flags=re.MULTILINE)
    return reports


def expected_keys(name: str, docs: dict[str, list[str]]) -> set[str]:
    """The documented keys of a report with embedded reports expanded and every parent path added."""
    keys: set[str] = set()
    for key in docs[name]:
        match = EMBED.match(key)
        if match:
            prefix, other = match.groups()
            left_out = EMBEDDED_WITHOUT[(name, other)]
            keys |= {prefix + inner for inner in expected_keys(other, docs)
                     if not any(inner == key or inner.startswith((key + ".", key + "[]")) for key in left_out)}
        else:
            keys.add(key)
    for key in list(keys):
        parts = key.split(".")
        for i in range(1, len(parts)):
            keys.add(".".join(parts[:i]).removesuffix("[]"))
    return {key.removesuffix("[]") for key in keys}


def printed_keys(value: Any, maps: set[str], prefix: str = "") -> Iterator[str]:
    """Every key path of a JSON value (`a.b`, `a[].b`); objects documented as `a.*` stop at `a.*`."""
    if isinstance(value, dict):
        if prefix in maps:
            yield f"{prefix}.*"
            return
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from printed_keys(item, maps, path)
    elif isinstance(value, list):
        for item in value:
            yield from printed_keys(item, maps, f"{prefix}[]")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every report, from real runs (several where keys appear only in some cases)."""
    folder = tmp_path_factory.mktemp("reports")
    model, data, chip, chip2 = (folder / n for n in ("mlp.onnx", "d.npz", "chip.json", "chip2.json"))
    onnx.save(mlp_model(), model)
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal((16, 4)).astype(np.float32), y=rng.integers(0, 3, 16))
    maps = []
    for i in range(2):
        values = np.full((6, 6), 100e-6)
        values[1, 2] = 400e-6  # stuck high
        values[4, :] = 1e-6  # a dead row
        maps.append(folder / f"map{i}.txt")
        np.savetxt(maps[-1], values)
    out: dict[str, list[dict[str, Any]]] = {}
    synth = ["chip", "synth", "--arrays", "8", "--rows", "16", "--cols", "16", "--json"]
    out["leac-chip-synth"] = [_json([*synth, "--seed", "1", "-o", str(chip)]),
                              _json([*synth, "--seed", "2", "--dead-rows", "0.1", "-o", str(chip2)])]
    out["leac-chip-import"] = [_json(["chip", "import", *map(str, maps), "-o", str(folder / "m.json"),
                                           "--json"])]
    out["leac-chip-show"] = [_json(["chip", "show", str(chip), "--json"])]
    bad = folder / "bad.json"
    bad.write_text('{"format": "leac-chip", "version": 1, "arrays": {"count": 0, "rows": 2, "cols": 2}}')
    out["leac-chip-validate"] = [_json(["chip", "validate", str(chip), "--json"]),
                                 _json(["chip", "validate", str(bad), "--json"], status=3)]
    out["leac-inspect"] = [_json(["inspect", str(model), "--json"])]
    program = folder / "p.leac"
    out["leac-compile"] = [_json(["compile", str(model), "--chip", str(chip), "-k", "2", "--placer", "greedy",
                                       "--calibrate", str(data), "-o", str(program), "--json"]),
                           _json(["compile", str(model), "--chip", str(chip), "-k", "auto", "--budget", "40%",
                                  "--placer", "greedy", "--calibrate", str(data), "-o", str(folder / "auto.leac"),
                                  "--json"])]
    out["leac-compile-batch"] = [_json(["compile", str(model), "--chip", str(chip), "--chip", str(chip2),
                                             "--chip", str(bad), "-k", "2", "--placer", "greedy", "--jobs", "1",
                                             "-o", str(folder / "batch"), "--json"], status=3)]
    out["leac-simulate"] = [_json(["simulate", str(program), "--data", str(data), "--json"])]
    junk = folder / "junk.leac"
    junk.write_text("not a Program")
    out["leac-simulate-batch"] = [_json(["simulate", str(program), str(junk), "--data", str(data), "--jobs", "1",
                                         "--min-accuracy", "50", "--json"], status=3)]
    board = folder / "p.board.jsonl"
    out["leac-emit"] = [_json(["emit", str(program), "-o", str(board), "--json"])]
    out["leac-simulate"].append(_json(["simulate", str(board), "--program", str(program), "--data", str(data),
                                       "--json"]))  # a board file: the `board` key
    out["leac-simulate"].append(_json(["simulate", str(program), "--data", str(data), "--trials", "2", "--json"]))
    drifting = folder / "drifting.json"
    document = json.loads(chip.read_text())
    document["device"]["drift"] = {"nu": 0.05}
    drifting.write_text(json.dumps(document))
    out["leac-simulate"].append(_json(["simulate", str(program), "--data", str(data), "--chip", str(drifting),
                                       "--after", "1h", "--json"]))  # --after: the `after_s` key
    out["leac-show"] = [_json(["show", str(program), "--json"])]
    if importlib.util.find_spec("matplotlib") is not None:  # the plot extra: pages[] only with a picture
        out["leac-show"].append(_json(["show", str(program), "--png", str(folder / "placement.png"), "--json"]))
    out["leac-report"] = [_json(["report", str(program), "-o", str(folder / "r.html"), "--json"]),
                          _json(["report", str(folder / "auto.leac"), "--data", str(data), "--trials", "2",
                                 "-o", str(folder / "auto.html"), "--json"])]
    out["leac-board-validate"] = [_json(["board", "validate", str(board), "--json"])]
    out["leac-program"] = [_json(["program", str(program), "-o", str(folder / "q.leac"), "--json"]),
                           _json(["program", str(program), "--strategy", "open-loop", "-o", str(folder / "r.leac"),
                                  "--readback", str(folder / "r.json"), "--json"])]
    out["leac-error"] = [_json(["compile", str(model), "--chip", str(bad), "-o", str(folder / "x.leac"), "--json"],
                               status=3)]
    return out


def _json(argv: list[str], status: int = 0) -> dict[str, Any]:
    """Run `main` with its output captured (a module-scoped fixture cannot use capsys); the JSON it printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    assert code == status, f"leac {' '.join(argv)}: {code}\n{stderr.getvalue()}"
    report: dict[str, Any] = json.loads(stdout.getvalue())
    return report


DOCS = documented()


@pytest.mark.parametrize("name", sorted(DOCS))
def test_documented_keys_are_the_printed_keys(name: str, reports) -> None:
    if name == "leac-show":
        pytest.importorskip("matplotlib")
    expected = expected_keys(name, DOCS)
    maps = {key.removesuffix(".*") for key in expected if key.endswith(".*")}
    printed = {key for report in reports[name] for key in printed_keys(report, maps)}
    assert printed == expected, (f"docs/reports.md, {name}: printed but not documented: {sorted(printed - expected)}; "
                                 f"documented but not printed: {sorted(expected - printed)}")
    for report in reports[name]:
        if "report" in expected:
            assert (report["report"], report["version"]) == (name, 1)


def test_every_command_has_json_and_a_documented_report() -> None:
    commands = {
        ("compile",): "leac-compile", ("simulate",): "leac-simulate", ("emit",): "leac-emit",
        ("inspect",): "leac-inspect", ("board", "validate"): "leac-board-validate", ("program",): "leac-program",
        ("show",): "leac-show", ("report",): "leac-report",
        ("chip", "validate"): "leac-chip-validate", ("chip", "show"): "leac-chip-show",
        ("chip", "synth"): "leac-chip-synth", ("chip", "import"): "leac-chip-import",
    }
    leaves = {}

    def walk(parser: Any, prefix: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            leaves[prefix] = {option for a in parser._actions for option in a.option_strings}
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, (*prefix, name))

    walk(build_parser(), ())
    assert set(leaves) == set(commands)
    assert all("--json" in options for options in leaves.values())
    assert set(commands.values()) | {"leac-compile-batch", "leac-simulate-batch", "leac-error"} == set(DOCS)


def test_the_documented_exit_statuses_are_the_cli_s() -> None:
    section = DOC.read_text().split("\n## Exit statuses")[1].split("\n## ")[0]
    statuses = {int(s) for s in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)}
    assert statuses == {cli.EXIT_OK, cli.EXIT_BUG, cli.EXIT_USAGE, cli.EXIT_INVALID_INPUT, cli.EXIT_DOES_NOT_FIT,
                        cli.EXIT_INTERRUPTED, cli.EXIT_TERMINATED} == {0, 1, 2, 3, 4, 130, 143}


@pytest.fixture
def failing_inputs(tmp_path: Path) -> dict[str, Path]:
    """A model, a small chip, a chip file breaking the format, and a model leac cannot compile (a MatMul by a
    graph input: no constant weights to put on crossbars)."""
    files = {name: tmp_path / f"{name}.{ext}" for name, ext in
             (("mlp", "onnx"), ("chip", "json"), ("bad", "json"), ("dynamic", "onnx"))}
    onnx.save(mlp_model(), files["mlp"])
    save_chip(synth_chip(arrays=2, rows=8, cols=8, seed=0), files["chip"])
    files["bad"].write_text('{"format": "leac-chip", "version": 1, "arrays": {"count": 0, "rows": 2, "cols": 2}}')
    onnx.save(make_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                         {"x": (np.float32, ["N", 4]), "w": (np.float32, [4, 3])}, ["y"]), files["dynamic"])
    return files


FAILURES = {
    "argparse": (["compile", "--json"], 2, "UsageError"),
    "usage": (["inspect", "{mlp}", "-k", "0", "--json"], 2, "UsageError"),
    "bad model": (["inspect", "{tmp}/missing.onnx", "--json"], 3, "InvalidModelError"),
    "bad chip": (["compile", "{mlp}", "--chip", "{bad}", "-o", "{tmp}/p.leac", "--json"], 3,
                 "InvalidChipError"),
    "does not fit": (["compile", "{mlp}", "--chip", "{chip}", "-k", "8", "-o", "{tmp}/p.leac", "--json"], 4,
                     "DoesNotFitError"),
    "compile error": (["compile", "{dynamic}", "--chip", "{chip}", "-o", "{tmp}/p.leac", "--json"], 1,
                      "CompileError"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_a_failure_with_json_prints_one_error_object(case: str, failing_inputs: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """With --json a failing command still prints exactly one object on stdout (issue 12); the message goes to
    stderr as without --json; no output file is written."""
    argv, status, kind = FAILURES[case]
    names = {**{name: str(path) for name, path in failing_inputs.items()}, "tmp": str(failing_inputs["mlp"].parent)}
    assert main([arg.format(**names) for arg in argv]) == status
    out, err = capsys.readouterr()
    report = json.loads(out)  # exactly one JSON document, nothing else on stdout
    assert report == {"report": "leac-error", "version": 1, "exit_status": status, "error": report["error"],
                      "kind": kind}
    assert report["error"] and report["error"].splitlines()[0] in err
    assert not (failing_inputs["mlp"].parent / "p.leac").exists()


@pytest.mark.parametrize("raised, status, kind", [(KeyboardInterrupt, 130, "KeyboardInterrupt"),
                                                  (cli.Terminated, 143, "Terminated"),
                                                  (ZeroDivisionError, 1, "ZeroDivisionError")])
def test_an_interrupt_or_a_bug_with_json_prints_one_error_object(raised: type[BaseException], status: int, kind: str,
                                                                 failing_inputs: dict[str, Path], monkeypatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def compile_model(*args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(lea_compiler.compiler, "compile_model", compile_model)  # leac compile takes it from there
    assert main(["compile", str(failing_inputs["mlp"]), "--chip", str(failing_inputs["chip"]),
                 "-o", str(failing_inputs["mlp"].parent / "p.leac"), "--json"]) == status
    report = json.loads(capsys.readouterr().out)
    assert (report["report"], report["exit_status"], report["kind"]) == ("leac-error", status, kind)


def test_without_json_a_failure_prints_nothing_on_stdout(failing_inputs: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(failing_inputs["mlp"]), "--chip", str(failing_inputs["bad"]),
                 "-o", str(failing_inputs["mlp"].parent / "p.leac")]) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("leac: error: ")
