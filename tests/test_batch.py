"""`leac compile` for many chips: one shared front end, per-chip outputs, failures kept apart, any number of jobs."""

from __future__ import annotations

import json
import os
import pickle
import sys

import numpy as np
import onnx
import pytest

import lea_compiler as leac
from lea_compiler.batch import compile_many
from lea_compiler.chip import Array, Chip, DeviceModel, save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model, compile_prepared, prepare
from lea_compiler.pipeline import CompileOptions
from tests.helpers import mlp_model, run_killing_one_worker


def _chip(seed: int, **kwargs) -> Chip:
    return synth_chip(arrays=8, rows=16, cols=16, seed=seed, **kwargs)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), path)
    return path


@pytest.fixture
def chips(tmp_path):
    """Three good chips; the last has other device levels, so it cannot use the shared quantization."""
    folder = tmp_path / "chips"
    folder.mkdir()
    save_chip(_chip(0), folder / "a.json")
    save_chip(_chip(1), folder / "b.json")
    save_chip(_chip(2, device=DeviceModel(levels_uS=(100.0, 150.0, 200.0, 250.0, 300.0))), folder / "c.json")
    return folder


def _programs(folder) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.leac"))}


@pytest.mark.parametrize("extra", [[], ["--ensemble", "network", "--calibrate", "CAL", "--encoding", "rme"]],
                         ids=["default", "network-calibrated-rme"])
def test_each_program_is_byte_identical_to_a_single_chip_compile(model, chips, tmp_path, capsys, extra) -> None:
    if "CAL" in extra:
        data = tmp_path / "cal.npz"
        np.savez(data, x=np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32), y=np.zeros(32, int))
        extra = [str(data) if a == "CAL" else a for a in extra]
    out = tmp_path / "out"
    assert main(["compile", str(model), "--chip-dir", str(chips), "-k", "2", "-o", str(out), "--jobs", "2",
                 *extra]) == 0
    batch = _programs(out)
    assert sorted(batch) == ["a", "b", "c"]
    for stem, data in batch.items():
        single = tmp_path / f"single_{stem}.leac"
        assert main(["compile", str(model), "--chip", str(chips / f"{stem}.json"), "-k", "2", "-o", str(single),
                     *extra]) == 0
        assert single.read_bytes() == data, stem
        report = json.loads((out / f"{stem}.json").read_text())
        assert report["status"] == "ok" and report["error"] is None and report["program"] == str(out / f"{stem}.leac")
    # the first two chips share the model's quantization; the third has other levels and quantizes for itself
    shared = {stem: json.loads((out / f"{stem}.json").read_text())["shared_passes"] for stem in batch}
    assert shared["a"][-1] == "quantize" and "quantize" not in shared["c"]
    capsys.readouterr()


def test_programs_do_not_depend_on_jobs(model, chips, tmp_path) -> None:
    one = compile_many(model, sorted(chips.glob("*.json")), tmp_path / "one", CompileOptions(k=2), jobs=1)
    two = compile_many(model, sorted(chips.glob("*.json")), tmp_path / "two", CompileOptions(k=2), jobs=2)
    assert one.exit_status == two.exit_status == 0 and (one.jobs, two.jobs) == (1, 2)
    assert _programs(tmp_path / "one") == _programs(tmp_path / "two")
    assert [c.chip_file for c in one.chips] == [str(p) for p in sorted(chips.glob("*.json"))]


def test_front_end_survives_pickling(model) -> None:
    """What a spawned worker or a Dask worker receives compiles to the same Program."""
    chip = _chip(0)
    front = prepare(model, CompileOptions(k=2), device=chip.device)
    copy = pickle.loads(pickle.dumps(front))
    expected = compile_model(model, chip, CompileOptions(k=2)).program.to_bytes()
    assert compile_prepared(copy, chip).program.to_bytes() == expected
    assert compile_prepared(front, chip).program.to_bytes() == expected  # the front end was copied, not used up
    assert compile_prepared(front, chip).program.to_bytes() == expected


