"""replicate_network (`--ensemble network`): k copies of the whole network, averaged only at the outputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import lea_compiler as leac
from lea_compiler import interpreter
from lea_compiler.backends.board import emit_board, validate_board
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.chip import Array, Chip, save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.compiler import compile_model
from lea_compiler.datasets import top1
from lea_compiler.errors import CompileError, UsageError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.passes.replicate_network import Replica, ReplicateNetwork, crossbar_cone
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program
from lea_compiler.reference import run_onnxruntime
from tests.helpers import ATOL, RTOL, cnn_model, make_model, mlp_model, random_feeds, save_mlp_and_chip, ternarize

F = np.float32


def replicated(model: onnx.ModelProto, k: int):
    graph = Canonicalize().run(import_model(model))
    ReplicateNetwork(k).run(graph)
    graph.verify(after="replicate_network")
    return graph


def classifier(extra_outputs: str = "probs+label") -> onnx.ModelProto:
    """4-8-3 MLP with a Softmax and an ArgMax label; `extra_outputs` picks the graph outputs."""
    rng = np.random.default_rng(1)
    inits = {"W0": rng.standard_normal((4, 8)).astype(F), "W1": rng.standard_normal((8, 3)).astype(F)}
    nodes = [
        helper.make_node("MatMul", ["x", "W0"], ["h"], name="fc0"),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("MatMul", ["a", "W1"], ["logits"], name="fc1"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["probs"], ["label"], name="argmax", axis=1, keepdims=0),
        helper.make_node("Shape", ["x"], ["xshape"], name="shape"),
        helper.make_node("Cast", ["logits"], ["codes"], name="cast", to=TensorProto.INT64),
    ]
    outputs = {"probs+label": ["probs", "label"], "label": ["label"], "label+shape": ["label", "xshape"],
               "codes": ["probs", "codes"]}[extra_outputs]
    return make_model(nodes, {"x": (F, ["N", 4])}, outputs, inits, name="classifier")


# ------------------------------------------------------------------ the pass
@pytest.mark.parametrize("make", [mlp_model, cnn_model], ids=["mlp", "cnn"])
@pytest.mark.parametrize("k", [1, 3])
def test_replicated_graph_computes_the_original_model(make, k) -> None:
    model = make()
    graph = replicated(model, k)
    feeds = random_feeds(model, batch=16)
    got = interpreter.run(graph, feeds)
    want = run_onnxruntime(model, feeds)
    assert list(got) == list(want) == ["y"]
    np.testing.assert_allclose(got["y"], want["y"], rtol=RTOL, atol=ATOL)
    original = [n.name for n in Canonicalize().run(import_model(model)).nodes_of("MVM")]
    assert [n.name for n in graph.nodes_of("MVM")] == [f"{name}@{c}" for c in range(k) for name in original]
    for node in graph.nodes_of("MVM"):
        replica = node.fact(Replica)
        assert replica is not None and node.name == f"{replica.origin}@{replica.copy}" and replica.count == k


def test_copies_are_independent_and_the_output_is_their_mean() -> None:
    graph = replicated(mlp_model(), 3)
    # each copy is its own chain from the shared input to its own output
    for c in range(3):
        h = graph.node(f"fc0@{c}")
        assert h.input(0) is graph.inputs[0]
        assert graph.node(f"fc1@{c}").input(0).producer is graph.node(f"act0@{c}")
    assert [n.op_type for n in graph.nodes[-3:]] == ["Add", "Add", "Div"]
    assert graph.outputs[0].name == "y" and graph.outputs[0].producer.op_type == "Div"
    feeds = random_feeds(mlp_model(), batch=8)
    before = interpreter.run(graph, feeds, keep=["y@0", "y@1", "y@2"])
    np.testing.assert_allclose(before["y"], (before["y@0"] + before["y@1"] + before["y@2"]) / 3, rtol=1e-6)


def test_digital_preprocessing_of_the_input_is_shared() -> None:
    graph = replicated(cnn_model(), 2)
    assert [n.name for n in graph.nodes_of("Patches")] == ["conv1__patches", "conv2__patches@0", "conv2__patches@1"]
    patches = graph.node("conv1__patches").outputs[0]
    assert sorted(u.node.name for u in patches.uses) == ["conv1@0", "conv1@1"]
    assert [n.name for n in crossbar_cone(Canonicalize().run(import_model(cnn_model())))][0] == "conv1"


def test_argmax_label_is_taken_of_the_mean_scores() -> None:
    for outputs in ("probs+label", "label", "label+shape"):
        model = classifier(outputs)
        graph = replicated(model, 3)
        feeds = random_feeds(model, batch=64, seed=2)
        got, want = interpreter.run(graph, feeds), run_onnxruntime(model, feeds)
        assert list(got) == list(want)
        np.testing.assert_array_equal(got["label"], want["label"])
        label = graph.outputs[0] if outputs != "probs+label" else graph.outputs[1]
        assert label.dtype == np.int64 and label.producer.op_type == "ArgMax"
        assert label.producer.input(0).producer.op_type == "Div"  # one ArgMax, of the mean
        assert len(graph.nodes_of("ArgMax")) == 1 and len(graph.nodes_of("Div")) == 1
        if outputs == "label+shape":  # not from a crossbar: left alone, not replicated
            assert graph.outputs[1].producer.name == "shape"
            np.testing.assert_array_equal(got["xshape"], want["xshape"])


def test_an_integer_output_that_is_not_an_argmax_is_refused() -> None:
    graph = Canonicalize().run(import_model(classifier("codes")))
    with pytest.raises(CompileError, match=r"graph output %codes \(int64\[N, 3\], from node 'cast' \(Cast\)\) cannot"
                                           r" be averaged"):
        ReplicateNetwork(2).run(graph)


def test_pass_checks_its_inputs() -> None:
    with pytest.raises(CompileError, match="at least 1"):
        ReplicateNetwork(0)
    with pytest.raises(CompileError, match="run canonicalize first"):
        ReplicateNetwork(2).run(import_model(mlp_model()))
    graph = replicated(mlp_model(), 2)
    with pytest.raises(CompileError, match="already run"):
        ReplicateNetwork(2).run(graph)


# --------------------------------------------------------------- end to end
@pytest.mark.parametrize("make", [mlp_model, cnn_model], ids=["mlp", "cnn"])
def test_ideal_simulation_agrees_with_onnxruntime(tmp_path, make) -> None:
    model = ternarize(make())
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    chip = synth_chip(arrays=40, rows=32, cols=32, stuck_high=0.05, seed=2)
    # simple: an ideal joint Program reads its stuck devices (the weights it represents on its chip)
    program = compile_model(path, chip, CompileOptions(k=3, ensemble="network", encoding="simple")).program
    assert {layer.alpha for layer in program.layers} == {layer.beta for layer in program.layers} == {1}
    rng = np.random.default_rng(5)
    shape = [d.dim_value or 300 for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = rng.standard_normal(shape).astype(F)
    reference = run_onnxruntime(model, {"x": x})
    np.testing.assert_allclose(interpreter.run(program.graph, {"x": x})["y"], reference["y"], rtol=RTOL, atol=ATOL)
    report = simulate(program, [Dataset("d", x, top1(reference))], ideal=True)
    # at least 294 of 300: 3 samples sit closer to a tie than the quantization error, and a different
    # BLAS or CPU may round one more of them the other way
    assert report.data[0].accuracy >= 0.98 and report.data[0].agreement >= 0.98


def _regions(program: Program) -> list[tuple]:
    """Every copy half as (origin layer, block, polarity, region), sorted: replicas named by their origin."""
    return sorted((layer.name.split("@")[0], block.index, polarity, half.region.array, half.region.row, half.region.col)
                  for layer in program.layers for block in layer.blocks for copy in block.copies
                  for polarity, half in (("pos", copy.pos), ("neg", copy.neg)))


@pytest.mark.parametrize("k, bias", [(1, "digital"), (2, "row"), (3, "digital")])
def test_devices_and_placement_equal_the_layer_ensemble(k, bias) -> None:
    model = import_model(mlp_model())
    chip = synth_chip(arrays=10, rows=16, cols=16, stuck_high=0.1, stuck_low=0.05, seed=3)
    # simple: with joint, LEA's placer discounts what its beta copies can absorb; a replica has no partner copies
    options = {"k": k, "bias": bias, "block_rows": 8, "block_cols": 8, "encoding": "simple"}
    layer = compile_model(import_model(mlp_model()), chip, CompileOptions(**options)).program
    network = compile_model(model, chip, CompileOptions(**options, ensemble="network")).program
    assert network.devices_used == layer.devices_used
    assert len(network.layers) == k * len(layer.layers)
    for lea_layer in layer.layers:
        replicas = [n for n in network.layers if n.name.split("@")[0] == lea_layer.name]
        assert len(replicas) == k and sum(r.devices for r in replicas) == lea_layer.devices
    # the same placement problem: the k replicas of a block take the regions LEA's k copies take
    assert network.mapping_error_uS == pytest.approx(layer.mapping_error_uS) and network.mapping_error_uS > 0
    assert _regions(network) == _regions(layer)


def test_network_copies_sit_on_different_devices_of_a_defective_chip() -> None:
    chip = synth_chip(arrays=14, rows=16, cols=16, stuck_high=0.1, stuck_low=0.05, seed=3)
    program = compile_model(import_model(cnn_model()), chip,
                            CompileOptions(k=3, ensemble="network", block_rows=8, block_cols=8)).program
    assert program.mapping_error_uS > 0  # the chip's defects mattered
    occupied = {a.id: np.zeros((a.rows, a.cols), int) for a in chip.arrays}
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for half in (copy.pos, copy.neg):
                    r, c = half.region.row, half.region.col
                    occupied[half.region.array][r:r + block.shape[0], c:c + block.shape[1]] += 1
    assert max(grid.max() for grid in occupied.values()) == 1
    assert sum(int(grid.sum()) for grid in occupied.values()) == program.devices_used


def test_program_round_trip_and_board_stream(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(classifier("probs+label"), model)
    chip = synth_chip(arrays=6, rows=16, cols=16, stuck_high=0.05, seed=4)
    first = compile_model(model, chip, CompileOptions(k=2, ensemble="network", seed=1)).program
    second = compile_model(model, chip, CompileOptions(k=2, ensemble="network", seed=1)).program
    assert first.to_bytes() == second.to_bytes() and first.options["ensemble"] == "network"
    path = tmp_path / "m.leac"
    first.save(path)
    loaded = Program.load(path)
    assert loaded.to_bytes() == first.to_bytes()
    emit_board(loaded, tmp_path / "b.jsonl")
    assert validate_board(tmp_path / "b.jsonl") == []


# ---------------------------------------------------------------- CLI and API
@pytest.fixture
def files(tmp_path):
    return save_mlp_and_chip(tmp_path)


def test_cli_network_ensemble_summary(files, tmp_path, capsys) -> None:
    model, chip = files
    out = tmp_path / "net.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-k", "3", "--ensemble", "network", "-o", str(out),
                 "--time-passes"]) == 0
    text = capsys.readouterr().out
    assert "network ensemble: 3 copies of the whole network, averaged at the outputs" in text
    assert "fc0@2  4 x 12  1       1/1         96" in text and "pass replicate_network" in text
    assert main(["compile", str(model), "--chip", str(chip), "-k", "3", "--ensemble", "network", "-o", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ensemble"], report["k"], report["beta"]) == ("network", 3, None)
    assert [layer["name"] for layer in report["layers"]][:4] == ["fc0@0", "fc1@0", "fc2@0", "fc0@1"]
    assert report["devices_used"] == 2 * 3 * 138 and "replicate_network" in report["pass_seconds"]
    assert main(["compile", str(model), "--chip", str(chip), "-k", "3", "-o", str(out), "--json"]) == 0
    layer_report = json.loads(capsys.readouterr().out)
    assert (layer_report["ensemble"], layer_report["beta"]) == ("layer", 3)
    assert layer_report["devices_used"] == report["devices_used"]


@pytest.mark.parametrize("argv, message", [
    (["--ensemble", "network", "--beta", "2"], "--beta applies to --ensemble layer only"),
    (["--ensemble", "committee"], "invalid choice: 'committee'"),
])
def test_cli_bad_ensemble_options_exit_2_and_write_nothing(files, tmp_path, capsys, argv, message) -> None:
    model, chip = files
    out = tmp_path / "x.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-k", "3", "-o", str(out), *argv]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_cli_refuses_an_integer_output_it_cannot_average(tmp_path, capsys) -> None:
    model = tmp_path / "codes.onnx"
    onnx.save(classifier("codes"), model)
    chip = tmp_path / "chip.json"
    save_chip(Chip(arrays=tuple(Array(i, 16, 16) for i in range(4))), chip)
    out = tmp_path / "x.leac"
    assert main(["compile", str(model), "--chip", str(chip), "-k", "2", "--ensemble", "network", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "pass replicate_network" in err and "graph output %codes" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["compile", str(model), "--chip", str(chip), "-k", "2", "-o", str(out)]) == 0  # LEA maps it


def test_api_passes_the_ensemble_through(files) -> None:
    model, chip = files
    program = leac.compile(model, chip, k=2, ensemble="network")
    assert program.options["ensemble"] == "network" and program.devices_used == 2 * 2 * 138
    assert [layer.name for layer in program.layers] == ["fc0@0", "fc1@0", "fc2@0", "fc0@1", "fc1@1", "fc2@1"]
    with pytest.raises(UsageError, match="beta .* applies to the layer ensemble only"):
        leac.compile(model, chip, k=2, beta=1, ensemble="network")
    with pytest.raises(UsageError, match="unknown ensemble 'tree'"):
        leac.compile(model, chip, ensemble="tree")
