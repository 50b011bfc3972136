"""The ONNX front end: clear refusals for bad models, faithful IR for good ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lea_compiler.errors import InvalidModelError
from lea_compiler.onnx_frontend import import_model, load_model
from tests.helpers import cnn_model, make_model, mlp_model, zipmap_classifier

F = np.float32


def test_mlp_imports_with_shapes_from_inference(tmp_path) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), path)
    g = load_model(path)
    assert [v.type_str() for v in g.inputs] == ["float32[N, 4]"]
    assert [n.outputs[0].type_str() for n in g.nodes] == [
        "float32[N, 12]", "float32[N, 12]", "float32[N, 6]", "float32[N, 6]", "float32[N, 3]", "float32[N, 3]"
    ]
    assert g.node("fc0").attrs == {"transB": 1}
    assert g.metadata["producer"] == "leac-tests"


def test_every_unsupported_op_is_named_in_one_message() -> None:
    nodes = [
        helper.make_node("Sin", ["x"], ["a"], name="sin_1"),
        helper.make_node("Relu", ["a"], ["r"], name="ok"),
        helper.make_node("Hardmax", ["r"], ["y"], name="hardmax_2"),
    ]
    model = make_model(nodes, {"x": (F, ["N", 3])}, ["y"])
    with pytest.raises(InvalidModelError) as info:
        import_model(model, source="m.onnx")
    message = str(info.value)
    assert "node 'sin_1' (Sin)" in message and "node 'hardmax_2' (Hardmax)" in message
    assert "'ok'" not in message
    assert "leac supports: Abs, Add, And, ArgMax" in message and "ai.onnx.ml.ArrayFeatureExtractor" in message


def test_zipmap_refusal_says_how_to_export_without_it() -> None:
    with pytest.raises(InvalidModelError) as info:
        import_model(zipmap_classifier(), source="clf.onnx")
    message = str(info.value)
    assert message.startswith("clf.onnx: unsupported: node 'ZipMap' (ai.onnx.ml.ZipMap). ZipMap (skl2onnx's default "
                              "classifier output")
    assert "options={id(clf): {'zipmap': False}}" in message and "options={MLPClassifier: {'zipmap': False}}" in message
    assert message.index("zipmap") < message.index("leac supports:")
    assert "'MatMul'" not in message and "\n" not in message


def test_unnamed_unsupported_node_is_named_by_position() -> None:
    model = make_model([helper.make_node("Sin", ["x"], ["y"])], {"x": (F, ["N", 3])}, ["y"])
    with pytest.raises(InvalidModelError, match=r"node '#0' \(Sin\)"):
        import_model(model)


def test_conv_3d_is_refused_naming_the_node() -> None:
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], name="conv_3", group=2)]
    model = make_model(nodes, {"x": (F, ["N", 4, 5, 5, 5])}, ["y"], {"W": np.ones((4, 2, 3, 3, 3), F)})
    with pytest.raises(InvalidModelError, match=r"node 'conv_3' \(Conv\): 3-D Conv is not supported"):
        import_model(model)


def test_batchnorm_training_mode_is_refused() -> None:
    p = {k: np.ones(2, F) for k in "smv"} | {"o": np.zeros(2, F)}
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "o", "m", "v"], ["y"], name="bn", training_mode=1)]
    model = helper.make_model(
        helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3, 3])],
            [numpy_helper.from_array(v, k) for k, v in p.items()],
        ),
        opset_imports=[helper.make_opsetid("", 15)],
    )
    with pytest.raises(InvalidModelError, match="(?i)training_mode"):
        import_model(model)


def _dropout_model(mode: str) -> onnx.ModelProto:
    """Dropout whose training_mode (input 2) is an initializer, a Constant node or a graph input."""
    inputs = {"x": (F, ["N", 3])}
    inits = {"r": np.array(0.5, F)}
    nodes = [helper.make_node("Dropout", ["x", "r", "t"], ["y"], name="drop")]
    if mode.startswith("initializer"):
        inits["t"] = np.array(mode.endswith("true"))
    elif mode.startswith("constant"):
        value = numpy_helper.from_array(np.array(mode.endswith("true")))
        nodes.insert(0, helper.make_node("Constant", [], ["t"], name="mode", value=value))
    else:
        inputs["t"] = (bool, [])
    return make_model(nodes, inputs, ["y"], inits)


@pytest.mark.parametrize("mode, message", [
    ("initializer true", "training_mode=true is not supported: it zeroes elements at random"),
    ("constant true", "training_mode=true is not supported: it zeroes elements at random"),
    ("graph input", "training_mode (input 2, %t) is not a constant false"),
])
def test_dropout_in_training_mode_is_refused_naming_the_node(mode, message) -> None:
    with pytest.raises(InvalidModelError) as info:
        import_model(_dropout_model(mode), source="m.onnx")
    assert str(info.value).startswith(f"m.onnx: node 'drop' (Dropout): {message}")
    assert "export the model in eval mode" in str(info.value)


@pytest.mark.parametrize("mode", ["initializer false", "constant false"])
def test_dropout_with_a_constant_false_training_mode_imports(mode) -> None:
    assert [n.op_type for n in import_model(_dropout_model(mode)).nodes][-1] == "Dropout"


def _cast_model(to: int, opset: int) -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["x"], ["q"], name="narrow", to=to),
             helper.make_node("Cast", ["q"], ["y"], name="widen", to=TensorProto.FLOAT)]
    return make_model(nodes, {"x": (F, ["N", 3])}, ["y"], opset=opset)


def test_cast_to_float8e8m0_is_refused() -> None:
    with pytest.raises(InvalidModelError, match=r"node 'narrow' \(Cast\): casting to FLOAT8E8M0 is not supported"):
        import_model(_cast_model(TensorProto.FLOAT8E8M0, 25))


def test_cast_to_float8_needs_an_onnx_with_saturating_casts(monkeypatch) -> None:
    # onnx < 1.19 has neither ml_dtypes float8 arrays nor numpy_helper.saturate_cast
    monkeypatch.delattr(onnx.numpy_helper, "saturate_cast")
    with pytest.raises(InvalidModelError, match=r"\(Cast\): casting to FLOAT8E4M3FN needs onnx >= 1.19"):
        import_model(_cast_model(TensorProto.FLOAT8E4M3FN, 19))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"\x00\x01garbage\xff" * 10, "not a readable ONNX model"),
        (b"not onnx at all", "not a readable ONNX model|refuses"),
    ],
)
def test_bad_files_are_refused(tmp_path, content, message) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(InvalidModelError, match=message):
        load_model(path)


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(InvalidModelError, match="no such file"):
        load_model(tmp_path / "nope.onnx")
    with pytest.raises(InvalidModelError, match="not a file"):
        load_model(tmp_path)


def test_truncated_model_is_refused(tmp_path) -> None:
    data = mlp_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelError, match="bad.onnx|cut.onnx"):
        load_model(path)


def test_checker_failure_is_reported() -> None:
    model = mlp_model()
    model.graph.node[0].input[1] = "no_such_weight"
    with pytest.raises(InvalidModelError, match="checker refuses"):
        import_model(model)


def test_the_checkers_message_is_one_line() -> None:
    """The ONNX checker appends '==> Context: ...' lines; leac's error message is one line."""
    model = mlp_model()
    model.graph.node[0].attribute.append(onnx.helper.make_attribute("junk", 1))
    with pytest.raises(InvalidModelError, match="checker refuses") as caught:
        import_model(model)
    assert "\n" not in str(caught.value) and "Context" in str(caught.value)


