"""`leac simulate` for many Programs: each row is the single run's report, any number of jobs, failures kept
apart, the software baseline once per model, and the yield across chips."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import lea_compiler as leac
from lea_compiler.batch import compile_many
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.pipeline import CompileOptions
from lea_compiler.simulate_batch import ProgramResult, SimulateOptions, simulate_many, yield_summary
from tests.helpers import mlp_model, run_killing_one_worker

DATA = Path(__file__).resolve().parents[1] / "lea_compiler" / "data"
MODEL = DATA / "yinyang_mlp.onnx"
TEST_SETS = [DATA / "yinyang_task1_test.npz", DATA / "yinyang_task2_test.npz"]
BATCH_KEYS = ("status", "exit_status", "error", "meets_min_accuracy")
"""The keys a batch row adds to the `leac simulate --json` report."""
TIMING = ("seconds", "wall_seconds", "software_seconds", "jobs")
"""What may differ between two runs of the same batch."""


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three Yin-Yang Programs, one per synthetic chip, as `leac compile --chip-dir` writes them."""
    root = tmp_path_factory.mktemp("simulate_batch")
    chips = root / "chips"
    chips.mkdir()
    for seed in range(3):
        save_chip(synth_chip(arrays=8, rows=16, cols=16, seed=seed, stuck_high=0.05), chips / f"chip{seed}.json")
    result = compile_many(MODEL, sorted(chips.glob("*.json")), root / "programs", CompileOptions(k=2, placer="greedy"),
                          jobs=1)
    assert result.exit_status == 0
    for report in (root / "programs").glob("*.json"):
        report.unlink()  # only the Programs
    return root / "programs"


def _data_args() -> list[str]:
    return [a for path in TEST_SETS for a in ("--data", str(path))]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _without(report: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in report.items() if k not in keys}


def _untimed(envelope: dict) -> dict:
    return {**_without(envelope, TIMING), "programs": [_without(p, TIMING) for p in envelope["programs"]]}


def test_each_row_is_the_single_simulate_report(programs, capsys) -> None:
    status, out, _ = _run(["simulate", "--program-dir", str(programs), *_data_args(), "--seed", "3", "--jobs", "2",
                           "--json"], capsys)
    assert status == 0
    batch = json.loads(out)
    assert [Path(p["program"]).name for p in batch["programs"]] == ["chip0.leac", "chip1.leac", "chip2.leac"]
    for row in batch["programs"]:
        assert (row["status"], row["exit_status"], row["error"], row["meets_min_accuracy"]) == ("ok", 0, None, None)
        status, out, _ = _run(["simulate", row["program"], *_data_args(), "--seed", "3", "--json"], capsys)
        assert status == 0
        single = json.loads(out)
        assert _without(row, (*BATCH_KEYS, "seconds")) == _without(single, ("seconds",))
    assert len({row["accuracy"] for row in batch["programs"]}) > 1  # the chips differ


def test_reports_do_not_depend_on_jobs(programs) -> None:
    files = sorted(programs.glob("*.leac"))
    one = simulate_many(files, TEST_SETS, SimulateOptions(seed=1), min_accuracy=0.5, jobs=1)
    two = simulate_many(files, TEST_SETS, SimulateOptions(seed=1), min_accuracy=0.5, jobs=2)
    assert (one.jobs, two.jobs) == (1, 2) and one.exit_status == two.exit_status == 0
    assert json.dumps(_untimed(one.to_json())) == json.dumps(_untimed(two.to_json()))


