"""One schedule, two backends: a board file, read back and simulated, is the machine its Program simulates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lea_compiler.backends import sim
from lea_compiler.backends.board import board_schedule, emit_board, read_board, validate_board
from lea_compiler.backends.sim import CrossbarLayer, EventCounts, load_data, simulate, simulate_trials
from lea_compiler.chip import load_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidInputError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.schedule.execute import CrossbarExecutor
from lea_compiler.schedule.plan import schedule_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "lea_compiler" / "data"
DIGITS = ROOT / "examples" / "data"
LEVELS = (133.0, 167.0, 200.0, 233.0)  # the levels of the chips of CASES, uS

CASES = {
    # model, chip (None: a crowded synthetic chip, 10% stuck high), test data, calibration data, k
    "yinyang": (DATA / "yinyang_mlp.onnx", DATA / "paper_chip.json", DATA / "yinyang_task1_test.npz",
                DATA / "yinyang_task2_test.npz", 3),
    "digits-cnn": (DIGITS / "digits_cnn.onnx", DATA / "paper_chip.json", DIGITS / "digits_test_images.npz",
                   DIGITS / "digits_calib_images.npz", 1),
    "stuck": (DATA / "yinyang_mlp_float.onnx", None, DATA / "yinyang_task1_test.npz",
              DATA / "yinyang_task2_test.npz", 2),
}


def _compiled(name: str, calibrate: bool, tmp_path: Path) -> tuple[Program, Path, Path]:
    model, chip_path, test, calib, k = CASES[name]
    chip = load_chip(chip_path) if chip_path else synth_chip(arrays=3, rows=25, cols=25, stuck_high=0.1,
                                                             stuck_low=0.02, seed=4)
    options = CompileOptions(k=k, time_limit_s=5)
    program = compile_model(model, chip, options, calibrate_on=calib if calibrate else None).program
    program_path, board_path = tmp_path / "p.leac", tmp_path / "p.board.jsonl"
    program.save(program_path)
    emit_board(program, board_path)
    return program, program_path, board_path


def _without_time(report: dict) -> dict:
    return {key: value for key, value in report.items() if key not in ("seconds", "program", "board")}


@pytest.mark.parametrize("calibrate", [False, True], ids=["uncalibrated", "calibrated"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_board_file_simulates_to_its_programs_report(name: str, calibrate: bool, tmp_path: Path) -> None:
    program, _, board_path = _compiled(name, calibrate, tmp_path)
    if name == "stuck":
        assert sum(1 for a in schedule_of(program).arrays.values() for v in a.level.ravel() if v == -1) > 0
    data = [load_data(CASES[name][2], program.graph)]
    if len(data[0].x) > 400:
        data[0] = type(data[0])(data[0].name, data[0].x[:400], data[0].y[:400])
    board = board_schedule(read_board(board_path))
    for ideal in (False, True):
        from_program = simulate(program, data, seed=3, ideal=ideal).to_json()
        from_board = simulate(program, data, seed=3, ideal=ideal, board=board).to_json()
        assert _without_time(from_board) == _without_time(from_program)
        assert from_program["calibration"].startswith("compile time" if calibrate else "none: each input vector")
    if not calibrate:  # the ranges the board file carries are not fitted on any data
        assert all(value is None for value in from_program["input_full_scale"].values())
        converts = [c for plan in board.layers.values() for _, c in plan.reads]
        assert all(c.full_scale_uA is not None and c.full_scale_uA > 0 for c in converts)


def test_leac_simulate_takes_a_board_file_with_its_program(tmp_path: Path, capsys) -> None:
    _, program_path, board_path = _compiled("yinyang", False, tmp_path)
    data = str(DATA / "yinyang_task1_test.npz")
    assert main(["simulate", str(program_path), "--data", data, "--json", "--seed", "2"]) == 0
    from_program = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(board_path), "--program", str(program_path), "--data", data, "--json",
                 "--seed", "2"]) == 0
    from_board = json.loads(capsys.readouterr().out)
    assert from_board["board"] == str(board_path) and from_board["program"] == str(program_path)
    assert _without_time(from_board) == _without_time(from_program)
    # a board file needs its Program; --program goes with a board file only
    assert main(["simulate", str(board_path), "--data", data]) == 2
    assert "is a board file: give the Program it was emitted from with --program" in capsys.readouterr().err
    assert main(["simulate", str(program_path), "--program", str(program_path), "--data", data]) == 2
    assert "is not a board file" in capsys.readouterr().err
    assert main(["simulate", str(board_path), str(board_path), "--program", str(program_path), "--data", data]) == 2
    assert "--program goes with one board file, not with many Programs" in capsys.readouterr().err


def test_a_board_file_of_another_program_is_refused(tmp_path: Path, capsys) -> None:
    program, program_path, _ = _compiled("yinyang", False, tmp_path)
    other = compile_model(DATA / "yinyang_mlp_float.onnx", program.chip, CompileOptions(k=1)).program
    other_board = tmp_path / "other.board.jsonl"
    emit_board(other, other_board)
    data = [load_data(DATA / "yinyang_task1_test.npz", program.graph)]
    with pytest.raises(InvalidInputError, match="the board file was not emitted from this Program: it is for another "
                                                r"model \(SHA-256\); it was compiled with other options"):
        simulate(program, data, board=board_schedule(read_board(other_board)))
    assert main(["simulate", str(other_board), "--program", str(program_path), "--data",
                 str(DATA / "yinyang_task1_test.npz")]) == 3
    assert "was not emitted from this Program" in capsys.readouterr().err


@pytest.mark.parametrize("calibrate", [False, True], ids=["uncalibrated", "calibrated"])
def test_executing_a_read_back_board_file_matches_the_simulator_without_noise(calibrate: bool,
                                                                              tmp_path: Path) -> None:
    """Emit, read back and execute each layer with the schedule interpreter on the file's conductances: the
    simulator's outputs with noise off (`ideal`, a joint Program: what it represents) to 1e-9."""
    program, _, board_path = _compiled("stuck", calibrate, tmp_path)
    board = board_schedule(read_board(board_path))
    periphery = program.chip.periphery
    rng = np.random.default_rng(0)
    for name, plan in board.layers.items():
        conductances = [board.arrays[read.array].conductance(read, board.levels_uS) for read, _ in plan.reads]
        executor = CrossbarExecutor(plan, conductances, dac_bits=periphery.dac_bits, adc_bits=periphery.adc_bits)
        x = rng.uniform(-2, 2, (64, plan.start.inputs))  # float64: the simulator returns its dtype
        simulated = CrossbarLayer.of(program, name, program.chip, np.random.default_rng(1), ideal=True)
        got = executor.forward(x)
        np.testing.assert_allclose(got, simulated.forward(x, np.random.default_rng(2), EventCounts()),
                                   rtol=0, atol=1e-9 * max(1.0, float(np.max(np.abs(got)))))