def test_opset_newer_than_onnx_knows_is_refused() -> None:
    model = mlp_model()
    model.opset_import[0].version = 999
    with pytest.raises(InvalidModelError, match="opset 999|checker"):
        import_model(model)


def test_shape_inference_errors_are_reported() -> None:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.ones((4, 2), F), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InvalidModelError, match="shape inference"):
        import_model(model)


def test_initializers_listed_as_inputs_are_constants() -> None:
    model = mlp_model()
    model.ir_version = 3
    for init in model.graph.initializer:
        model.graph.input.append(helper.make_tensor_value_info(init.name, TensorProto.FLOAT, list(init.dims)))
    g = import_model(model)
    assert [v.name for v in g.inputs] == ["x"]
    assert g.value("W0").is_const


def test_string_constants_become_python_strings() -> None:
    nodes = [
        helper.make_node("ArgMax", ["x"], ["k"], axis=1, keepdims=0, name="argmax"),
        helper.make_node("ArrayFeatureExtractor", ["labels", "k"], ["y"], domain="ai.onnx.ml", name="labels"),
    ]
    labels = numpy_helper.from_array(np.array(["cat", "dog", "bird"], dtype=object), "labels")
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [1, "N"])], [labels],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    )
    g = import_model(model)
    assert g.value("labels").const.tolist() == ["cat", "dog", "bird"]
    assert g.value("y").type_str() == "string[1, N]"


