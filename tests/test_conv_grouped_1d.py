"""Grouped and depthwise Conv, and 1-D Conv, MaxPool and AveragePool, from import to the simulated chip.

Numerics are checked against onnxruntime op by op (the interpreter on the imported graph and on the
canonicalized one, whose grouped Conv is the packed MVM of `passes/canonicalize.py`), whole models through
`leac compile` and `leac simulate --ideal` on a fine-level chip, the packed mapping's device and read counts by
hand, and 3-D windows are refused with a message and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.analysis import crossbar_layers
from lea_compiler.backends.board import board_schedule, emit_board, read_board
from lea_compiler.backends.cost import layer_cost
from lea_compiler.backends.sim import Dataset, estimate_cost, simulate
from lea_compiler.calibration import ADC_HEADROOM, calibrate
from lea_compiler.chip import DeviceModel, save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidModelError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.passes.compensate import fit_columns
from lea_compiler.pipeline import CompileOptions
from lea_compiler.reference import run_onnxruntime
from lea_compiler.schedule.plan import schedule_of
from tests.helpers import ATOL, RTOL, make_model, random_feeds

F = np.float32
rng = np.random.default_rng(17)


def w(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(F)


def node(op: str, inputs: list[str], **attrs: object) -> onnx.NodeProto:
    return helper.make_node(op, inputs, ["y"], name=f"{op.lower()}_under_test", **attrs)


X4 = {"x": (F, ["N", 8, 7, 7])}
X3 = {"x": (F, ["N", 6, 13])}

# (id, node, inputs, initializers)
CASES = [
    ("grouped_2d", node("Conv", ["x", "W", "b"], group=2, pads=[1, 1, 1, 1]), X4, {"W": w(6, 4, 3, 3), "b": w(6)}),
    ("grouped_4_groups_strided", node("Conv", ["x", "W"], group=4, strides=[2, 1], pads=[0, 1, 1, 0]), X4,
     {"W": w(8, 2, 2, 3)}),
    ("depthwise", node("Conv", ["x", "W", "b"], group=8, pads=[1, 1, 1, 1]), X4, {"W": w(8, 1, 3, 3), "b": w(8)}),
    ("depthwise_multiplier_2", node("Conv", ["x", "W"], group=8, dilations=[2, 2]), X4, {"W": w(16, 1, 3, 3)}),
    ("depthwise_same_upper_stride", node("Conv", ["x", "W"], group=8, auto_pad="SAME_UPPER", strides=[2, 2]), X4,
     {"W": w(8, 1, 3, 3)}),
    ("conv1d", node("Conv", ["x", "W", "b"]), X3, {"W": w(4, 6, 3), "b": w(4)}),
    ("conv1d_pads_strides_dilations", node("Conv", ["x", "W"], pads=[2, 1], strides=[2], dilations=[2]), X3,
     {"W": w(5, 6, 3)}),
    ("conv1d_same_lower", node("Conv", ["x", "W"], auto_pad="SAME_LOWER", strides=[3]), X3, {"W": w(3, 6, 4)}),
    ("conv1d_grouped", node("Conv", ["x", "W", "b"], group=3, pads=[1, 1]), X3, {"W": w(9, 2, 3), "b": w(9)}),
    ("conv1d_depthwise", node("Conv", ["x", "W"], group=6, kernel_shape=[5], pads=[2, 2]), X3, {"W": w(6, 1, 5)}),
    ("maxpool1d", node("MaxPool", ["x"], kernel_shape=[2], strides=[2]), X3, {}),
    ("maxpool1d_pads_ceil", node("MaxPool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1), X3, {}),
    ("maxpool1d_dilated", node("MaxPool", ["x"], kernel_shape=[3], dilations=[2]), X3, {}),
    ("avgpool1d", node("AveragePool", ["x"], kernel_shape=[3], strides=[2]), X3, {}),
    ("avgpool1d_pads_exclude", node("AveragePool", ["x"], kernel_shape=[3], pads=[1, 2]), X3, {}),
    ("avgpool1d_pads_include", node("AveragePool", ["x"], kernel_shape=[3], pads=[2, 1], count_include_pad=1), X3,
     {}),
    ("avgpool1d_ceil_include", node("AveragePool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 0], ceil_mode=1,
                                    count_include_pad=1), X3, {}),
    ("avgpool1d_ceil_exclude", node("AveragePool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 0], ceil_mode=1),
     X3, {}),
    ("avgpool1d_same_upper", node("AveragePool", ["x"], kernel_shape=[4], strides=[3], auto_pad="SAME_UPPER"), X3,
     {}),
    ("globalavgpool1d", node("GlobalAveragePool", ["x"]), X3, {}),
]


@pytest.mark.parametrize("case_id, op, inputs, inits", CASES, ids=[c[0] for c in CASES])
def test_op_matches_onnxruntime_before_and_after_canonicalize(case_id, op, inputs, inits) -> None:
    model = make_model([op], inputs, ["y"], inits)
    feeds = random_feeds(model, batch=3, seed=len(case_id))
    expected = run_onnxruntime(model, feeds)["y"]
    graph = import_model(model)
    assert graph.outputs[0].shape[1:] == expected.shape[1:]  # the type rule gives onnx's shape
    np.testing.assert_allclose(interpreter.run(graph, feeds)["y"], expected, rtol=RTOL, atol=ATOL)
    Canonicalize().run(graph)
    graph.verify()
    if op.op_type == "Conv":
        assert graph.nodes_of("MVM") and not graph.nodes_of("Conv")
    np.testing.assert_allclose(interpreter.run(graph, feeds)["y"], expected, rtol=RTOL, atol=ATOL)


def test_a_depthwise_conv_is_one_dense_matrix_read_once_per_channel_and_pixel() -> None:
    # 8 channels, 3 x 3 kernels, 5 x 5 output: the crossbar matrix is 9 x 8 (one column per channel's kernel),
    # not the 72 x 8 block-diagonal one, and each output pixel takes 8 reads of 9 inputs
    model = make_model([node("Conv", ["x", "W", "b"], group=8)], X4, ["y"], {"W": w(8, 1, 3, 3), "b": w(8)})
    graph = import_model(model)
    (layer,) = crossbar_layers(graph)
    assert (layer.rows, layer.cols, layer.reads_per_sample) == (9, 8, 5 * 5 * 8)
    assert layer.devices(k=3) == 2 * 3 * 9 * 8  # block-diagonal: 2 * 3 * 72 * 8 = 3456
    canonical = Canonicalize().run(graph)
    assert [n.op_type for n in canonical.nodes] == ["Patches", "MVM", "Transpose"]


def test_compiled_depthwise_layer_uses_the_hand_counted_devices(tmp_path) -> None:
    # Grouped conv with 2 groups of 3 -> 2 channels each, 2 x 2 kernels: K = 3 * 2 * 2 = 12 rows, 4 columns;
    # k = 2 copies of one 12 x 4 block: 2 copies x 2 devices x 48 weights = 192 devices (block-diagonal 24 x 4: 384)
    model = make_model([node("Conv", ["x", "W"], group=2)], {"x": (F, ["N", 6, 4, 4])}, ["y"], {"W": w(4, 3, 2, 2)})
    path = tmp_path / "g.onnx"
    onnx.save(model, path)
    chip = synth_chip(arrays=4, rows=16, cols=16, stuck_high=0.0, stuck_low=0.0, seed=1)
    program = compile_model(path, chip, CompileOptions(k=2)).program
    layer = program.layer("conv_under_test")
    assert (layer.rows, layer.cols) == (12, 4)
    assert program.devices_used == 192


def _fine_chip(tmp_path: Path) -> Path:
    levels = tuple(round(float(v), 6) for v in np.linspace(133.0, 233.0, 256))
    device = DeviceModel(levels_uS=levels, stuck_high_uS=233.0, stuck_low_uS=133.0)
    path = tmp_path / "chip.json"
    save_chip(synth_chip(arrays=24, rows=32, cols=32, stuck_high=0.02, stuck_low=0.01, seed=4, device=device), path)
    return path


def depthwise_separable_model(seed: int = 0) -> onnx.ModelProto:
    """Conv 3->8, depthwise 3 x 3 (stride 2) + BatchNorm, pointwise 8->12, global pool, Gemm head: 5 classes."""
    r = np.random.default_rng(seed)
    inits = {
        "w1": r.standard_normal((8, 3, 3, 3)).astype(F) * 0.4, "b1": r.standard_normal(8).astype(F) * 0.1,
        "wd": r.standard_normal((8, 1, 3, 3)).astype(F) * 0.5,
        "s": r.uniform(0.5, 1.5, 8).astype(F), "o": r.standard_normal(8).astype(F) * 0.1,
        "m": r.standard_normal(8).astype(F) * 0.1, "v": r.uniform(0.5, 2.0, 8).astype(F),
        "wp": r.standard_normal((12, 8, 1, 1)).astype(F) * 0.5, "bp": r.standard_normal(12).astype(F) * 0.1,
        "wf": r.standard_normal((5, 12)).astype(F), "bf": r.standard_normal(5).astype(F) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd"], ["cd"], name="depthwise", group=8, strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["cd", "s", "o", "m", "v"], ["nd"], name="bn"),
        helper.make_node("Relu", ["nd"], ["rd"], name="relu2"),
        helper.make_node("Conv", ["rd", "wp", "bp"], ["cp"], name="pointwise"),
        helper.make_node("Relu", ["cp"], ["rp"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["rp"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    return make_model(nodes, {"x": (F, ["N", 3, 8, 8])}, ["y"], inits, name="dwsep")


def cnn1d_model(seed: int = 0) -> onnx.ModelProto:
    """A 1-D CNN: Conv1d 2->6 (k 5), MaxPool1d, grouped dilated Conv1d 6->8, AvgPool1d with pads, Gemm: 4 classes."""
    r = np.random.default_rng(seed)
    inits = {
        "w1": r.standard_normal((6, 2, 5)).astype(F) * 0.4, "b1": r.standard_normal(6).astype(F) * 0.1,
        "w2": r.standard_normal((8, 3, 3)).astype(F) * 0.4, "b2": r.standard_normal(8).astype(F) * 0.1,
        "wf": r.standard_normal((4, 64)).astype(F) * 0.3, "bf": r.standard_normal(4).astype(F) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2], strides=[2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", group=2, dilations=[2], pads=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("AveragePool", ["r2"], ["p2"], name="pool2", kernel_shape=[3], strides=[2], pads=[1, 1],
                         count_include_pad=1),
        helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    return make_model(nodes, {"x": (F, ["N", 2, 32])}, ["y"], inits, name="cnn1d")


@pytest.mark.parametrize("make", [depthwise_separable_model, cnn1d_model], ids=["depthwise_separable", "cnn1d"])
def test_compile_and_ideal_simulation_agree_with_onnxruntime(tmp_path, capsys, make) -> None:
    model = make()
    path, program, data = tmp_path / "m.onnx", tmp_path / "m.leac", tmp_path / "d.npz"
    onnx.save(model, path)
    x = random_feeds(model, batch=200, seed=3)["x"]
    labels = np.argmax(run_onnxruntime(model, {"x": x})["y"], axis=1)
    np.savez(data, x=x, y=labels)
    # k = 4: the random weights leave a few of the 200 samples within 0.5% of a tie (the 1-D CNN's smallest
    # relative top-2 margins are 1e-5, 7e-4 and 3e-3), where the 12-bit ADC's rounding at k = 2 (layer errors
    # 0.3 to 0.8%) flips 3 of them; four copies average it down
    assert main(["compile", str(path), "--chip", str(_fine_chip(tmp_path)), "-k", "4", "--placer", "greedy",
                 "--calibrate", str(data), "-o", str(program)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(program), "--ideal", "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["data"][0]
    assert report["software_accuracy"] == 1.0  # the labels are onnxruntime's
    assert report["agreement"] >= 0.99


@pytest.mark.parametrize(
    "op, inputs, inits, message",
    [
        (node("Conv", ["x", "W"]), {"x": (F, ["N", 2, 4, 4, 4])}, {"W": w(3, 2, 2, 2, 2)},
         "3-D Conv is not supported"),
        (node("MaxPool", ["x"], kernel_shape=[2, 2, 2]), {"x": (F, ["N", 2, 4, 4, 4])}, {},
         "3-D MaxPool is not supported"),
        (node("AveragePool", ["x"], kernel_shape=[2, 2, 2]), {"x": (F, ["N", 2, 4, 4, 4])}, {},
         "3-D AveragePool is not supported"),
    ],
    ids=["conv3d", "maxpool3d", "avgpool3d"],
)
def test_3d_windows_are_refused_and_nothing_is_written(tmp_path, capsys, op, inputs, inits, message) -> None:
    model = make_model([op], inputs, ["y"], inits)
    with pytest.raises(InvalidModelError, match=message) as caught:
        import_model(model)
    assert "leac maps 1-D and 2-D" in str(caught.value) and op.name in str(caught.value)
    path, chip, out = tmp_path / "m.onnx", tmp_path / "chip.json", tmp_path / "m.leac"
    onnx.save(model, path)
    save_chip(synth_chip(arrays=2, rows=8, cols=8, seed=1), chip)
    assert main(["compile", str(path), "--chip", str(chip), "-o", str(out)]) == 3
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.json", "m.onnx"]


@pytest.mark.parametrize(
    "channels, weight, message",
    [(6, (4, 2, 3, 3), "the input's 6 channels are not group=4 x the weight's 2 channels per group"),
     (8, (6, 2, 3, 3), "the weight's 6 output channels do not divide into group=4 groups")],
)
def test_a_group_that_does_not_divide_the_channels_is_refused(channels, weight, message) -> None:
    # onnx's checker and shape inference let both through; leac's type rule names the mismatch
    conv = node("Conv", ["x", "W"], group=4)
    graph = helper.make_graph(
        [conv], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", channels, 5, 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", weight[0], 3, 3])],
        [onnx.numpy_helper.from_array(w(*weight), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InvalidModelError, match=f"node 'conv_under_test' \\(Conv\\): {message}"):
        import_model(model)


def _depthwise_program(tmp_path: Path):
    """A depthwise 3 x 3 Conv over 4 channels of 5 x 5 (3 x 3 output pixels): a 9 x 4 matrix, tiled (--block 9x2)
    into two blocks of 2 columns (2 groups each), one copy."""
    model = make_model([node("Conv", ["x", "W", "b"], group=4)], {"x": (F, ["N", 4, 5, 5])}, ["y"],
                       {"W": w(4, 1, 3, 3), "b": w(4)})
    path = tmp_path / "dw.onnx"
    onnx.save(model, path)
    chip = synth_chip(arrays=4, rows=16, cols=16, stuck_high=0.0, stuck_low=0.0, seed=1)
    result = compile_model(path, chip, CompileOptions(k=1, block_rows=9, block_cols=2))
    return model, result.program


def test_a_grouped_layer_reads_only_its_groups_blocks_and_converts_only_its_columns(tmp_path) -> None:
    model, program = _depthwise_program(tmp_path)
    layer = program.layer("conv_under_test")
    assert (layer.rows, layer.cols, len(layer.blocks)) == (9, 4, 2)
    cost = estimate_cost(program)
    assert cost.applications == {"conv_under_test": 9}  # one run of 4 vectors per output pixel
    # per pixel: each channel's vector reads its one block's G+ and G- regions (2 reads of 9 rows), converting its
    # one column on each: 4 x 2 = 8 reads, 8 ADC and 4 x 2 x 9 = 72 DAC conversions. Each region is 9 rows x 2
    # columns (2 groups' channels), and every device on the driven rows conducts, converted or not: 8 x 9 x 2 =
    # 144 device reads. Reading every block with every vector would take 16 reads and 32 conversions.
    plan = schedule_of(program).layers["conv_under_test"]
    one = layer_cost(plan, program.chip.periphery)
    assert (one.reads, one.adc_conversions, one.dac_conversions, one.device_reads) == (8, 8, 72, 144)
    x = random_feeds(model, batch=7, seed=2)["x"]
    labels = np.argmax(run_onnxruntime(model, {"x": x})["y"].reshape(7, -1), axis=1)
    report = simulate(program, [Dataset("d", x, labels)], ideal=True)
    assert report.counted.reads == 9 * 8 and report.counted.adc_conversions == 9 * 8
    assert report.counted.dac_conversions == 9 * 72 and report.counted.analog_ns == cost.analog_ns
    assert report.counted.digital_ops == cost.digital_cycles


def test_a_grouped_layer_is_a_version_3_board_file_that_simulates_to_its_programs_report(tmp_path, capsys) -> None:
    model, program = _depthwise_program(tmp_path)
    board_path = tmp_path / "dw.jsonl"
    emit_board(program, board_path)
    lines = [json.loads(line) for line in board_path.read_text().splitlines()]
    assert lines[0]["version"] == 3
    (start,) = [r for r in lines[1:] if r["op"] == "layer"]
    assert start["groups"] == 4 and start["vectors_per_sample"] == 36
    assert main(["board", "validate", str(board_path)]) == 0
    x = random_feeds(model, batch=9, seed=4)["x"]
    data = [Dataset("d", x, np.zeros(9, dtype=np.int64))]
    board = board_schedule(read_board(board_path))
    for ideal in (False, True):
        from_program = simulate(program, data, seed=3, ideal=ideal).to_json()
        from_board = simulate(program, data, seed=3, ideal=ideal, board=board).to_json()
        assert {k: v for k, v in from_board.items() if k not in ("seconds", "program", "board")} == \
            {k: v for k, v in from_program.items() if k not in ("seconds", "program", "board")}
    # a file whose groups do not divide the columns is refused by the validator
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r | {"groups": 3} if r.get("op") == "layer" else r) for r in lines) + "\n")
    capsys.readouterr()
    assert main(["board", "validate", str(bad)]) != 0
    printed = capsys.readouterr()
    assert "layer.groups: 3 groups do not divide the 4 columns" in printed.out + printed.err, printed


def test_a_plain_program_still_writes_a_version_1_board_file(tmp_path) -> None:
    model = make_model([node("Conv", ["x", "W"])], X3, ["y"], {"W": w(4, 6, 3)})
    path = tmp_path / "c.onnx"
    onnx.save(model, path)
    chip = synth_chip(arrays=4, rows=32, cols=16, stuck_high=0.0, stuck_low=0.0, seed=1)
    program = compile_model(path, chip, CompileOptions(k=1)).program
    emit_board(program, tmp_path / "c.jsonl")
    header = json.loads((tmp_path / "c.jsonl").read_text().splitlines()[0])
    assert header["version"] == 1


@pytest.mark.parametrize("bias_row", [False, True])
def test_a_grouped_columns_compensation_is_fitted_on_its_own_groups_vectors(bias_row) -> None:
    r = np.random.default_rng(5)
    groups, rows, cols = 3, 4, 6  # 2 columns per group
    x = r.standard_normal((groups * 40, rows))
    effective = r.standard_normal((rows + bias_row, cols))
    target = effective + 0.1 * r.standard_normal(effective.shape)
    gain, offset = fit_columns(x, effective, target, bias_row, groups)
    for j in range(cols):
        own = x[(np.arange(len(x)) % groups) == j // (cols // groups)]
        a, b = fit_columns(own, effective[:, j:j + 1], target[:, j:j + 1], bias_row)
        np.testing.assert_allclose([gain[j], offset[j]], [a[0], b[0]], rtol=1e-10, atol=1e-12)


def test_a_grouped_layers_adc_ranges_are_calibrated_on_its_own_groups_currents(tmp_path) -> None:
    model, program = _depthwise_program(tmp_path)
    x = random_feeds(model, batch=6, seed=8)["x"]
    chip = program.chip
    calibration = calibrate(program, [Dataset("c", x, np.zeros(6, dtype=np.int64))], chip)
    layer = program.layer("conv_under_test")
    node = program.graph.node("conv_under_test")
    vectors = interpreter.run(program.graph, {"x": x}, keep=[node.input(0).name])[node.input(0).name]
    vectors = vectors.reshape(-1, 4, 9)  # runs of one 9-input vector per channel
    x_fs = calibration.input_full_scale["conv_under_test"]
    dac = (1 << (chip.periphery.dac_bits - 1)) - 1
    v = chip.periphery.v_read_V * np.round(np.clip(vectors / x_fs, -1, 1) * dac) / dac
    levels = np.asarray(layer.levels_uS)
    for block, fs in zip(layer.blocks, calibration.adc_full_scale_uA["conv_under_test"], strict=True):
        peak = 0.0
        for column in range(block.col_start, block.col_stop):
            for half in (block.target_pos, block.target_neg):  # channel c's vectors only, through column c
                peak = max(peak, float(np.abs(v[:, column] @ levels[half[:, column - block.col_start]]).max()))
        assert fs == pytest.approx(ADC_HEADROOM * peak, rel=1e-5)
