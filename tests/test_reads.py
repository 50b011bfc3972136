"""Reads per inference (`leac compile --reads N`): each copy half's region is read N times, each read with its
own read noise and digitised on its own, and the N digitised currents averaged (lea_compiler/schedule/execute.py);
the option, the executor, the cost model and the board file's version 2."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import lea_compiler as leac
from lea_compiler.backends.board import (
    Read,
    board_schedule,
    board_stream,
    emit_board,
    read_board,
    record_line,
    validate_board,
)
from lea_compiler.backends.sim import (
    CrossbarLayer,
    Dataset,
    EventCounts,
    NoiseSpan,
    estimate_cost,
    load_data,
    simulate,
)
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery, save_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import CompileError, InvalidInputError, UsageError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.schedule import execute
from lea_compiler.schedule.plan import schedule_of
from tests.helpers import make_model

F = np.float32
W = np.array([[1, -1], [0, 1]], F)
STEP_UA = 12.5
"""The ADC step of `tiny`: the worst-case range 0.25 V x 350 uS = 87.5 uA over the 4-bit ADC's 7 steps."""
R_UNIT = float(np.sqrt(3750.0))
"""The read noise (uS) that makes the Gaussian draw's sigma exactly one ADC step for x = [1, -1] in `tiny`:
r^2 / 3 * sum V^2 = 3750 / 3 * (0.25^2 + 0.25^2) = 156.25 uA^2 = 12.5^2."""


def _chip(read_noise_uS: float, *, rows: int = 2, cols: int = 4, adc_bits: int = 4) -> Chip:
    return Chip(arrays=(Array(0, rows, cols),),
                device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=read_noise_uS),
                periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=adc_bits, adcs_per_array=1))


def tiny(tmp_path: Path, reads: int) -> Program:
    """y = x @ [[1, -1], [0, 1]] on one defect-free 2 x 4 array at k = 1: G+ = [[250, 100], [100, 250]] and
    G- = [[100, 250], [100, 100]] uS, 150 uS per weight unit, the ADC range 87.5 uA (worst case)."""
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 2])}, ["y"],
                       {"W": W})
    path = tmp_path / "mm.onnx"
    onnx.save(model, path)
    program = compile_model(path, _chip(0.0), CompileOptions(k=1, reads=reads)).program
    copy = program.layer("mm").blocks[0].copies[0]
    assert copy.pos.levels.tolist() == [[1, 0], [0, 1]] and copy.neg.levels.tolist() == [[0, 1], [0, 0]]
    assert program.layer("mm").scale.tolist() == [150.0, 150.0]
    return program


# ------------------------------------------------------------------ the executor, by hand


def test_three_reads_are_the_mean_of_three_digitised_currents_by_hand(tmp_path, monkeypatch) -> None:
    """Read noise replaced by a known sequence of unit draws (one ADC step each for x = [1, -1]).

    x = [1, -1]: V = [0.25, -0.25] V, so the clean currents are I+ = [37.5, -37.5] uA and I- = [0, 37.5] uA,
    i.e. [3, -3 | 0, 3] ADC steps of 12.5 uA (columns: G+ col 0, col 1, G- col 0, col 1). Each read adds its
    draw, rounds and clips to +-7:
      read 0: [3.4, -3.7 | 1.2, 3.3]   -> [3, -4 | 1, 3]
      read 1: [2.4, -2.8 | -1.4, 7.6]  -> [2, -3 | -1, 7] (7.6 saturates)
      read 2: [4.7, -3.1 | 0.45, 0.8]  -> [5, -3 | 0, 1]
    mean: G+ [10/3, -10/3], G- [0, 11/3]; D = (G+ - G-) x 12.5 uA = [10/3, -7] x 12.5;
    y = D x_fs / (v_read x 150 uS) = D / 37.5 = [10/9, -7/3]. One read: [3 - 1, -4 - 3] x 12.5 / 37.5."""
    draws = [[0.4, -0.7, 1.2, 0.3], [-0.6, 0.2, -1.4, 4.6], [1.7, -0.1, 0.45, -2.2]]
    expected = {3: [10 / 9, -7 / 3], 1: [2 / 3, -7 / 3]}
    for reads in (3, 1):
        program = tiny(tmp_path, reads)
        sequence = iter(draws)
        shapes = []

        def known(rng, shape, sequence=sequence, shapes=shapes):
            shapes.append(shape)
            return np.asarray([next(sequence)], F)

        monkeypatch.setattr(execute, "gaussian", known)
        layer = CrossbarLayer.of(program, "mm", _chip(R_UNIT), np.random.default_rng(0))
        layer.executor.linear = False  # every current through the ADC (tests/test_linear_reads.py: the sum)
        assert layer.executor.full_scale == [87.5, 87.5] and layer.executor.reads == [reads, reads]
        got = layer.forward(np.array([[1, -1]], F), np.random.default_rng(0), EventCounts())
        np.testing.assert_allclose(got[0], expected[reads], rtol=1e-6)
        assert shapes == [(1, 4)] * reads  # one draw per sample and column, per read


