"""`leac report`: the self-contained HTML page of a Program and its JSON facts (lea_compiler/report_html.py)."""

from __future__ import annotations

import base64
import json
import re
import sys
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from lea_compiler import report_html
from lea_compiler.backends.sim import load_data, simulate_trials
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import program_summary
from lea_compiler.plot_placement import placed_halves
from lea_compiler.program import Program
from lea_compiler.report_html import SECTIONS, make_report, render_html
from tests.helpers import mlp_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE_LAYER = "<script>alert(1)</script>"
HOSTILE_CHIP = "<img src=x onerror=alert(2)>"
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "wbr", "source"}


class _Structure(HTMLParser):
    """Checks that every element is closed in order, and collects ids, images and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if tag == "img":
            self.images.append(str(values.get("src")))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    return parser


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Program with a hostile layer name, model file name and chip name, and data for it."""
    folder = tmp_path_factory.mktemp("report")
    model = mlp_model()
    for node in model.graph.node:
        if node.name == "fc1":
            node.name = HOSTILE_LAYER
    paths = {"model": folder / "m<i>.onnx", "chip": folder / "chip.json", "program": folder / "p.leac",
             "data": folder / "d.npz"}
    onnx.save(model, paths["model"])
    save_chip(synth_chip(arrays=6, rows=16, cols=16, stuck_high=0.05, seed=2, name=HOSTILE_CHIP), paths["chip"])
    rng = np.random.default_rng(0)
    np.savez(paths["data"], x=rng.standard_normal((64, 4)).astype(np.float32), y=rng.integers(0, 3, 64))
    assert main(["compile", str(paths["model"]), "--chip", str(paths["chip"]), "-k", "3", "--beta", "2",
                 "--placer", "greedy", "-o", str(paths["program"])]) == 0
    return paths