# Found by the fuzzer (tests/fuzzing.py): each was a traceback (exit 1) before.
def test_names_that_are_not_utf8_are_refused(tmp_path) -> None:
    """ONNX strings are proto2: a bit flip that breaks their UTF-8 comes back as bytes, not str."""
    data = mlp_model().SerializeToString()
    at = data.index(b"fc0")
    path = tmp_path / "flipped.onnx"
    path.write_bytes(data[:at + 2] + bytes([data[at + 2] ^ 0x80]) + data[at + 3:])
    with pytest.raises(InvalidModelError, match=r"not valid UTF-8 text in model\.graph\.node\[0\]\.name"):
        load_model(path)


def test_a_graph_without_outputs_is_refused() -> None:
    model = mlp_model()
    del model.graph.output[:]
    with pytest.raises(InvalidModelError, match="no outputs"):
        import_model(model)


def test_conv_bias_must_be_a_vector_of_output_channels() -> None:
    model = cnn_model()
    model.graph.node[0].input[2] = "w1"  # the kernel (4, 1, 3, 3) as the bias
    with pytest.raises(InvalidModelError, match=r"conv1.*bias \(input 2\) must be a vector of the 4 output"):
        import_model(model)



def _conv_with_pads(pads: int) -> onnx.ModelProto:
    w = np.ones((2, 1, 3, 3), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[pads] * 4)
    return make_model([node], {"x": (np.float32, ["N", 1, 8, 8])}, ["y"], {"w": w})


def _maxpool_with_pads(pads: int) -> onnx.ModelProto:
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], pads=[pads] * 4)
    return make_model([node], {"x": (np.float32, ["N", 1, 8, 8])}, ["y"])


def _doubling_concats(times: int) -> onnx.ModelProto:
    nodes, last = [], "x"
    for index in range(times):
        nodes.append(helper.make_node("Concat", [last, last], [f"c{index}"], name=f"cat{index}", axis=1))
        last = f"c{index}"
    return make_model(nodes, {"x": (np.float32, ["N", 4])}, [last])


@pytest.mark.parametrize("build, size, value", [
    (_conv_with_pads, 20_000, "'y'"), (_maxpool_with_pads, 30_000, "'y'"), (_doubling_concats, 30, "'c22'"),
])
def test_models_whose_tensors_explode_are_refused_at_import(build, size: int, value: str) -> None:
    """1 KB models that compiled, then took 3-15 GB in the simulator (issue 13, item 10)."""
    with pytest.raises(InvalidModelError, match=f"value {value} has shape .* more than leac handles"):
        import_model(build(size))
    import_model(build(2 if build is not _doubling_concats else 3))  # the same models at sane sizes import