def test_regions_read_a_different_number_of_times_average_their_own_reads(tmp_path, monkeypatch) -> None:
    """A board file may give each read its own count: G+ read 3 times and G- once, with the draws of the test
    above. G+ is the mean of its three reads, [10/3, -10/3] steps; G- is read 0's, [1, 3] (the draws of the
    later reads do not reach it); y = [7/3, -19/3] x 12.5 / 37.5 = [7/9, -19/9]."""
    draws = iter([[0.4, -0.7, 1.2, 0.3], [-0.6, 0.2, -1.4, 4.6], [1.7, -0.1, 0.45, -2.2]])
    monkeypatch.setattr(execute, "gaussian", lambda rng, shape: np.asarray([next(draws)], F))
    plan = schedule_of(tiny(tmp_path, 3)).layers["mm"]
    pairs = tuple((dataclasses.replace(read, reads=3 if read.polarity == "pos" else 1), convert)
                  for read, convert in plan.reads)
    plan = dataclasses.replace(plan, reads=pairs)
    g = [np.array([[250.0, 100.0], [100.0, 250.0]]), np.array([[100.0, 250.0], [100.0, 100.0]])]
    executor = execute.CrossbarExecutor(plan, g, dac_bits=16, adc_bits=4, read_noise_uS=R_UNIT, linear=False)
    got = executor.forward(np.array([[1, -1]], F), np.random.default_rng(0))
    np.testing.assert_allclose(got[0], [7 / 9, -19 / 9], rtol=1e-6)
    with pytest.raises(StopIteration):
        next(draws)  # all three reads drew (for every column)


def test_exact_read_noise_of_three_reads_from_a_seeded_generator(tmp_path) -> None:
    """`exact_read_noise`: every device's U(-r, r) per read, drawn in order from the chunk's generator
    (`np.random.default_rng([base, chunk])`, NoiseSpan's base), reproduced here with the currents computed
    device by device in float64."""
    program = tiny(tmp_path, 3)
    r, base = 40.0, 1234
    x = np.array([[1, -1], [0.5, 0.25], [-0.75, 1], [1, 1], [0.2, -1]], F)
    layer = CrossbarLayer.of(program, "mm", _chip(r), np.random.default_rng(0), exact_read_noise=True)
    got = layer.forward(x, np.random.default_rng(9), EventCounts(), noise=NoiseSpan(base, len(x), 0))

    g = np.array([[[250, 100], [100, 250]], [[100, 250], [100, 100]]], np.float64)  # (polarity, row, col)
    g = np.concatenate([g[0], g[1]], axis=1)  # (rows, [G+ cols, G- cols]) as the executor lays them out
    x_fs = np.abs(x).max(axis=1, keepdims=True)
    v = np.round(x / x_fs * 32767) * (0.25 / 32767)
    rng = np.random.default_rng([base, 0])
    digitised = []
    for _ in range(3):
        noise = rng.uniform(-r, r, size=(len(x), 2, 4))
        currents = np.einsum("si,sic->sc", v, g + noise)
        digitised.append(np.clip(np.round(currents / STEP_UA), -7, 7))
    mean = np.mean(digitised, axis=0) * STEP_UA
    want = (mean[:, :2] - mean[:, 2:]) * x_fs / (0.25 * 150)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(digitised[0], digitised[1])  # the reads drew different noise