def test_yield_summary_and_table(programs, capsys) -> None:
    files = sorted(programs.glob("*.leac"))
    result = simulate_many(files, TEST_SETS, jobs=1)
    accuracy = np.array([p.accuracy for p in result.programs])
    middle = float(np.sort(accuracy)[1])  # the second worst reaches it exactly: at or above counts it
    status, out, err = _run(["simulate", *map(str, files), *_data_args(), "--jobs", "1",
                             "--min-accuracy", str(100 * middle)], capsys)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["program", "status", "chip", "accuracy"] and f">= {100 * middle:.1f}%" in lines[1]
    worst, best = files[int(np.argmin(accuracy))].name, files[int(np.argmax(accuracy))].name
    assert (f"yield over 3 Programs: accuracy mean {100 * accuracy.mean():.1f}%, std {100 * accuracy.std():.1f}%, "
            f"worst {100 * accuracy.min():.1f}% ({worst}), best {100 * accuracy.max():.1f}% ({best})") in out
    reach = int(np.sum(accuracy >= middle))  # 2, unless the worst ties the middle one on another CPU
    assert f"at or above {100 * middle:.1f}%: {reach} of 3 Programs ({100 * reach / 3:.1f}%)" in out
    assert "3 of 3 Programs simulated, 0 failed; software baseline for 1 model" in out
    status, out, _ = _run(["simulate", *map(str, files), *_data_args(), "--jobs", "1", "--json",
                           "--min-accuracy", str(100 * middle)], capsys)
    summary = json.loads(out)["yield"]
    assert summary == {
        "programs": 3, "accuracy_mean": float(accuracy.mean()), "accuracy_std": float(accuracy.std()),
        "accuracy_worst": float(accuracy.min()), "worst_program": str(programs / worst),
        "accuracy_best": float(accuracy.max()), "best_program": str(programs / best),
        "min_accuracy": middle, "at_or_above": reach, "fraction_at_or_above": reach / 3,
    }
    meets = [row["meets_min_accuracy"] for row in json.loads(out)["programs"]]
    assert meets == [bool(a >= middle) for a in accuracy] and sum(meets) == reach
    # no chip reaches 100%: still exit 0, the yield is a report
    assert main(["simulate", *map(str, files), *_data_args(), "--jobs", "1", "--min-accuracy", "100"]) == 0
    assert "at or above 100.0%: 0 of 3 Programs (0.0%)" in capsys.readouterr().out


def _result(name: str, accuracy: float | None) -> ProgramResult:
    status = "ok" if accuracy is not None else "invalid_input"
    return ProgramResult(name, {"accuracy": accuracy, "status": status, "exit_status": 0 if accuracy else 3,
                                "error": None})


def test_yield_definition() -> None:
    results = [_result("a", 0.5), _result("b", 0.9), _result("broken", None), _result("c", (0.85 + 0.95) / 2),
               _result("d", 0.5)]
    y = yield_summary(results, 0.9)
    assert (0.85 + 0.95) / 2 < 0.9  # a rounding error below the threshold still counts as reaching it
    assert (y.programs, y.at_or_above, y.fraction_at_or_above) == (4, 2, 0.5)
    assert (y.worst, y.worst_program, y.best_program) == (0.5, "a", "b")  # the first of equal values
    assert y.mean == pytest.approx(0.7) and y.std == pytest.approx(0.2)
    assert yield_summary(results).at_or_above is None and yield_summary(results).fraction_at_or_above is None
    empty = yield_summary([_result("broken", None)], 0.5)
    assert (empty.programs, empty.mean, empty.worst_program, empty.at_or_above, empty.fraction_at_or_above) == \
        (0, None, None, 0, None)