@pytest.mark.parametrize("op, change, field, message", [
    ("accumulate", {"terms": [[0, 0, 11]]}, "accumulate.terms",
     "does not drive a contiguous band of the layer's rows onto its columns"),
    ("convert", {"full_scale_uA": 1e-300}, "ADC ranges (convert.full_scale_uA)",
     "an ADC range of 1e-300 uA has steps too small to simulate"),
])
def test_a_board_file_the_validator_passes_but_leac_cannot_execute_exits_3(op: str, change: dict, field: str,
                                                                           message: str, tmp_path: Path,
                                                                           capsys) -> None:
    """A file edited so that the validator passes it but leac cannot execute it: `leac simulate` refuses it as
    not its Program's (its records are not what the Program lowers to), and the executor given its records
    says why it cannot execute them."""
    program, program_path, board_path = _compiled("yinyang", False, tmp_path)
    lines = board_path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if json.loads(line).get("op") == op)
    lines[index] = json.dumps({**json.loads(lines[index]), **change}, separators=(",", ":"))
    board_path.write_text("\n".join(lines) + "\n")
    assert main(["board", "validate", str(board_path)]) == 0
    before = sorted(tmp_path.iterdir())
    assert main(["simulate", str(board_path), "--program", str(program_path), "--data",
                 str(DATA / "yinyang_task1_test.npz")]) == 3
    err = capsys.readouterr().err
    assert f"the board file was not emitted from this Program: its {field} differ" in err
    assert "in layer 'fc1'" in err and "one of the two was edited" in err
    assert sorted(tmp_path.iterdir()) == before
    board = board_schedule(read_board(board_path))
    with pytest.raises(InvalidInputError, match=message):
        layer = CrossbarLayer(board.layers["fc1"], board, program.chip, np.random.default_rng(0), ideal=False,
                              exact_read_noise=False)
        layer.forward(np.ones((2, 4), dtype=np.float32), np.random.default_rng(1), EventCounts())


