"""The Python API: compile, simulate and emit from Python, errors as LeacError subclasses."""

from __future__ import annotations

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
    (lambda x, y: [42], leac.UsageError, r"data\[0\] is a int, not a data set"),
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