@pytest.mark.parametrize("exact", [False, True], ids=["gaussian", "exact"])
def test_without_read_noise_n_reads_are_one_read_exactly(tmp_path, exact) -> None:
    x = np.random.default_rng(3).uniform(-1, 1, (50, 2)).astype(F)
    outs = []
    for reads in (1, 3, 64):
        layer = CrossbarLayer.of(tiny(tmp_path, reads), "mm", _chip(0.0), np.random.default_rng(0),
                                 exact_read_noise=exact)
        outs.append(layer.forward(x, np.random.default_rng(1), EventCounts()))
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


# ------------------------------------------------------------------ the effect


def _ternary_program(tmp_path: Path, reads: int) -> tuple[Program, np.ndarray]:
    """A 16 x 8 ternary MatMul (exact on two levels) on a defect-free chip with a fine ADC and no write noise:
    its output error is the read noise's."""
    w = np.random.default_rng(4).integers(-1, 2, (16, 8)).astype(F)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 16])}, ["y"],
                       {"W": w})
    path = tmp_path / "t.onnx"
    onnx.save(model, path)
    chip = _chip(0.0, rows=16, cols=32, adc_bits=14)
    return compile_model(path, chip, CompileOptions(k=1, reads=reads)).program, w


@pytest.mark.parametrize("exact", [False, True], ids=["gaussian", "exact"])
def test_four_reads_halve_the_rms_error_of_read_noise(tmp_path, exact) -> None:
    """Averaging N reads divides the read noise's variance by N: over 20 seeds, the layer's RMS error against
    x @ W with 4 reads is about half that with 1 (measured 0.50 both ways)."""
    x = np.random.default_rng(5).uniform(-1, 1, (400, 16)).astype(F)
    errors = {}
    for reads in (1, 4):
        program, w = _ternary_program(tmp_path, reads)
        noisy = _chip(20.0, rows=16, cols=32, adc_bits=14)
        rms = []
        for seed in range(20):
            layer = CrossbarLayer.of(program, "mm", noisy, np.random.default_rng(seed), exact_read_noise=exact)
            y = layer.forward(x, np.random.default_rng(seed), EventCounts())
            rms.append(np.sqrt(np.mean((y - x @ w) ** 2)))
        errors[reads] = float(np.mean(rms))
    ratio = errors[4] / errors[1]
    assert 0.4 < ratio < 0.7, errors


def test_threads_and_memory_chunks_do_not_change_n_reads(tmp_path) -> None:
    """The N reads' noise comes from each chunk's own generator, in read order: the same seed gives the same
    outputs whatever the threads, and a noise block run in two calls gets the noise it gets in one."""
    program, _ = _ternary_program(tmp_path, 3)
    noisy = _chip(20.0, rows=16, cols=32, adc_bits=14)
    layer = CrossbarLayer.of(program, "mm", noisy, np.random.default_rng(0))
    x = np.random.default_rng(6).uniform(-1, 1, (9000, 16)).astype(F)  # chunks of 4096 rows: 3 chunks
    outs = [layer.forward(x, np.random.default_rng(7), EventCounts(), threads) for threads in (1, 2, 3)]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    span = NoiseSpan(99, len(x), 0)
    whole = layer.forward(x, np.random.default_rng(0), EventCounts(), noise=span)
    parts = [layer.forward(x[a:b], np.random.default_rng(0), EventCounts(), noise=NoiseSpan(99, len(x), a))
             for a, b in ((0, 5000), (5000, 9000))]
    # the same noise; products of other shapes may round differently (BLAS kernels): by a float32 rounding in a
    # linear read, or by an ADC step where a rounding moves a current across one, now and then; another noise
    # block's draw changes 99.96% of them by more than that bound (by 0.14 in the median, outputs up to 7.9)
    differ = np.abs(whole - np.concatenate(parts))
    assert np.mean(differ > 1e-5 * np.abs(whole).max()) < 1e-3 and differ.max() < 1e-3 * np.abs(whole).max()


# ------------------------------------------------------------------ the cost model


