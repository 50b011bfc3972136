"""The Python API: compile, simulate and emit from Python, errors as LeacError subclasses."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

import lea_compiler as leac
from tests.helpers import mlp_model


def test_compile_simulate_emit(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(mlp_model(), model)
    chip = leac.synth_chip(arrays=8, rows=25, cols=25, seed=1)
    program = leac.compile(model, chip, k=2, seed=3)
    assert isinstance(program, leac.Program) and program.devices_used == 2 * 2 * 138
    path = tmp_path / "m.leac"
    program.save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32), y=np.zeros(20, np.int64))
    report = leac.simulate(path, [data, data], seed=1)
    assert len(report.data) == 2 and 0 <= report.accuracy <= 1
    summary = leac.emit_board(program, tmp_path / "b.jsonl")
    assert summary.writes + summary.skips == program.devices_used


def test_errors_are_leac_errors(tmp_path) -> None:
    with pytest.raises(leac.InvalidModelError):
        leac.compile(tmp_path / "missing.onnx", leac.synth_chip(arrays=1, rows=4, cols=4, seed=0))
    model = tmp_path / "m.onnx"
    onnx.save(mlp_model(), model)
    with pytest.raises(leac.DoesNotFitError):
        leac.compile(model, leac.synth_chip(arrays=1, rows=25, cols=25, seed=0), k=6)
    assert issubclass(leac.InvalidChipError, leac.InvalidInputError) and issubclass(leac.CompileError, leac.LeacError)
    with pytest.raises(AttributeError):
        leac.no_such_name  # noqa: B018


@pytest.fixture(scope="module")
def small_program(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    onnx.save(mlp_model(), folder / "m.onnx")
    program = leac.compile(folder / "m.onnx", leac.synth_chip(arrays=4, rows=16, cols=16, seed=0), k=1,
                           placer="greedy")
    x = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    np.savez(folder / "d.npz", x=x, y=np.arange(40) % 3)
    return program, folder / "d.npz", x, np.arange(40) % 3


def test_simulate_takes_arrays_as_a_tuple_a_dict_or_a_dataset(small_program) -> None:
    """Issue 12: leac.simulate(program, (x, y)) raised a raw TypeError."""
    program, path, x, y = small_program
    expected = leac.simulate(program, path).data[0]
    forms = [(x, y), (x.astype(np.float64), y.astype(np.uint8)), {"x": x, "y": y}, leac.Dataset("d", x, y),
             (x.tolist(), y.tolist())]
    for data in forms:
        got = leac.simulate(program, data).data[0]
        assert (got.name, got.samples, got.accuracy) == ("d" if isinstance(data, leac.Dataset) else "data",
                                                         40, expected.accuracy)
    report = leac.simulate(program, [path, (x, y), {"x": x, "y": y, "name": "held-out"}])
    assert [d.name for d in report.data] == ["d.npz", "data[1]", "held-out"]


@pytest.mark.parametrize("data, error, message", [
    (lambda x, y: [x, y], leac.UsageError, r"data\[0\] is a ndarray, not a data set: give an .npz path, a Dataset, "
                                           r"a tuple \(x, y\) or a dict with 'x' and 'y'"),
    (lambda x, y: x, leac.UsageError, r"data is a single array; give the inputs and labels together"),
    (lambda x, y: [], leac.UsageError, "no data sets given"),
    (lambda x, y: [42], leac.UsageError, r"data\[0\] is 42, not a data set"),
    (lambda x, y: None, leac.UsageError, r"^data is None, not a data set: give an .npz path"),
    (lambda x, y: 5, leac.UsageError, r"^data is 5, not a data set"),
    (lambda x, y: {"x": x}, leac.BadDataError, r"data: a data set dict needs keys 'x' and 'y'"),
    (lambda x, y: (x[:5], y), leac.BadDataError, "data: x has 5 samples and y 40"),
    (lambda x, y: (x, y + 1), leac.BadDataError, r"data: y holds labels 1 to 3, but the model's output 'y' gives 3 "
                                                 r"classes \(labels 0 to 2\)"),
    (lambda x, y: leac.Dataset("mine", x.astype(complex), y), leac.BadDataError, "mine: input x: got complex128"),
    (lambda x, y: ([[1, 2], [3]], y), leac.BadDataError, "data: x and y must be arrays"),
])
def test_simulate_refuses_what_is_not_a_data_set(small_program, data, error, message) -> None:
    program, _, x, y = small_program
    with pytest.raises(error, match=message):
        leac.simulate(program, data(x, y))


def _flags(command: str) -> set[str]:
    from lea_compiler.cli import build_parser

    subparsers = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return {action.dest for action in subparsers.choices[command]._actions if action.dest != "help"}


def test_api_keywords_are_the_cli_flags() -> None:
    """Issue 12: every option of `leac simulate` and `leac compile` has its API keyword, named as the flag
    except the renames the docstrings list (and the flags that have no meaning in the API)."""
    import inspect

    simulate = set(inspect.signature(leac.simulate).parameters)
    many_only = {"program_dir", "jobs", "scheduler", "min_accuracy"}  # simulate_many's, with `programs`
    # --program (dest board_program) is the Program of a board file given in its place: the API's `program`, with
    # the board file as `board`
    assert "board" in simulate
    assert _flags("simulate") - {"json", "func", "board_program"} - many_only <= simulate
    simulate_many = set(inspect.signature(leac.simulate_many).parameters)
    # --trials, --after and --timeline go with one Program only
    assert _flags("simulate") - {"json", "func", "chip", "program", "program_dir", "board_program", "trials",
                                 "after", "timeline"} <= simulate_many
    compile_params = set(inspect.signature(leac.compile).parameters)
    renames = {"time_limit": "time_limit_s", "calibrate": "calibrate_on"}
    cli_only = {"json", "func", "output", "dump_ir", "time_passes", "chip_dir", "jobs", "scheduler"}
    assert {renames.get(flag, flag) for flag in _flags("compile") - cli_only} == compile_params
    for old, new in renames.items():
        assert f"`{new}` is `--{old.replace('_', '-')}" in " ".join(leac.compile.__doc__.split())
    assert {"jobs", "scheduler"} <= set(inspect.signature(leac.compile_many).parameters)


def test_emit_board_and_the_timeline_never_write_over_the_program(small_program, tmp_path, monkeypatch) -> None:
    """Audit: `leac.emit_board("y.leac", "y.leac")`, and the same with a Program loaded from y.leac, replaced the
    Program with board JSON (`leac emit y.leac -o y.leac` refuses); the file a Program object was loaded from is
    an input too, however the output names it."""
    import dataclasses
    import re

    program, data = small_program[0], small_program[1]
    path = tmp_path / "y.leac"
    program.save(path)
    before = path.read_bytes()
    (tmp_path / "link.leac").symlink_to(path)
    (tmp_path / "sub").mkdir()
    loaded = leac.Program.load(path)
    monkeypatch.chdir(tmp_path)
    relative = leac.Program.load("y.leac")
    monkeypatch.chdir(tmp_path / "sub")  # the relative path it was loaded from now names another file
    refused = re.escape(f"refusing to write over the input file {path}")
    for given, out in [(path, path), (str(path), f"{tmp_path}/sub/../y.leac"), (loaded, path),
                       (loaded, tmp_path / "link.leac"), (relative, "../y.leac")]:
        with pytest.raises(leac.UsageError, match=f"^path {re.escape(str(out))}: {refused}$"):
            leac.emit_board(given, out)
    with pytest.raises(leac.UsageError, match=f"^timeline {re.escape(str(path))}: {refused}$"):
        leac.simulate(loaded, data, timeline=path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.leac", "sub", "y.leac"]
    assert not list((tmp_path / "sub").iterdir())
    # where it was loaded from is not part of the Program: not saved, and not carried to a derived Program
    assert loaded.loaded_from == str(path) and loaded.to_bytes() == before
    assert program.loaded_from is None and leac.Program.from_bytes(before).loaded_from is None
    assert dataclasses.replace(loaded).loaded_from is None
    assert leac.emit_board(loaded, tmp_path / "b.jsonl").writes > 0


@pytest.mark.parametrize("wrap", [tuple, list, iter, lambda paths: paths[0]], ids=["tuple", "list", "iterator", "one"])
def test_the_timeline_never_writes_over_a_data_file_however_the_data_are_given(small_program, tmp_path,
                                                                               wrap) -> None:
    """Review: only a list of data was searched for input paths, so timeline= a data file given in a tuple wrote
    the PNG over it (and the data could no longer be read)."""
    pytest.importorskip("matplotlib")
    program, data = small_program[0], small_program[1]
    copy = tmp_path / "d.npz"
    copy.write_bytes(data.read_bytes())
    before = copy.read_bytes()
    with pytest.raises(leac.UsageError, match="refusing to write over the input file"):
        leac.simulate(program, wrap([copy]), timeline=copy)
    assert copy.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


@pytest.fixture
def api_files(small_program, tmp_path, monkeypatch):
    """A folder holding a Program, its data, its chip and its model (the working folder): what the calls of
    `test_a_wrong_call_is_a_usage_error` may name."""
    from lea_compiler.chip import save_chip

    program, data, x, y = small_program
    program.save(tmp_path / "p.leac")
    (tmp_path / "d.npz").write_bytes(data.read_bytes())
    save_chip(program.chip, tmp_path / "c.json")
    onnx.save(mlp_model(), tmp_path / "m.onnx")
    monkeypatch.chdir(tmp_path)
    return {"program": leac.Program.load("p.leac"), "x": x, "y": y, "folder": tmp_path}


def _file_contents(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


def _load_open_file(path: str) -> None:
    with open(path, "rb") as handle:
        leac.Program.load(handle)  # type: ignore[arg-type]


_INTEGER = "must be an integer >= "
_PATH = r"must be a file path \(str or os.PathLike\)"
WRONG_CALLS = {
    # leac.simulate: each raised a bare Python error from deep inside, or ran with "no" read as True
    "simulate batch_size 0": (lambda f: leac.simulate(f["program"], "d.npz", batch_size=0),
                              f"^batch_size {_INTEGER}1, got 0$"),
    "simulate batch_size -5": (lambda f: leac.simulate(f["program"], "d.npz", batch_size=-5),
                               f"^batch_size {_INTEGER}1, got -5$"),
    "simulate batch_size 1.5": (lambda f: leac.simulate(f["program"], "d.npz", batch_size=1.5),
                                f"^batch_size {_INTEGER}1, got 1.5$"),
    "simulate seed 'a'": (lambda f: leac.simulate(f["program"], "d.npz", seed="a"), f"^seed {_INTEGER}0, got 'a'$"),
    "simulate seed None": (lambda f: leac.simulate(f["program"], "d.npz", seed=None), f"^seed {_INTEGER}0, got None$"),
    "simulate seed 1.5": (lambda f: leac.simulate(f["program"], "d.npz", seed=1.5), f"^seed {_INTEGER}0, got 1.5$"),
    "simulate seed True": (lambda f: leac.simulate(f["program"], "d.npz", seed=True), f"^seed {_INTEGER}0, got True$"),
    "simulate seed -1": (lambda f: leac.simulate(f["program"], "d.npz", seed=np.int64(-1)),
                         f"^seed {_INTEGER}0, got -1$"),
    "simulate threads 'a'": (lambda f: leac.simulate(f["program"], "d.npz", threads="a"),
                             f"^threads {_INTEGER}1, got 'a'$"),
    "simulate trials 2.0": (lambda f: leac.simulate(f["program"], "d.npz", trials=2.0),
                            f"^trials {_INTEGER}1, got 2.0$"),
    "simulate data None": (lambda f: leac.simulate(f["program"], None), "^data is None, not a data set: give an "),
    "simulate data 5": (lambda f: leac.simulate(f["program"], 5), "^data is 5, not a data set: give an "),
    "simulate ideal 'no'": (lambda f: leac.simulate(f["program"], "d.npz", ideal="no"),
                            "^ideal must be True or False, got 'no'$"),
    "simulate ideal 1": (lambda f: leac.simulate(f["program"], "d.npz", ideal=1),
                         "^ideal must be True or False, got 1$"),
    "simulate exact_read_noise 'no'": (lambda f: leac.simulate(f["program"], "d.npz", exact_read_noise="no"),
                                       "^exact_read_noise must be True or False, got 'no'$"),
    "simulate output 5": (lambda f: leac.simulate(f["program"], "d.npz", output=5),
                          r"^output must be an output name \(str\) or None, got 5$"),
    "simulate program None": (lambda f: leac.simulate(None, "d.npz"), f"^program {_PATH} or a Program, got None$"),
    "simulate chip 5": (lambda f: leac.simulate(f["program"], "d.npz", chip=5),
                        f"^chip {_PATH}, a Chip or None, got 5$"),
    "simulate board dict": (lambda f: leac.simulate(f["program"], "d.npz", board={}),
                            f"^board {_PATH} or None, got a dict$"),
    "simulate timeline file": (lambda f: leac.simulate(f["program"], "d.npz", timeline=io.BytesIO()),
                               f"^timeline {_PATH} or None, got a BytesIO$"),
    # leac.program_chip
    "program_chip board None": (lambda f: leac.program_chip(f["program"], board=None),
                                r"^board must be a board name \(str\) or a Board, got None$"),
    "program_chip board 5": (lambda f: leac.program_chip(f["program"], board=5),
                             r"^board must be a board name \(str\) or a Board, got 5$"),
    "program_chip progress 5": (lambda f: leac.program_chip(f["program"], progress=5),
                                "^progress must be a function or None, got 5$"),
    "program_chip seed 'a'": (lambda f: leac.program_chip(f["program"], seed="a"), f"^seed {_INTEGER}0, got 'a'$"),
    "program_chip attempts 0": (lambda f: leac.program_chip(f["program"], attempts=np.int64(0)),
                                r"^attempts must be an integer in 1\.\.100, got 0$"),
    "program_chip tolerance 'a'": (lambda f: leac.program_chip(f["program"], tolerance_uS="a"),
                                   "^tolerance_uS must be a number, got 'a'$"),
    # review: a bool passed number_argument's test unnoticed (docs/cli.md: a bool is not a number)
    "program_chip tolerance True": (lambda f: leac.program_chip(f["program"], tolerance_uS=True),
                                    "^tolerance_uS must be a number, got True$"),
    "program_chip max_pulses 1.5": (lambda f: leac.program_chip(f["program"], max_pulses=1.5),
                                    f"^max_pulses {_INTEGER}1, got 1.5$"),
    "program_chip chip 5": (lambda f: leac.program_chip(f["program"], chip=5),
                            f"^chip {_PATH}, a Chip or None, got 5$"),
    "program_chip calibrate_on 5": (lambda f: leac.program_chip(f["program"], calibrate_on=5),
                                    f"^calibrate_on {_PATH} or None, got 5$"),
    # a path argument given no path, or an open file
    "compile model None": (lambda f: leac.compile(None, "c.json"), f"^model {_PATH} or a Graph, got None$"),
    "compile chip None": (lambda f: leac.compile("m.onnx", None), f"^chip {_PATH} or a Chip, got None$"),
    "compile calibrate_on 5": (lambda f: leac.compile("m.onnx", "c.json", calibrate_on=5),
                               f"^calibrate_on {_PATH} or None, got 5$"),
    "emit_board path None": (lambda f: leac.emit_board(f["program"], None), f"^path {_PATH}, got None$"),
    "emit_board path StringIO": (lambda f: leac.emit_board(f["program"], io.StringIO()),
                                 f"^path {_PATH}, got a StringIO$"),
    "emit_board program 5": (lambda f: leac.emit_board(5, "b.jsonl"), f"^program {_PATH} or a Program, got 5$"),
    "emit_board unknown keyword": (lambda f: leac.emit_board(f["program"], "b.jsonl", foo=1),
                                   "^leac.emit_board: unknown keyword 'foo'; the valid keywords are tolerance_uS, "
                                   "max_pulses$"),
    "emit_board max_pulses True": (lambda f: leac.emit_board(f["program"], "b.jsonl", max_pulses=True),
                                   f"^max_pulses {_INTEGER}1, got True$"),
    "emit_board tolerance '1'": (lambda f: leac.emit_board(f["program"], "b.jsonl", tolerance_uS="1"),
                                 "^tolerance_uS must be a number, got '1'$"),
    "Program.save None": (lambda f: f["program"].save(None), f"^path {_PATH}, got None$"),
    "Program.load file": (lambda f: _load_open_file("p.leac"), f"^path {_PATH}, got a BufferedReader$"),
    "load_chip None": (lambda f: leac.load_chip(None), f"^path {_PATH}, got None$"),
    "load_model None": (lambda f: leac.load_model(None), f"^path {_PATH}, got None$"),
    "load_data graph 'x'": (lambda f: leac.load_data("d.npz", "x"),
                            r"^graph must be the model's Graph \(a Program's \.graph, or leac\.load_model's\), "
                            "got 'x'$"),
    "load_data path 5": (lambda f: leac.load_data(5, f["program"].graph), f"^path {_PATH}, got 5$"),
    # the batches: a wrong argument, never a row reported as an internal error
    "compile_many chips None": (lambda f: leac.compile_many("m.onnx", None, "cm"),
                                f"^chips {_PATH}, a folder or a list of file paths, got None$"),
    "compile_many chips[1] 5": (lambda f: leac.compile_many("m.onnx", ["c.json", 5], "cm"),
                                rf"^chips\[1\] {_PATH}, got 5$"),
    "compile_many out_dir None": (lambda f: leac.compile_many("m.onnx", "c.json", None),
                                  f"^out_dir {_PATH}, got None$"),
    "compile_many jobs 'a'": (lambda f: leac.compile_many("m.onnx", "c.json", "cm", jobs="a"),
                              f"^jobs {_INTEGER}1, got 'a'$"),
    "compile_many on_result 5": (lambda f: leac.compile_many("m.onnx", "c.json", "cm", on_result=5),
                                 "^on_result must be a function or None, got 5$"),
    "simulate_many programs None": (lambda f: leac.simulate_many(None, "d.npz"),
                                    f"^programs {_PATH}, a folder or a list of file paths, got None$"),
    "simulate_many data (x, y)": (lambda f: leac.simulate_many(["p.leac"], (f["x"], f["y"])),
                                  rf"^data\[0\] {_PATH}, got a ndarray$"),
    "simulate_many seed 'a'": (lambda f: leac.simulate_many(["p.leac"], "d.npz", seed="a"),
                               f"^seed {_INTEGER}0, got 'a'$"),
    "simulate_many jobs 'a'": (lambda f: leac.simulate_many(["p.leac"], "d.npz", jobs="a"),
                               f"^jobs {_INTEGER}1, got 'a'$"),
    "simulate_many min_accuracy 'a'": (lambda f: leac.simulate_many(["p.leac"], "d.npz", min_accuracy="a"),
                                       "^min_accuracy must be a number, got 'a'$"),
    "simulate_many ideal 'no'": (lambda f: leac.simulate_many(["p.leac"], "d.npz", ideal="no"),
                                 "^ideal must be True or False, got 'no'$"),
    "simulate_many scheduler 5": (lambda f: leac.simulate_many(["p.leac"], "d.npz", scheduler=5),
                                  r"^scheduler must be a Dask scheduler address \(str\) or None, got 5$"),
}


@pytest.mark.parametrize("case", WRONG_CALLS)
def test_a_wrong_call_is_a_usage_error(api_files, case) -> None:
    """Audit: wrong types and values given to the API raised bare Python errors (TypeError, ValueError,
    AttributeError) from deep inside, or were taken ("no" as True); each is a UsageError naming the argument,
    saying what it must be and showing what was given, and nothing is written."""
    call, message = WRONG_CALLS[case]
    before = _file_contents(api_files["folder"])
    with pytest.raises(leac.UsageError, match=message):
        call(api_files)
    assert _file_contents(api_files["folder"]) == before


def test_numpy_integers_are_taken_as_ints_and_never_reach_a_report(api_files) -> None:
    """Audit: `simulate(..., seed=np.int64(1)).to_json()` kept an np.int64 that json.dumps refuses; numpy
    scalars are taken wherever Python numbers are, as the Python numbers they hold."""
    import json

    program = api_files["program"]
    plain = leac.simulate(program, "d.npz", seed=1, trials=2, batch_size=16, threads=1, ideal=False)
    numpy = leac.simulate(program, "d.npz", seed=np.int64(1), trials=np.int32(2), batch_size=np.int64(16),
                          threads=np.uint8(1), ideal=np.bool_(False))
    assert type(numpy.seed) is int and all(type(seed) is int for seed in numpy.trials.seeds)
    shown = [json.loads(json.dumps({k: v for k, v in r.to_json().items() if k != "seconds"})) for r in (plain, numpy)]
    assert shown[0] == shown[1]
    batch = leac.simulate_many("p.leac", "d.npz", seed=np.int64(1), jobs=np.int64(1), min_accuracy=np.float32(0.5))
    assert json.loads(json.dumps(batch.to_json()))["yield"]["min_accuracy"] == 0.5 and batch.options.seed == 1
    leac.emit_board(program, "a.jsonl", max_pulses=7, tolerance_uS=0.5)
    leac.emit_board(program, "b.jsonl", max_pulses=np.int64(7), tolerance_uS=np.float32(0.5))
    assert (api_files["folder"] / "a.jsonl").read_bytes() == (api_files["folder"] / "b.jsonl").read_bytes()
    costs = [leac.program_chip(program, seed=seed, attempts=attempts).cost
             for seed, attempts in ((3, 2), (np.int64(3), np.int16(2)))]
    assert costs[0] == costs[1]


def test_help_shows_the_api_and_emit_board_names_its_keywords() -> None:
    """Audit: `help(leac)` showed none of the API (loaded lazily), and `emit_board(program, path, **options)` had
    a one-line docstring: its keywords are `leac emit`'s flags, named in its signature and docstring."""
    import inspect
    import pydoc

    text = pydoc.render_doc(leac, renderer=pydoc.plaintext)
    for name in set(leac.__all__) - {"__version__"}:  # each under CLASSES or FUNCTIONS
        assert f"\n    class {name}" in text or f"\n    {name}(" in text, name
    assert "emit_board(program: 'Program | PathLike', path: 'PathLike', *, tolerance_uS" in text
    keywords = {name for name, p in inspect.signature(leac.emit_board).parameters.items() if p.kind == p.KEYWORD_ONLY}
    assert keywords == _flags("emit") - {"json", "func", "program", "output", "target"} == {"tolerance_uS",
                                                                                           "max_pulses"}
    doc = " ".join(leac.emit_board.__doc__.split())
    assert "`tolerance_uS` is `--tolerance-uS`" in doc and "`max_pulses` is `--max-pulses`" in doc


def test_compile_many_into_an_empty_folder_name_is_refused(tmp_path, monkeypatch) -> None:
    """Review: leac.compile_many(model, chips, "") wrote into the current folder (Path("") is "."), while
    `leac compile --chip-dir ... -o ''` is refused."""
    from lea_compiler.chip import save_chip, synth_chip

    onnx.save(mlp_model(), tmp_path / "m.onnx")
    (tmp_path / "chips").mkdir()
    save_chip(synth_chip(arrays=16, rows=16, cols=16, seed=0), tmp_path / "chips" / "c1.json")
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    with pytest.raises(leac.UsageError, match="the output folder is empty: name the folder for the Programs"):
        leac.compile_many(tmp_path / "m.onnx", tmp_path / "chips", "", k=1, jobs=1)
    assert list(run.iterdir()) == []