def _edited(board_path: Path, op: str, change: Callable[[dict], dict], out: Path) -> Path:
    """The board file with its first `op` record changed by `change` (given the record, it gives the keys to
    set), written to `out`."""
    lines = board_path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if json.loads(line).get("op") == op)
    record = json.loads(lines[index])
    lines[index] = json.dumps({**record, **change(record)}, separators=(",", ":"))
    out.write_text("\n".join(lines) + "\n")
    return out


def test_a_board_file_of_the_program_calibrated_otherwise_is_refused(tmp_path: Path, capsys) -> None:
    """A board file and a Program of the same model, chip and compile options, one calibrated at compile time and
    the other not: `leac simulate` ran the file's ranges and reported them as the Program's. Both pairings are
    refused (exit 3), saying which ranges differ and why, and nothing is written; each Program's own file still
    gives the Program's report exactly."""
    (tmp_path / "plain").mkdir()
    (tmp_path / "calibrated").mkdir()
    _, plain, plain_board = _compiled("yinyang", False, tmp_path / "plain")
    _, calibrated, calibrated_board = _compiled("yinyang", True, tmp_path / "calibrated")
    data = str(DATA / "yinyang_task1_test.npz")
    differ = ("the board file was not emitted from this Program: its ADC ranges (convert.full_scale_uA) and input "
              "full scales (scale.x_fs) differ from the Program's (in every crossbar layer): it was emitted from a "
              "Program compiled ")
    for board, program, why in [
        (plain_board, calibrated, "without calibration, and this Program was compiled with it (--calibrate)"),
        (calibrated_board, plain, "with calibration (--calibrate), and this Program was compiled without"),
    ]:
        before = sorted(tmp_path.rglob("*"))
        timeline = tmp_path / "timeline.png"
        assert main(["simulate", str(board), "--program", str(program), "--data", data, "--timeline",
                     str(timeline)]) == 3
        assert capsys.readouterr().err == f"leac: error: {differ}{why}\n"
        assert main(["simulate", str(board), "--program", str(program), "--data", data, "--json"]) == 3
        report = json.loads(capsys.readouterr().out)
        assert (report["report"], report["exit_status"], report["kind"]) == ("leac-error", 3, "InvalidInputError")
        assert report["error"] == differ + why
        assert sorted(tmp_path.rglob("*")) == before
    for board, program in [(plain_board, plain), (calibrated_board, calibrated)]:
        assert main(["simulate", str(program), "--data", data, "--json", "--seed", "2"]) == 0
        from_program = json.loads(capsys.readouterr().out)
        assert main(["simulate", str(board), "--program", str(program), "--data", data, "--json", "--seed", "2"]) == 0
        assert _without_time(json.loads(capsys.readouterr().out)) == _without_time(from_program)


def test_a_board_file_is_refused_before_the_software_baseline_runs(tmp_path: Path, monkeypatch) -> None:
    """`simulate_trials` checks the board file first: a file of another Program costs no onnxruntime run."""
    (tmp_path / "plain").mkdir()
    _, plain, _ = _compiled("yinyang", False, tmp_path / "plain")
    calibrated, _, calibrated_board = _compiled("yinyang", True, tmp_path)
    data = [load_data(DATA / "yinyang_task1_test.npz", calibrated.graph)]

    def baseline(*args: object, **kwargs: object) -> None:
        raise AssertionError("the software baseline ran before the board file was checked")

    monkeypatch.setattr(sim, "software_predictions", baseline)
    with pytest.raises(InvalidInputError, match="its ADC ranges"):
        simulate_trials(Program.load(plain), data, trials=2, board=board_schedule(read_board(calibrated_board)))