def test_failing_programs_are_reported_and_do_not_stop_the_others(programs, tmp_path, capsys, monkeypatch) -> None:
    folder = tmp_path / "programs"
    shutil.copytree(programs, folder)
    (folder / "junk.leac").write_text("not a Program")
    model = tmp_path / "wide.onnx"
    onnx.save(mlp_model((5, 6, 3)), model)  # takes 5 features; the Yin-Yang data has 4
    save_chip(synth_chip(arrays=8, rows=16, cols=16, seed=9), tmp_path / "chip.json")
    assert main(["compile", str(model), "--chip", str(tmp_path / "chip.json"), "-k", "2", "--placer", "greedy",
                 "-o", str(folder / "wide.leac")]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    status, out, err = _run(["simulate", "--program-dir", str(folder), *_data_args(), "--jobs", "2", "--json"],
                            capsys)
    assert status == 3
    rows = {Path(r["program"]).stem: r for r in json.loads(out)["programs"]}
    assert [rows[n]["status"] for n in ("chip0", "chip1", "chip2", "junk", "wide")] == ["ok"] * 3 + \
        ["invalid_input"] * 2
    assert "not a leac Program file" in rows["junk"]["error"] and "dimension 1 is 4" in rows["wide"]["error"]
    assert set(rows["junk"]) == set(rows["chip0"]) == set(rows["wide"])  # failures have the same keys
    assert rows["junk"]["accuracy"] is None and rows["junk"]["seed"] == 0
    assert json.loads(out)["yield"]["programs"] == 3
    assert "junk.leac: not a leac Program file" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # a simulate batch writes nothing

    # a bug in one Program is status 1 (more serious than 3), with its traceback
    import lea_compiler.simulate_batch as batch

    real = batch.simulate
    calls: list[int] = []

    def bug_for_chip1(program, datasets, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # in order, with --jobs 1: chip0, chip1 (junk and wide fail before simulating)
            raise RuntimeError("kaboom")
        return real(program, datasets, **kwargs)

    monkeypatch.setattr(batch, "simulate", bug_for_chip1)
    status, out, err = _run(["simulate", "--program-dir", str(folder), *_data_args(), "--jobs", "1"], capsys)
    assert status == 1
    assert "RuntimeError: kaboom" in err and "Traceback" in err
    assert any(line.startswith("chip1") and "internal error" in line for line in out.splitlines())
    assert "2 of 5 Programs simulated, 3 failed" in out


def test_software_baseline_once_per_model(programs, tmp_path, monkeypatch) -> None:
    import lea_compiler.reference as reference  # the baseline takes checked_session from there when it runs

    other = tmp_path / "other.onnx"
    onnx.save(mlp_model(), other)  # another 4-input model: its own baseline
    save_chip(synth_chip(arrays=8, rows=16, cols=16, seed=7), tmp_path / "chip.json")
    assert main(["compile", str(other), "--chip", str(tmp_path / "chip.json"), "-k", "2", "--placer", "greedy",
                 "-o", str(tmp_path / "other.leac")]) == 0
    runs: list[int] = []
    real = reference.checked_session

    def counting(model, source):
        runs.append(len(model))
        return real(model, source)

    monkeypatch.setattr(reference, "checked_session", counting)
    files = [*sorted(programs.glob("*.leac")), tmp_path / "other.leac"]
    result = simulate_many(files, TEST_SETS, jobs=1)
    assert result.exit_status == 0 and result.software_models == 2
    assert len(runs) == 2  # one checked onnxruntime session per model for all the data files, not per Program
    for program in result.programs:  # and the same numbers as computing it per Program
        single = leac.simulate(program.program_file, TEST_SETS)
        assert program.report["software_accuracy"] == single.software_accuracy
        assert program.report["agreement"] == single.agreement


@pytest.mark.parametrize("argv, message", [
    (["--program-dir", "PROGRAMS", "--chip", "CHIP"], "--chip works with one Program"),
    (["--program-dir", "PROGRAMS", "--min-accuracy", "120"], "--min-accuracy takes a percentage from 0 to 100"),
    (["--program-dir", "PROGRAMS", "--min-accuracy", "-1"], "--min-accuracy takes a percentage from 0 to 100"),
    (["--program-dir", "PROGRAMS", "--jobs", "0"], "--jobs must be at least 1"),
    (["--program-dir", "PROGRAMS", "--threads", "0"], "--threads must be at least 1"),
    (["--program-dir", "PROGRAMS", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "--jobs sets local"),
    (["--program-dir", "NOWHERE"], "--program-dir NOWHERE: no such folder"),
    (["--program-dir", "EMPTY"], "no Programs to simulate"),
    ([], "give the Program"),
])
def test_usage_errors_exit_2_and_print_only_the_error_object(programs, tmp_path, capsys, argv, message) -> None:
    (tmp_path / "empty").mkdir()
    names = {"PROGRAMS": str(programs), "NOWHERE": str(tmp_path / "nowhere"), "EMPTY": str(tmp_path / "empty"),
             "CHIP": str(tmp_path / "chip.json")}
    argv = [names.get(a, a) for a in argv]
    message = message.replace("NOWHERE", names["NOWHERE"])
    status, out, err = _run(["simulate", *argv, *_data_args(), "--json"], capsys)
    assert status == 2 and message in err
    error = json.loads(out)  # with --json, a failure prints one leac-error object and nothing else
    assert error["report"] == "leac-error" and error["exit_status"] == 2 and message in error["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("name, message", [("bad.npz", "bad.npz: not a readable .npz data file"),
                                           ("missing.npz", "missing.npz: no such data file")])
def test_unreadable_data_stops_the_batch_before_any_program(programs, tmp_path, capsys, name, message) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    before = sorted(p.name for p in [*tmp_path.iterdir(), *programs.iterdir()])
    status, out, err = _run(["simulate", "--program-dir", str(programs), "--data", str(tmp_path / name),
                             "--jobs", "2"], capsys)
    assert status == 3 and out == ""
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in [*tmp_path.iterdir(), *programs.iterdir()]) == before


def test_progress_lines_with_verbose_and_never_with_json(programs, capsys) -> None:
    status, out, err = _run(["-v", "simulate", "--program-dir", str(programs), *_data_args(), "--jobs", "1"], capsys)
    assert status == 0 and "[1/3] chip0: ok" in err and "[3/3] chip2: ok" in err
    status, out, err = _run(["-v", "simulate", "--program-dir", str(programs), *_data_args(), "--jobs", "1",
                             "--json"], capsys)
    assert status == 0 and "[1/3]" not in err and json.loads(out)["programs_ok"] == 3


def test_api_takes_a_folder_and_gives_the_single_reports(programs) -> None:
    result = leac.simulate_many(programs, TEST_SETS[0], seed=2, jobs=1, min_accuracy=0.0)
    assert result.to_json()["report"] == "leac-simulate-batch" and result.exit_status == 0
    assert result.yield_summary.at_or_above == 3
    single = leac.simulate(programs / "chip0.leac", TEST_SETS[0], seed=2).to_json()
    assert _without(result.programs[0].report, (*BATCH_KEYS, "seconds", "program")) == \
        _without(single, ("seconds",))


def test_scheduler_runs_the_same_jobs_on_a_dask_cluster(programs, capsys) -> None:
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    status, out, _ = _run(["simulate", "--program-dir", str(programs), *_data_args(), "--jobs", "1", "--json"],
                          capsys)
    local = json.loads(out)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        status, out, _ = _run(["simulate", "--program-dir", str(programs), *_data_args(), "--json",
                               "--scheduler", cluster.scheduler_address], capsys)
    assert status == 0
    remote = json.loads(out)
    assert remote["scheduler"] and remote["jobs"] is None
    assert _without(_untimed(remote), ("scheduler",)) == _without(_untimed(local), ("scheduler",))


def test_scheduler_without_distributed_is_a_usage_error(programs, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    status, out, err = _run(["simulate", "--program-dir", str(programs), *_data_args(),
                             "--scheduler", "tcp://127.0.0.1:8786"], capsys)
    assert status == 2 and out == "" and "pip install 'lea-compiler[distributed]'" in err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the test hook reaches the workers by fork")
@pytest.mark.parametrize("once", [False, True], ids=["killed-every-time", "killed-once"])
def test_a_killed_worker_costs_only_its_program(programs, tmp_path, once) -> None:
    """A worker SIGKILLed (as by the OOM killer) fails only its own Program, once run again; the others' rows and
    the retried Program's are those of a batch without the kill."""
    folder = tmp_path / "programs"
    shutil.copytree(programs, folder)
    shutil.copy(folder / "chip1.leac", folder / "boom.leac")
    reference = simulate_many(sorted(folder.glob("*.leac")), TEST_SETS, SimulateOptions(seed=4), jobs=1).to_json()
    marker = tmp_path / "killed" if once else "always"
    done = run_killing_one_worker("lea_compiler.simulate_batch", "_simulate_program", marker,
                                  ["simulate", "--program-dir", folder, *_data_args(), "--seed", "4", "--jobs", "2",
                                   "--json"])
    batch = json.loads(done.stdout)
    rows = {Path(r["program"]).stem: _without(r, TIMING) for r in batch["programs"]}
    expected = {Path(r["program"]).stem: _without(r, TIMING) for r in reference["programs"]}
    boom, expected_boom = rows.pop("boom"), expected.pop("boom")
    assert rows == expected
    if once:
        assert done.returncode == 0 and marker.exists(), done.stderr
        assert boom == expected_boom
        assert _without(_untimed(batch), ("jobs",)) == _without(_untimed(reference), ("jobs",))
    else:
        assert done.returncode == 1 and batch["exit_status"] == 1, done.stderr
        assert (boom["status"], boom["exit_status"], boom["accuracy"]) == ("internal_error", 1, None)
        assert boom["error"].startswith("the worker process died (killed by signal 9, SIGKILL: e.g. out of memory)")
        assert set(boom) == set(expected_boom)  # a dead worker's row has every key too
        assert f"leac: error: {folder / 'boom.leac'}: the worker process died" in done.stderr
        assert "Traceback" not in done.stderr
        assert (batch["programs_ok"], batch["yield"]["programs"]) == (3, 3)