def test_failing_chips_are_reported_and_do_not_stop_the_others(model, chips, tmp_path, capsys) -> None:
    (chips / "broken.json").write_text('{"format": "leac-chip", "version": 1, "arrays": {"count": 0, "rows": 2, '
                                        '"cols": 2}}')
    save_chip(Chip(arrays=(Array(0, 16, 16),)), chips / "tiny.json")
    out = tmp_path / "out"
    status = main(["compile", str(model), "--chip-dir", str(chips), "-k", "2", "-o", str(out), "--jobs", "2"])
    captured = capsys.readouterr()
    assert status == 3  # invalid input (3) is more serious than does not fit (4)
    assert sorted(_programs(out)) == ["a", "b", "c"]
    assert not (out / "broken.leac").exists() and not (out / "tiny.leac").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    broken = json.loads((out / "broken.json").read_text())
    tiny = json.loads((out / "tiny.json").read_text())
    assert (broken["status"], broken["exit_status"], broken["program"]) == ("invalid_input", 3, None)
    assert "arrays.count" in broken["error"]
    assert (tiny["status"], tiny["exit_status"]) == ("does_not_fit", 4) and "not enough devices" in tiny["error"]
    assert set(tiny) == set(json.loads((out / "a.json").read_text()))  # failures have the same keys
    lines = captured.out.splitlines()
    assert lines[1].split()[:7] == ["chip", "status", "devices", "placement", "cost", "uS", "gap"]
    assert any(line.startswith("broken") and "invalid input" in line for line in lines)
    assert any(line.startswith("tiny") and "does not fit" in line for line in lines)
    assert "3 of 5 chips compiled, 2 failed" in captured.out
    assert "arrays.count" in captured.err and "not enough devices" in captured.err and "Traceback" not in captured.err
    # without the broken file, does-not-fit is the worst: exit 4
    (chips / "broken.json").unlink()
    assert main(["compile", str(model), "--chip-dir", str(chips), "-k", "2", "-o", str(out), "--jobs", "1"]) == 4