def test_the_page_has_every_section_the_picture_inline_and_nothing_from_the_network(files, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.html"
    assert main(["report", str(files["program"]), "--data", str(files["data"]), "--trials", "3", "-o", str(out),
                 "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    page = out.read_text(encoding="utf-8")
    structure = parse(page)
    assert structure.ids == list(SECTIONS)
    text = " ".join(" ".join(structure.text).split())
    for title in SECTIONS.values():
        assert title in text
    assert len(structure.images) == len(facts["placement"]["pages"]) == 1
    for src in structure.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert not re.search(r"(src|href)=\"(https?:|//)", page) and "script" not in structure.tags
    assert "Content-Security-Policy" in page
    # the facts: the Program's summary and the simulation, called, not recomputed differently
    program = Program.load(files["program"])
    assert {k: facts[k] for k in program_summary(program)} == json.loads(json.dumps(program_summary(program)))
    expected = simulate_trials(program, [load_data(files["data"], program.graph)], trials=3, seed=0, threads=1)
    assert facts["simulation"]["trials"]["accuracy"] == list(expected.trials.accuracy)  # type: ignore[union-attr]
    assert facts["simulation"]["accuracy"] == expected.accuracy
    trials = facts["simulation"]["trials"]
    assert f"{100 * trials['mean']:.1f}% \u00b1 {100 * trials['std']:.1f}%" in text
    assert f"{100 * facts['simulation']['software_accuracy']:.1f}%" in text
    stuck = facts["placement"]["stuck_under_copies"]
    assert sum(stuck.values()) == sum(h.stuck for h in placed_halves(program))
    assert facts["cost"]["latency_ns"] == pytest.approx(facts["simulation"]["latency_ns"])
    assert facts["output"] == str(out)


def test_hostile_names_are_escaped(files, tmp_path, capsys) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(files["program"]), "-o", str(out)]) == 0
    capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img src=x" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "m&lt;i&gt;.onnx" in page
    structure = parse(page)
    text = " ".join(structure.text)
    assert HOSTILE_LAYER in text and HOSTILE_CHIP in text  # shown as text, exactly


def test_without_data_the_accuracy_section_says_how_to_get_it(files, tmp_path, capsys) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(files["program"]), "-o", str(out), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["simulation"] is None
    page = out.read_text(encoding="utf-8")
    accuracy = page.split('<section id="accuracy">')[1].split("</section>")[0]
    assert "No data given" in accuracy and "--data" in accuracy
    assert "output error (simulated)" not in page


def test_without_matplotlib_the_page_says_the_picture_needs_the_extra(files, tmp_path, monkeypatch,
                                                                     capsys) -> None:
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "r.html"
    assert main(["report", str(files["program"]), "-o", str(out)]) == 0
    assert "no placement picture: drawing a placement needs the plot extra" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert "<img" not in page and "pip install &#x27;lea-compiler[plot]&#x27;" in page
    parse(page)


def _edited(program: Path, out: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the Program file at `out` with its program.json changed by `change` (a hand-edited file)."""
    with zipfile.ZipFile(program) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    header = json.loads(entries["program.json"])
    change(header)
    entries["program.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, blob in entries.items():
            archive.writestr(name, blob)
    return out


EVIL_COUNT = '<meta http-equiv="refresh" content="0;url=https://example.invalid/">'
EVIL_BUDGET = '<a href="https://example.invalid/">click</a>'
GOOD_ALLOCATION = {"counts": {"fc0": 3}, "devices": 100, "budget": 200, "predicted_error": 0.1,
                   "predicted_agreement": 0.9, "status": "OPTIMAL", "error": {}, "disagreement": {}}
PROGRAM_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "allocation markup": lambda h: h["extra"].update(allocation={**GOOD_ALLOCATION, "budget": EVIL_BUDGET}),
    "allocation count markup": lambda h: h["extra"].update(allocation={**GOOD_ALLOCATION,
                                                                       "counts": {"fc0": EVIL_COUNT}}),
    "allocation counts a list": lambda h: h["extra"].update(allocation={**GOOD_ALLOCATION, "counts": ["x"]}),
    "placement gap markup": lambda h: h["placement"].update(gap="<b>x</b>"),
    "placement bound a list": lambda h: h["placement"].update(bound_uS=[1]),
    "placement bound past float": lambda h: h["placement"].update(bound_uS=10**400),
    "allocation error past float": lambda h: h["extra"].update(allocation={**GOOD_ALLOCATION,
                                                                           "predicted_error": 10**400}),
}


@pytest.mark.parametrize("case", ["missing", "not a program", "missing folder", "over the input", "over the data",
                                  "a folder", "trials without data", "bad data", "trials 0", "trials too many",
                                  "seed -1", "threads 0", "per-page 0", "per-page 101", *PROGRAM_EDITS])
def test_bad_inputs_are_refused_with_nothing_written(case: str, files, tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.leac"
    junk.write_text("not a Program")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 7), dtype=np.float32), y=np.zeros(4, dtype=np.int64))
    (tmp_path / "folder.html").mkdir()
    out = str(tmp_path / "r.html")
    program, data = str(files["program"]), str(files["data"])
    messages = {
        "allocation markup": "extra.allocation.budget must be an integer >= 0, got '<a href=",
        "allocation count markup": "extra.allocation.counts['fc0'] must be an integer >= 1, got '<meta http-equiv",
        "allocation counts a list": "extra.allocation.counts must be a non-empty object of layer names",
        "placement gap markup": "placement.gap must be a finite number >= 0, got '<b>x</b>'",
        "placement bound a list": "placement.bound_uS must be a finite number, got [1]",
        "placement bound past float": "placement.bound_uS must be a finite number, got 1000000",
        "allocation error past float": "extra.allocation.predicted_error must be a finite number",
    }
    if case in PROGRAM_EDITS:
        edited = str(_edited(files["program"], tmp_path / "edited.leac", PROGRAM_EDITS[case]))
        argv, status, message = ["report", edited, "-o", out], 3, messages[case]
    else:
        argv, status, message = {
            "missing": (["report", str(tmp_path / "none.leac"), "-o", out], 3, "no such Program"),
            "not a program": (["report", str(junk), "-o", out], 3, "not a leac Program file"),
            "missing folder": (["report", program, "-o", str(tmp_path / "no" / "r.html")], 2, "the folder"),
            "over the input": (["report", program, "-o", program], 2, "refusing to write over the input file"),
            "over the data": (["report", program, "--data", data, "-o", data], 2,
                              "refusing to write over the input file"),
            "a folder": (["report", program, "-o", str(tmp_path / "folder.html")], 2, "is a directory"),
            "trials without data": (["report", program, "--trials", "3", "-o", out], 2, "--trials goes with --data"),
            "bad data": (["report", program, "--data", str(bad), "-o", out], 3, "bad.npz"),
            "trials 0": (["report", program, "--data", data, "--trials", "0", "-o", out], 2,
                         "--trials must be in 1..100, got 0"),
            "trials too many": (["report", program, "--data", data, "--trials", "1000000", "-o", out], 2,
                                "--trials must be in 1..100, got 1000000"),
            "seed -1": (["report", program, "--seed", "-1", "-o", out], 2,
                        "--seed takes a non-negative integer, got -1"),
            "threads 0": (["report", program, "--threads", "0", "-o", out], 2, "--threads must be at least 1, got 0"),
            "per-page 0": (["report", program, "--per-page", "0", "-o", out], 2,
                           "--per-page must be in 1..100, got 0"),
            "per-page 101": (["report", program, "--per-page", "101", "-o", out], 2,
                             "--per-page must be in 1..100, got 101"),
        }[case]
    before = {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()}
    inputs = {name: files[name].read_bytes() for name in ("program", "data")}
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.startswith("leac: error: ") and message in err and "Traceback" not in err
    if case in PROGRAM_EDITS:
        assert err.startswith(f"leac: error: {tmp_path / 'edited.leac'}: damaged Program:\n")
    assert {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()} == before
    assert list((tmp_path / "folder.html").iterdir()) == []
    assert {name: files[name].read_bytes() for name in ("program", "data")} == inputs


@pytest.mark.parametrize("edit", ["no model file", "no k", "no encoding", "no quantization error",
                                  "quantization error past float"])
def test_a_program_without_optional_facts_still_reports(edit: str, files, tmp_path: Path, capsys) -> None:
    """Keys the checks on loading do not require may be missing (or unprintable) in a hand-edited Program: the
    report shows what is there."""
    change: Callable[[dict[str, Any]], None] = {
        "no model file": lambda h: h["model"].pop("file", None),
        "no k": lambda h: h["options"].pop("k"),
        "no encoding": lambda h: h["options"].pop("encoding"),
        "no quantization error": lambda h: [layer["quantization"].clear() for layer in h["layers"]],
        "quantization error past float": lambda h: [layer["quantization"].update(relative_rms_error=10**400)
                                                    for layer in h["layers"]],
    }[edit]
    edited = _edited(files["program"], tmp_path / "edited.leac", change)
    assert main(["report", str(edited), "-o", str(tmp_path / "r.html")]) == 0, capsys.readouterr().err
    assert "<html" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_values_from_the_program_are_escaped_even_past_its_checks(files) -> None:
    """Defence in depth: `program_problems` keeps these out of a Program (and `make_report`'s cost model checks
    it again), but facts with markup and malformed values where numbers belong still give a page that shows
    them as text, without a crash."""
    facts, _ = make_report(Program.load(files["program"]), source="p.leac", output=None)
    facts["placement"] = {**facts["placement"], "picture": False, "note": "not drawn here", "pages": []}
    evil = {"counts": {"fc1": EVIL_COUNT, HOSTILE_LAYER: 2}, "budget": EVIL_BUDGET, "predicted_agreement": "<i>hi"}
    cases = [{**facts, "allocation": evil, "optimality_gap": "<b>x</b>", "solver_bound_uS": [1],
              "mapping_error_uS": True},
             {**facts, "allocation": {"counts": ["<u>x"], "budget": 1}},
             {**facts, "allocation": "<s>"}]
    for bad in cases:
        page = render_html(bad, [])
        structure = parse(page)
        assert not {"i", "u", "s"} & structure.tags and page.count("<meta ") == 3
        assert all(href.startswith("#") for href in re.findall(r"<a\s[^>]*href=\"([^\"]*)", page))
        assert "<meta http-equiv=\"refresh\"" not in page and "example.invalid/\">" not in page and "<b>x" not in page
    text = " ".join(parse(render_html(cases[0], [])).text)
    assert f"fc1={EVIL_COUNT}, {HOSTILE_LAYER}=2 within {EVIL_BUDGET} devices; predicted agreement <i>hi" in text
    assert "lower bound [1]" in text and "optimality gap <b>x</b>" in text and "placement cost True" in text
    assert "<u>x" in " ".join(parse(render_html(cases[1], [])).text)


def test_a_picture_of_more_pages_than_a_report_holds_inlines_the_first(files, tmp_path, capsys,
                                                                      monkeypatch) -> None:
    """The report inlines at most MAX_INLINE_PAGES pages (here made 2 of the 6 pages of one array each), draws
    only those, and names the arrays of the rest."""
    pytest.importorskip("matplotlib")
    import lea_compiler.plot_placement as plot_placement

    rendered: list[bytes] = []
    render = plot_placement.png_bytes
    monkeypatch.setattr(plot_placement, "png_bytes", lambda fig: rendered.append(render(fig)) or rendered[-1])
    monkeypatch.setattr(report_html, "MAX_INLINE_PAGES", 2)
    out = tmp_path / "r.html"
    assert main(["report", str(files["program"]), "--per-page", "1", "--all-arrays", "-o", str(out),
                 "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["placement"]["pages"] == [{"arrays": [0]}, {"arrays": [1]}]
    assert facts["placement"]["pages_not_inlined"] == [{"arrays": [i]} for i in range(2, 6)]
    page = out.read_text(encoding="utf-8")
    structure = parse(page)
    assert len(structure.images) == len(rendered) == 2
    text = " ".join(" ".join(structure.text).split())
    assert "Page 2 of 6: arrays 1" in text
    assert "4 more pages (arrays 2\u20135) are not inlined: a report holds at most 2 pages." in text
