"""compensate: per-column gain and offset against the known stuck devices, fitted on calibration data."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.backends.board import LayerStart, Scale, read_board
from lea_compiler.backends.board import emit_board as write_board
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.chip import Array, Chip, Defect, DeviceModel, Periphery, save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.passes.compensate import layer_inputs
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from tests.helpers import make_model, mlp_model

F = np.float32
QUIET = DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=0.0)


def one_stuck(tmp_path, defect: Defect, calib: np.ndarray):
    """y = x @ [[1, -1], [0, 1]] on one 2 x 4 array (150 uS per weight unit), with one stuck device."""
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 2])}, ["y"],
                       {"W": np.array([[1, -1], [0, 1]], F)})
    path = tmp_path / "mm.onnx"
    onnx.save(model, path)
    data = tmp_path / "calib.npz"
    np.savez(data, x=calib.astype(F), y=np.zeros(len(calib), np.int64))
    chip = Chip(arrays=(Array(0, 2, 4),), defects=(defect,), device=QUIET,
                periphery=Periphery(v_read_V=0.25, dac_bits=16, adc_bits=16, adcs_per_array=1))
    return path, chip, data


def test_hand_worked_gain_cancels_a_stuck_high_device(tmp_path) -> None:
    # G+ of w00 = 1 (target 250 uS) stuck at 280 uS: the pair reads 280 - 100 = 180 uS = 1.2 units. Over inputs
    # x = (+-1, +-1), column 0 computes 1.2 x0 where 1.0 x0 is meant: gain 1 / 1.2, offset 0; column 1 is clean.
    x = np.array([[1, -1], [-1, 1], [1, 1], [-1, -1]], F)
    path, chip, data = one_stuck(tmp_path, Defect(0, 0, 0, "stuck_high", 280.0), x)
    program = compile_model(path, chip, CompileOptions(k=1, encoding="simple"), calibrate_on=data).program
    layer = program.layer("mm")
    assert layer.blocks[0].copies[0].pos.region.col == 0  # the stuck device does sit under w00's G+
    np.testing.assert_allclose(layer.column_gain, [1 / 1.2, 1.0], rtol=1e-12)
    np.testing.assert_allclose(layer.column_offset, [0.0, 0.0], atol=1e-12)
    assert layer.column_gain[1] == 1.0 and layer.column_offset[1] == 0.0  # untouched column: exact identity
    # noise off, 16-bit converters: the compensated chip computes x @ W again
    report = simulate(program, [Dataset("d", x, np.zeros(4, np.int64))])
    assert report.layer_error["mm"] < 1e-3
    plain = compile_model(path, chip, CompileOptions(k=1, encoding="simple", compensate="none"),
                          calibrate_on=data).program
    assert simulate(plain, [Dataset("d", x, np.zeros(4, np.int64))]).layer_error["mm"] > 0.1
    assert plain.layer("mm").column_gain is None


def test_hand_worked_offset_for_a_stuck_zero_weight_and_a_constant_input(tmp_path) -> None:
    # G+ of w10 = 0 (target 100 uS) stuck at 280 uS: w10 reads 180 / 150 = 1.2. With x1 = 0.5 always, column 0
    # computes x0 + 0.6 where x0 is meant: gain 1, offset -0.6.
    x = np.stack([np.linspace(-1, 1, 9), np.full(9, 0.5)], axis=1)
    path, chip, data = one_stuck(tmp_path, Defect(0, 1, 0, "stuck_high", 280.0), x)
    program = compile_model(path, chip, CompileOptions(k=1, encoding="simple"), calibrate_on=data).program
    layer = program.layer("mm")
    assert layer.blocks[0].copies[0].pos.region.col == 0
    np.testing.assert_allclose(layer.column_gain, [1.0, 1.0], rtol=1e-9)
    np.testing.assert_allclose(layer.column_offset, [-0.6, 0.0], atol=1e-9)


def test_ideal_simulation_ignores_the_compensation_and_the_program_round_trips(tmp_path) -> None:
    x = np.array([[1, -1], [-1, 1], [1, 1], [-1, -1]], F)
    path, chip, data = one_stuck(tmp_path, Defect(0, 0, 0, "stuck_high", 280.0), x)
    program = compile_model(path, chip, CompileOptions(k=1, encoding="simple"), calibrate_on=data).program
    report = simulate(program, [Dataset("d", x, np.zeros(4, np.int64))], ideal=True)
    assert report.layer_error["mm"] < 1e-3  # ideal devices: the plain quantized weights, no gain applied
    program.save(tmp_path / "p.leac")
    loaded = Program.load(tmp_path / "p.leac")
    np.testing.assert_array_equal(loaded.layer("mm").column_gain, program.layer("mm").column_gain)
    np.testing.assert_array_equal(loaded.layer("mm").column_offset, program.layer("mm").column_offset)
    program.save(tmp_path / "q.leac")
    assert (tmp_path / "p.leac").read_bytes() == (tmp_path / "q.leac").read_bytes()


def test_board_folds_gain_into_the_scale_and_offset_into_a_digital_bias(tmp_path) -> None:
    x = np.stack([np.linspace(-1, 1, 9), np.full(9, 0.5)], axis=1)
    path, chip, data = one_stuck(tmp_path, Defect(0, 1, 0, "stuck_high", 280.0), x)
    program = compile_model(path, chip, CompileOptions(k=1, encoding="simple"), calibrate_on=data).program
    board = tmp_path / "b.jsonl"
    write_board(program, board)
    stream = read_board(board)
    start = next(iter(stream.of(LayerStart)))
    scale = next(iter(stream.of(Scale)))
    layer = program.layer("mm")
    np.testing.assert_allclose(scale.scale_uS, layer.scale / layer.column_gain)
    assert start.bias == "digital"  # the MatMul has no bias; the offset needs the digital add
    assert main(["board", "validate", str(board)]) == 0


def test_no_stuck_device_no_calibration_or_none_leave_the_program_unchanged(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(mlp_model(sizes=(8, 12, 4), seed=1), path)
    data = tmp_path / "c.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((50, 8)).astype(F), y=np.zeros(50, np.int64))
    clean = synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.0, stuck_low=0.0, seed=0)
    program = compile_model(path, clean, CompileOptions(k=2), calibrate_on=data).program
    assert all(layer.column_gain is None for layer in program.layers)
    faulty = synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.1, stuck_low=0.05, seed=0)
    assert all(layer.column_gain is None for layer in compile_model(path, faulty, CompileOptions(k=2)).program.layers)
    off = compile_model(path, faulty, CompileOptions(k=2, compensate="none"), calibrate_on=data).program
    assert all(layer.column_gain is None for layer in off.layers)
    on = compile_model(path, faulty, CompileOptions(k=2), calibrate_on=data).program
    assert any(layer.column_gain is not None for layer in on.layers)


def test_compensation_cuts_the_layer_error_on_a_faulty_chip(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    model = mlp_model(sizes=(16, 24, 6), seed=2)
    onnx.save(model, path)
    rng = np.random.default_rng(0)
    calib, test = rng.uniform(0, 1, (300, 16)).astype(F), rng.uniform(0, 1, (300, 16)).astype(F)
    data = tmp_path / "c.npz"
    np.savez(data, x=calib, y=np.zeros(300, np.int64))
    errors: dict[str, list[float]] = {"none": [], "columns": []}
    for seed in range(3):
        chip = synth_chip(arrays=24, rows=16, cols=16, stuck_high=0.1, stuck_low=0.1, seed=seed)
        for mode in errors:
            program = compile_model(path, chip, CompileOptions(k=3, compensate=mode), calibrate_on=data).program
            report = simulate(program, [Dataset("t", test, np.zeros(300, np.int64))], seed=seed)
            errors[mode].append(report.layer_error["fc0"])
    assert np.mean(errors["columns"]) < 0.75 * np.mean(errors["none"])


def test_layer_inputs_are_the_reference_inputs_of_every_layer(tmp_path) -> None:
    from lea_compiler.onnx_frontend import import_model
    from lea_compiler.passes.canonicalize import Canonicalize

    model = mlp_model(sizes=(8, 12, 4), seed=1)
    graph = Canonicalize().run(import_model(model))
    x = np.random.default_rng(0).standard_normal((20, 8)).astype(F)
    inputs = layer_inputs(graph, x)
    out = interpreter.run(graph, {"x": x}, keep=[n.input(0).name for n in graph.nodes_of("MVM")])
    for node in graph.nodes_of("MVM"):
        np.testing.assert_allclose(inputs[node.name], out[node.input(0).name])


def test_cli_option_and_summary(tmp_path, capsys) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(mlp_model(sizes=(8, 12, 4), seed=1), path)
    chip = tmp_path / "chip.json"
    save_chip(synth_chip(arrays=8, rows=16, cols=16, stuck_high=0.1, stuck_low=0.05, seed=0), chip)
    data = tmp_path / "c.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((50, 8)).astype(F), y=np.zeros(50, np.int64))
    out = tmp_path / "p.leac"
    assert main(["compile", str(path), "--chip", str(chip), "-k", "2", "--calibrate", str(data), "-o", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sum(layer["compensated_columns"] for layer in report["layers"]) > 0
    assert main(["compile", str(path), "--chip", str(chip), "--compensate", "sideways",
                 "-o", str(tmp_path / "x.leac")]) == 2
    assert "invalid choice: 'sideways'" in capsys.readouterr().err and not (tmp_path / "x.leac").exists()