def test_a_bug_in_one_chip_is_status_1_with_its_traceback(model, chips, tmp_path, capsys, monkeypatch) -> None:
    import lea_compiler.batch as batch

    real = batch.compile_prepared

    def flaky(front, chip, **kwargs):
        if chip.name == "boom":
            raise RuntimeError("kaboom")
        return real(front, chip, **kwargs)

    monkeypatch.setattr(batch, "compile_prepared", flaky)
    save_chip(_chip(5, name="boom"), chips / "boom.json")
    out = tmp_path / "out"
    assert main(["compile", str(model), "--chip-dir", str(chips), "-k", "2", "-o", str(out), "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: kaboom" in err
    assert json.loads((out / "boom.json").read_text())["status"] == "internal_error"
    assert sorted(_programs(out)) == ["a", "b", "c"]


def test_json_envelope_and_no_progress_in_json_mode(model, chips, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["compile", str(model), "--chip", str(chips / "b.json"), "--chip", str(chips / "a.json"), "-k", "2",
            "-o", str(out), "--jobs", "2", "--json"]
    assert main(["-v", *argv]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert (report["report"], report["version"], report["exit_status"]) == ("leac-compile-batch", 1, 0)
    assert (report["chips_total"], report["chips_ok"], report["chips_failed"]) == (2, 2, 0)
    assert [c["chip_file"] for c in report["chips"]] == [str(chips / "b.json"), str(chips / "a.json")]
    for chip in report["chips"]:
        single = json.loads((out / f"{chip['chip_file'][-6]}.json").read_text())
        assert chip == single
        for key in ("devices_used", "mapping_error_uS", "optimality_gap", "compile_seconds", "status", "error"):
            assert key in chip
    assert report["shared_passes"] == ["canonicalize", "quantize"]
    assert "[1/2]" not in captured.err
    # -v without --json: one progress line per chip on stderr (not a terminal here)
    assert main(["-v", *argv[:-1]]) == 0
    err = capsys.readouterr().err
    assert "[1/2]" in err and "[2/2]" in err


@pytest.mark.parametrize("argv, message", [
    (["--chip-dir", "CHIPS"], "-o OUTDIR names the output folder"),
    (["--chip-dir", "CHIPS", "-o", "CHIPS"], "would overwrite the input"),
    (["--chip-dir", "CHIPS", "-o", "OUT", "--dump-ir", "ir"], "--dump-ir works with one chip"),
    (["--chip-dir", "CHIPS", "-o", "OUT", "--jobs", "0"], "--jobs must be at least 1"),
    (["--chip-dir", "CHIPS", "-o", "OUT", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "--jobs sets local"),
    (["--chip-dir", "NOWHERE", "-o", "OUT"], "no such folder"),
    (["--chip-dir", "EMPTY", "-o", "OUT"], "no chip files"),
    (["--chip", "CHIPS/a.json", "--chip", "OTHER/a.json", "-o", "OUT"], "same name"),
    ([], "give the chip"),
    (["--chip", "CHIPS/a.json", "-o", "EMPTY"], "with one chip, -o names the Program file"),
])
def test_usage_errors_exit_2_and_write_nothing(model, chips, tmp_path, capsys, argv, message) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    save_chip(_chip(3), tmp_path / "other" / "a.json")
    names = {"CHIPS": chips, "OUT": tmp_path / "out", "NOWHERE": tmp_path / "nowhere", "EMPTY": tmp_path / "empty",
             "OTHER": tmp_path / "other"}
    for key, path in names.items():
        argv = [a.replace(key, str(path)) if a.startswith(key) else a for a in argv]
    assert main(["compile", str(model), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(chips.glob("*.leac"))


def test_bad_model_stops_the_batch_before_any_chip(chips, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["compile", str(bad), "--chip-dir", str(chips), "-o", str(tmp_path / "out"), "--jobs", "2"]) == 3
    assert "bad.onnx" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_scheduler_without_distributed_is_a_usage_error(model, chips, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert main(["compile", str(model), "--chip-dir", str(chips), "-o", str(tmp_path / "out"),
                 "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert "pip install 'lea-compiler[distributed]'" in capsys.readouterr().err


def test_api_compile_many_takes_a_folder(model, chips, tmp_path) -> None:
    result = leac.compile_many(model, chips, tmp_path / "out", k=2, jobs=1)
    assert [c.ok for c in result.chips] == [True, True, True] and result.exit_status == 0
    assert result.to_json()["report"] == "leac-compile-batch"
    assert (tmp_path / "out" / "a.leac").read_bytes() == leac.compile(model, chips / "a.json", k=2).to_bytes()


def test_scheduler_runs_the_same_jobs_on_a_dask_cluster(model, chips, tmp_path, capsys) -> None:
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    local = tmp_path / "local"
    assert main(["compile", str(model), "--chip-dir", str(chips), "-k", "2", "-o", str(local), "--jobs", "2"]) == 0
    capsys.readouterr()
    dask_out = tmp_path / "dask"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert main(["compile", str(model), "--chip-dir", str(chips), "-k", "2", "-o", str(dask_out),
                     "--scheduler", cluster.scheduler_address, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scheduler"] and report["jobs"] is None and report["chips_ok"] == 3
    assert _programs(dask_out) == _programs(local) and len(_programs(local)) == 3


def test_an_interrupt_stops_the_batch_and_leaves_only_whole_outputs(model, chips, tmp_path) -> None:
    for seed in range(3, 9):
        save_chip(_chip(seed), chips / f"more{seed}.json")

    def interrupt(result, done, total) -> None:
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        compile_many(model, sorted(chips.glob("*.json")), out, CompileOptions(k=2), jobs=2, on_result=interrupt)
    assert len(list(out.glob("*.leac"))) == 2 and len(list(out.glob("*.json"))) == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_malformed_scheduler_address_fails_fast(model, chips, tmp_path, capsys) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    assert main(["compile", str(model), "--chip-dir", str(chips), "-o", str(out), "--scheduler", "nonsense"]) == 2
    assert "--scheduler nonsense: cannot connect to a Dask scheduler" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the test hook reaches the workers by fork")
@pytest.mark.parametrize("once", [False, True], ids=["killed-every-time", "killed-once"])
def test_a_killed_worker_costs_only_its_chip(model, chips, tmp_path, once) -> None:
    """A worker SIGKILLed (as by the OOM killer) fails only its own chip, once retried; the others are unchanged."""
    for seed in range(3, 6):
        save_chip(_chip(seed), chips / f"more{seed}.json")
    reference = compile_many(model, sorted(chips.glob("*.json")), tmp_path / "reference", CompileOptions(k=2), jobs=1)
    assert reference.exit_status == 0
    save_chip(_chip(9, name="boom"), chips / "boom.json")
    out, marker = tmp_path / "out", tmp_path / "killed" if once else "always"
    done = run_killing_one_worker("lea_compiler.batch", "_compile_chip", marker,
                                  ["compile", model, "--chip-dir", chips, "-k", "2", "-o", out, "--jobs", "2"])
    programs = _programs(out)
    boom = json.loads((out / "boom.json").read_text())
    if once:  # the chip ran again and gave the Program a first run gives
        assert done.returncode == 0, done.stderr
        assert marker.exists()  # its first worker was killed
        assert programs.pop("boom") == leac.compile(model, chips / "boom.json", k=2).to_bytes()
        assert boom["status"] == "ok"
    else:  # killed again when run alone: reported, exit 1
        assert done.returncode == 1, done.stderr
        assert (boom["status"], boom["exit_status"], boom["program"]) == ("internal_error", 1, None)
        assert boom["error"].startswith("the worker process died (killed by signal 9, SIGKILL: e.g. out of memory)")
        assert f"leac: error: {chips / 'boom.json'}: the worker process died" in done.stderr
        assert "Traceback" not in done.stderr and "6 of 7 chips compiled, 1 failed" in done.stdout
        assert "boom" not in programs
    assert programs == _programs(tmp_path / "reference")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_an_output_folder_that_cannot_be_made_is_one_line_exit_2(model, chips, tmp_path, capsys,
                                                                 monkeypatch) -> None:
    """`-o afile/sub` was a traceback from mkdir and 'a bug in leac' (exit 1); it is refused before any work, and
    a folder that stops being makeable during the front end is refused when it is made."""
    from lea_compiler import batch

    afile = tmp_path / "afile"
    afile.write_text("")
    argv = ["compile", str(model), "--chip-dir", str(chips), "--jobs", "1"]
    before = sorted(os.listdir(tmp_path))
    for out in (afile / "sub", afile / "sub" / "deeper"):
        capsys.readouterr()
        assert main([*argv, "-o", str(out)]) == 2
        assert capsys.readouterr().err == f"leac: error: the output {out}: cannot make the folder (Not a directory)\n"
    assert sorted(os.listdir(tmp_path)) == before and afile.read_text() == ""

    later = tmp_path / "later"
    real = batch.prepare

    def then_make_a_file(*args, **kwargs):
        front = real(*args, **kwargs)
        later.write_text("")  # -o later/sub: its parent is now a file
        return front

    monkeypatch.setattr(batch, "prepare", then_make_a_file)
    assert main([*argv, "-o", str(later / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"leac: error: the output {later / 'sub'}: cannot make the folder (Not a " \
                                           "directory)" and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "later"]) and later.read_text() == ""
    assert not list(chips.glob("*.leac"))