def test_hand_worked_cost_of_three_reads_and_counted_events_agree(tmp_path) -> None:
    """tiny with reads = 3: two regions on array 0, each 3 x (t_mvm 100 ns + 2 ADC rounds x 10 ns) = 360 ns of
    analog work: 720 ns. Digital: max |x| 2 + subtract 2 + sum 2 + divide 2 + scale 2, and per copy half
    (3 - 1) x 2 additions + 2 divisions for the mean of the reads: 22 ops x 10 ns at 100 MHz. The timeline:
    max |x| 0-20 ns; read 1 (DAC 85 + 3 x 100 ns) 20-405, its 3 x 2 conversions 405-465; read 2 405-790,
    790-850; the other 20 ops 850-1050.
    Energy: 3 reads of every device at full scale (no data), 0.25^2 V^2 x (700 + 550) uS x 100 ns = 7.8125 pJ
    each, 3 x 2 x 2 ADC conversions x 2 pJ, the DACs once: 2 halves x 2 rows x 0.5 pJ, and 22 digital ops x
    0.9 pJ."""
    program = tiny(tmp_path, 3)
    cost = estimate_cost(program)
    assert cost.analog_ns == 720.0
    assert cost.digital_cycles == 22 and cost.latency_ns == 1050.0 and cost.cycles_per_inference == 105.0
    assert cost.energy_breakdown_pJ == pytest.approx({"device_reads": 23.4375, "adc": 24.0, "dac": 2.0,
                                                      "digital": 19.8, "static": 0.0})
    one = estimate_cost(tiny(tmp_path, 1))
    assert (one.analog_ns, one.digital_cycles) == (240.0, 10)
    assert one.energy_breakdown_pJ == pytest.approx({"device_reads": 7.8125, "adc": 8.0, "dac": 2.0, "digital": 9.0,
                                                     "static": 0.0})
    data = Dataset("d", np.array([[1, -1], [-1, 1]], F), np.array([0, 1]))
    counted = simulate(program, [data]).counted
    assert (counted.reads, counted.adc_conversions, counted.dac_conversions, counted.device_reads) == (6, 12, 4, 24)
    assert counted.analog_ns == cost.analog_ns and counted.digital_ops == cost.digital_cycles


# ------------------------------------------------------------------ the board file


@pytest.fixture()
def bundled(tmp_path) -> tuple[Program, Path, Path]:
    """The bundled Yin-Yang MLP on the bundled chip at k = 3 with reads = 3, saved and emitted."""
    data = Path(leac.__file__).parent / "data"
    program = leac.compile(data / "yinyang_mlp.onnx", data / "paper_chip.json", k=3, reads=3, time_limit_s=5)
    program_path, board_path = tmp_path / "p.leac", tmp_path / "p.board.jsonl"
    program.save(program_path)
    emit_board(program, board_path)
    return program, program_path, board_path