I64 = np.int64
_REFUSED_VARIANTS = [
    ("gelu", [helper.make_node("Gelu", ["x"], ["y"], name="g", approximate="sigmoid")], {"x": (F, ["N", 4])}, {}, 20,
     "node 'g' (Gelu): approximate='sigmoid' is not supported (only 'none' and 'tanh')"),
    ("pad_mode", [helper.make_node("Pad", ["x", "p"], ["y"], name="p", mode="mirror")], {"x": (F, ["N", 4])},
     {"p": np.array([0, 1, 0, 1], I64)}, 17,
     "node 'p' (Pad): mode='mirror' is not supported (only constant, reflect, edge, wrap)"),
    ("split_uneven", [helper.make_node("Split", ["x"], ["a", "b", "c", "d"], name="s", axis=1, num_outputs=4)],
     {"x": (F, ["N", 5])}, {}, 18, "node 's' (Split): cannot split 5 elements into 4 pieces of 2 with a smaller last"),
    ("prelu", [helper.make_node("PRelu", ["x", "s"], ["y"], name="pr")], {"x": (F, ["N", 3, 4, 4])},
     {"s": np.ones(3, F)}, 17, "node 'pr' (PRelu): the slope float32[3] does not broadcast to the input "
     "float32[N, 3, 4, 4] (ONNX aligns it with the last axes: a slope per channel of NCHW is [C, 1, 1])"),
    ("reduce_axes", [helper.make_node("ReduceSum", ["x", "a"], ["y"], name="r")], {"x": (F, ["N", 4])},
     {"a": np.array([1, -1], I64)}, 17, "node 'r' (ReduceSum): axes [1, -1] repeat"),
    ("layernorm_stash", [helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln", stash_type=0)],
     {"x": (F, ["N", 4])}, {"s": np.ones(4, F)}, 17,
     "node 'ln' (LayerNormalization): stash_type=0 is not supported (only 1, float32)"),
    ("range_stash", [helper.make_node("Range", ["a", "b", "c"], ["r"], name="rg", stash_type=2),
                     helper.make_node("Cast", ["r"], ["y"], name="c32", to=TensorProto.FLOAT)], {"x": (F, ["N", 4])},
     {"a": np.array(0, np.float16), "b": np.array(4, np.float16), "c": np.array(1, np.float16)}, 27,
     "node 'rg' (Range): stash_type=2 is not supported"),
    ("pad_reflect_too_far", [helper.make_node("Pad", ["x", "p"], ["y"], name="p", mode="reflect")],
     {"x": (F, ["N", 4])}, {"p": np.array([0, 4, 0, 0], I64)}, 17,
     "node 'p' (Pad): mode='reflect' pads (4, 0) reach beyond an axis of 4 elements (at most 3)"),
]


@pytest.mark.parametrize("nodes, inputs, inits, opset, message", [c[1:] for c in _REFUSED_VARIANTS],
                         ids=[c[0] for c in _REFUSED_VARIANTS])
def test_unsupported_op_variants_are_refused_naming_the_node(nodes, inputs, inits, opset, message) -> None:
    outputs = [o for n in nodes for o in n.output]
    with pytest.raises(InvalidModelError) as info:
        import_model(make_model(nodes, inputs, outputs, inits, opset=opset), source="m.onnx")
    assert str(info.value).startswith(f"m.onnx: {message}")


def test_old_opset_pad_converts() -> None:
    # onnx's version converter turns Pad-2's pads attribute into an initializer that an IR 3 model does not list
    # among its inputs; the front end lists it, so the converted model passes the checker
    model = helper.make_model(
        helper.make_graph([helper.make_node("Pad", ["x"], ["y"], name="pad", pads=[0, 1, 0, 2], mode="edge")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])]),
        opset_imports=[helper.make_opsetid("", 6)], ir_version=3)
    from lea_compiler import interpreter
    graph = import_model(model)
    x = np.arange(6, dtype=F).reshape(2, 3)
    np.testing.assert_array_equal(interpreter.run(graph, {"x": x})["y"], np.pad(x, ((0, 0), (1, 2)), mode="edge"))