def test_a_board_file_of_the_program_compensated_otherwise_is_refused(tmp_path: Path) -> None:
    """On a chip with stuck devices, calibration also fits the stuck-device compensation (the column scales and
    the digital biases): the message names those too. A Program calibrated on other data differs in its ranges."""
    plain, _, plain_board = _compiled("stuck", False, tmp_path)
    calibrated = compile_model(CASES["stuck"][0], plain.chip, CompileOptions(k=2, time_limit_s=5),
                               calibrate_on=CASES["stuck"][3]).program
    other_data = compile_model(CASES["stuck"][0], plain.chip, CompileOptions(k=2, time_limit_s=5),
                               calibrate_on=CASES["stuck"][2]).program
    emit_board(calibrated, tmp_path / "calibrated.jsonl")
    data = [load_data(CASES["stuck"][2], plain.graph)]
    board = board_schedule(read_board(plain_board))
    with pytest.raises(InvalidInputError) as refused:
        simulate(calibrated, data, board=board)
    assert str(refused.value) == (
        "the board file was not emitted from this Program: its column scales (scale_uS), ADC ranges "
        "(convert.full_scale_uA), input full scales (scale.x_fs) and digital biases (bias) differ from the "
        "Program's (in every crossbar layer): it was emitted from a Program compiled without calibration, and "
        "this Program was compiled with it (--calibrate and the stuck-device compensation fitted with it)")
    with pytest.raises(InvalidInputError, match=r"its column scales \(scale_uS\), ADC ranges .* it was emitted "
                                                r"from a Program compiled with other calibration data"):
        simulate(other_data, data, board=board_schedule(read_board(tmp_path / "calibrated.jsonl")))
    assert simulate(plain, data, board=board).to_json()["accuracy"] == simulate(plain, data).to_json()["accuracy"]


@pytest.mark.parametrize("op, change, message", [
    ("write", lambda r: {"level": (r["level"] + 1) % 4, "target_uS": LEVELS[(r["level"] + 1) % 4]},
     r"its devices written and skipped \(write, skip\) differ from the Program's \(in the programming section\): "
     r"it was emitted from another compile of the model"),
    ("skip", lambda r: {"g_uS": r["g_uS"] + 1.0}, r"its stuck conductances \(skip.g_uS\) differ from the Program's "
                                                  r"\(in the programming section\)"),
    ("skip", lambda r: {"target_level": (r["target_level"] + 1) % 4},
     r"its skipped devices' levels \(skip.target_level\) differ"),
    ("layer", lambda r: {"scale_uS": [2 * s for s in r["scale_uS"]]},
     r"its column scales \(scale_uS\) differ from the Program's \(in layer 'fc1'\): it was emitted from a Program "
     r"compiled with other calibration data \(--calibrate\) or stuck-device compensation, or one of the two was "
     "edited"),
    ("read", lambda r: {"row": r["row"] + 1}, r"its read.row differs from the Program's \(in layer 'fc1'\)"),
    ("convert", lambda r: {"full_scale_uA": 2 * r["full_scale_uA"]}, r"its ADC ranges \(convert.full_scale_uA\)"),
    ("scale", lambda r: {"x_fs": 2.0}, r"its input full scales \(scale.x_fs\) differ from the Program's \(in layer "
                                       r"'fc1'\): it was emitted from a Program compiled with other calibration"),
    ("bias", lambda r: {"values": [v + 1 for v in r["values"]]}, r"its digital biases \(bias\) differ"),
])
def test_a_board_file_edited_is_refused(op: str, change: Callable[[dict], dict], message: str,
                                        tmp_path: Path) -> None:
    """Any value of the file's records that is not what the Program lowers to is refused, whatever changed it:
    the check sets the records' values beside the Program's schedule (here a file the validator still passes)."""
    program, _, board_path = _compiled("stuck", False, tmp_path)
    edited = _edited(board_path, op, change, tmp_path / "edited.jsonl")
    assert not validate_board(edited)
    data = [load_data(CASES["stuck"][2], program.graph)]
    with pytest.raises(InvalidInputError, match="the board file was not emitted from this Program: " + message):
        simulate(program, data, board=board_schedule(read_board(edited)))


def test_an_older_board_file_without_adc_ranges_is_its_programs(tmp_path: Path) -> None:
    """A file of an earlier leac, whose conversions have no range (null: the worst case, found from its
    programming section), is the file leac emits now: accepted, with the Program's report."""
    program, _, board_path = _compiled("stuck", False, tmp_path)
    lines = []
    for line in board_path.read_text().splitlines():
        record = json.loads(line)
        if record.get("op") == "convert":
            line = json.dumps({**record, "full_scale_uA": None}, separators=(",", ":"))
        lines.append(line)
    (tmp_path / "old.jsonl").write_text("\n".join(lines) + "\n")
    assert not validate_board(tmp_path / "old.jsonl")
    data = [load_data(CASES["stuck"][2], program.graph)]
    from_board = simulate(program, data, seed=5, board=board_schedule(read_board(tmp_path / "old.jsonl")))
    assert _without_time(from_board.to_json()) == _without_time(simulate(program, data, seed=5).to_json())