def test_a_board_file_of_three_reads_is_version_2_and_simulates_as_its_program(bundled, tmp_path, capsys) -> None:
    program, program_path, board_path = bundled
    lines = board_path.read_text(encoding="ascii").splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["compile_options"]["reads"] == 3
    reads = [json.loads(line) for line in lines if '"op":"read"' in line]
    assert len(reads) == 18 and all(list(r)[-1] == "reads" and r["reads"] == 3 for r in reads)
    stream = read_board(board_path)
    assert stream == board_stream(program) and stream.to_text() == board_path.read_text(encoding="ascii")
    assert all(r.reads == 3 for r in stream.of(Read))
    data_path = Path(leac.__file__).parent / "data" / "yinyang_task1_test.npz"
    data = [load_data(data_path, program.graph)]
    direct = simulate(program, data, seed=4).to_json()
    from_board = simulate(program, data, seed=4, board=board_schedule(stream)).to_json()
    drop = ("seconds", "board", "program")
    assert {k: v for k, v in from_board.items() if k not in drop} == {k: v for k, v in direct.items() if k not in drop}
    capsys.readouterr()
    assert main(["simulate", str(board_path), "--program", str(program_path), "--data", str(data_path),
                 "--json"]) == 0
    by_cli = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(program_path), "--data", str(data_path), "--json"]) == 0
    of_program = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in by_cli.items() if k not in drop} == {k: v for k, v in of_program.items()
                                                                    if k not in drop}
    assert main(["emit", str(program_path), "-o", str(tmp_path / "again.jsonl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format_version"] == 2


def test_one_read_stays_version_1_without_the_key(tmp_path) -> None:
    program = tiny(tmp_path, 1)
    assert "reads" not in program.options and program.reads == 1
    emit_board(program, tmp_path / "b.jsonl")
    text = (tmp_path / "b.jsonl").read_text(encoding="ascii")
    assert json.loads(text.splitlines()[0])["version"] == 1 and '"reads"' not in text
    assert all(r.reads == 1 for r in read_board(tmp_path / "b.jsonl").of(Read))
    three = board_stream(tiny(tmp_path, 3))
    with pytest.raises(ValueError, match="a read record with reads = 3 needs leac-board version 2, not 1"):
        record_line(three.of(Read)[0], 1)


def _edit_reads(path: Path, value: object, *, version: int | None = None) -> tuple[Path, int]:
    """The board file with the first read's `reads` set to `value` (deleted when `value` is ...), and the header's
    version set to `version`; and that read's line number."""
    lines = path.read_text(encoding="ascii").splitlines()
    if version is not None:
        lines[0] = json.dumps({**json.loads(lines[0]), "version": version})
    index = next(i for i, line in enumerate(lines) if '"op":"read"' in line)
    record = json.loads(lines[index])
    if value is ...:
        del record["reads"]
    else:
        record["reads"] = value
    lines[index] = json.dumps(record)
    out = path.with_name(f"edited-{version}-{value}.jsonl")
    out.write_text("\n".join(lines) + "\n", encoding="ascii")
    return out, index + 1


@pytest.mark.parametrize("value, problem", [
    (0, "0 is not an integer from 1 to 64"),
    (65, "65 is not an integer from 1 to 64"),
    (2.0, "2.0 is not an integer from 1 to 64"),
    (True, "true is not an integer from 1 to 64"),
    ("3", '"3" is not an integer from 1 to 64'),
])
def test_the_validator_refuses_reads_out_of_range(bundled, value, problem) -> None:
    _, _, board_path = bundled
    bad, line = _edit_reads(board_path, value)
    problems = validate_board(bad)
    assert f"line {line}: read.reads: {problem}" in problems, problems
    assert [p for p in problems if "reads" in p] == [f"line {line}: read.reads: {problem}"]  # only that read's
    with pytest.raises(InvalidInputError, match=f"line {line}: read.reads: "):
        read_board(bad)


def test_a_version_1_file_cannot_use_reads_and_a_version_2_read_needs_them(bundled) -> None:
    _, _, board_path = bundled
    old, line = _edit_reads(board_path, 3, version=1)
    problems = validate_board(old)
    too_new = [p for p in problems if "reads" in p]
    assert len(too_new) == 18 and all(p.endswith(": read: key 'reads' needs version 2 of the format (the header "
                                                "says version 1)") for p in too_new), problems
    assert too_new[0].startswith(f"line {line}: ")
    missing, line = _edit_reads(board_path, ...)
    problems = validate_board(missing)
    assert [p for p in problems if "reads" in p] == [f"line {line}: read: missing key 'reads'"], problems


# ------------------------------------------------------------------ the option


@pytest.mark.parametrize("reads", [0, 65])
def test_cli_refuses_reads_out_of_range_and_writes_nothing(tmp_path, capsys, reads) -> None:
    data = Path(leac.__file__).parent / "data"
    out = tmp_path / "p.leac"
    assert main(["compile", str(data / "yinyang_mlp.onnx"), "--chip", str(data / "paper_chip.json"),
                 "--reads", str(reads), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"leac: error: --reads must be an integer from 1 to 64, got {reads}"
    assert list(tmp_path.iterdir()) == []


def test_the_api_and_a_program_file_refuse_reads_out_of_range(tmp_path) -> None:
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 2])}, ["y"],
                       {"W": W})
    save_chip(_chip(0.0), tmp_path / "c.json")
    with pytest.raises(UsageError, match=r"reads \(reads per inference\) must be an integer from 1 to 64, got 0"):
        leac.compile(model_path(tmp_path, model), tmp_path / "c.json", k=1, reads=0)
    program = tiny(tmp_path, 2)
    damaged = dataclasses.replace(program, options={**program.options, "reads": 100})
    with pytest.raises(InvalidInputError, match="options.reads must be an integer from 1 to 64, got 100"):
        Program.from_bytes(damaged.to_bytes())
    with pytest.raises(CompileError, match="options.reads must be"):
        damaged.save(tmp_path / "never.leac")
    assert not (tmp_path / "never.leac").exists()


def model_path(tmp_path: Path, model: onnx.ModelProto) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path
