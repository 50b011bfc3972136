"""The interpreter against onnxruntime, op by op and on whole models."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from lea_compiler import interpreter
from lea_compiler.errors import BadDataError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.ops import LEAC_DOMAIN, OPS
from lea_compiler.reference import run_onnxruntime
from tests.helpers import ATOL, RTOL, cnn_model, make_model, mlp_model, random_feeds

F = np.float32
I64 = np.int64
rng = np.random.default_rng(1234)


def w(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(F)


def node(op: str, inputs: list[str], outputs: list[str] | None = None, **attrs: object):
    return helper.make_node(op, inputs, outputs or ["y"], name=f"{op.lower()}_under_test", **attrs)


def nd(op: str, inputs: list[str], outputs: list[str] | None = None, **attrs: object):
    """A node named after its op and first output, for cases chaining several nodes of one op."""
    outputs = outputs or ["y"]
    return helper.make_node(op, inputs, outputs, name=f"{op.lower()}_{outputs[0]}", **attrs)


X2 = {"x": (F, ["N", 6])}
X4 = {"x": (F, ["N", 3, 9, 9])}

# (id, nodes, inputs, initializers, extra model kwargs); every op in OPS appears at least once.
CASES = [
    ("gemm", [node("Gemm", ["x", "W", "b"])], X2, {"W": w(6, 4), "b": w(4)}, {}),
    ("gemm_transB_alpha_beta", [node("Gemm", ["x", "W", "b"], transB=1, alpha=0.5, beta=2.0)], X2,
     {"W": w(4, 6), "b": w(1, 4)}, {}),
    ("gemm_transA_noC", [node("Gemm", ["W", "x"], transA=1, transB=1)], X2, {"W": w(6, 3)}, {}),
    ("gemm_scalar_C", [node("Gemm", ["x", "W", "c"], beta=0.25)], X2, {"W": w(6, 2), "c": np.array(3.0, F)}, {}),
    ("matmul_2d", [node("MatMul", ["x", "W"])], X2, {"W": w(6, 5)}, {}),
    ("matmul_batched", [node("MatMul", ["x", "W"])], {"x": (F, ["N", 3, 6])}, {"W": w(6, 2)}, {}),
    ("matmul_vector", [node("MatMul", ["x", "v"])], X2, {"v": w(6)}, {}),
    ("add_broadcast", [node("Add", ["x", "b"])], X2, {"b": w(6)}, {}),
    ("sub", [node("Sub", ["b", "x"])], X2, {"b": w(1, 6)}, {}),
    ("mul", [node("Mul", ["x", "x"])], X2, {}, {}),
    ("div", [node("Div", ["x", "d"])], X2, {"d": rng.uniform(0.5, 2, 6).astype(F)}, {}),
    ("div_int", [node("Div", ["x", "d"])], {"x": (I64, ["N", 4])}, {"d": np.array([2, -3, 4, -1], I64)}, {}),
    ("relu", [node("Relu", ["x"])], X2, {}, {}),
    ("leakyrelu", [node("LeakyRelu", ["x"], alpha=0.3)], X2, {}, {}),
    ("tanh", [node("Tanh", ["x"])], X2, {}, {}),
    ("sigmoid_large", [node("Mul", ["x", "k"], ["big"]), node("Sigmoid", ["big"])], X2,
     {"k": np.array(60.0, F)}, {}),
    ("clip_inputs", [node("Clip", ["x", "lo", "hi"])], X2, {"lo": np.array(-0.5, F), "hi": np.array(0.7, F)}, {}),
    ("clip_max_only", [node("Clip", ["x", "", "hi"])], X2, {"hi": np.array(0.2, F)}, {}),
    ("clip_none", [node("Clip", ["x"])], X2, {}, {}),
    ("hardsigmoid", [node("HardSigmoid", ["x"], alpha=0.3, beta=0.4)], X2, {}, {}),
    ("softmax", [node("Softmax", ["x"])], X2, {}, {}),
    ("softmax_axis1_3d", [node("Softmax", ["x"], axis=1)], {"x": (F, ["N", 3, 4])}, {}, {}),
    ("logsoftmax", [node("LogSoftmax", ["x"], axis=-1)], X2, {}, {}),
    ("flatten", [node("Flatten", ["x"])], X4, {}, {}),
    ("flatten_axis0", [node("Flatten", ["x"], axis=0)], X4, {}, {}),
    ("flatten_axis3", [node("Flatten", ["x"], axis=3)], X4, {}, {}),
    ("reshape", [node("Reshape", ["x", "s"])], X4, {"s": np.array([0, -1, 9], I64)}, {}),
    ("reshape_to_2d", [node("Reshape", ["x", "s"])], X4, {"s": np.array([-1, 243], I64)}, {}),
    ("squeeze", [node("Squeeze", ["x", "a"])], {"x": (F, ["N", 1, 4, 1])}, {"a": np.array([1, -1], I64)}, {}),
    ("squeeze_all", [node("Squeeze", ["x"])], {"x": (F, [3, 1, 4, 1])}, {}, {}),
    ("unsqueeze", [node("Unsqueeze", ["x", "a"])], X2, {"a": np.array([0, 3], I64)}, {}),
    ("transpose", [node("Transpose", ["x"], perm=[0, 2, 3, 1])], X4, {}, {}),
    ("transpose_default", [node("Transpose", ["x"])], {"x": (F, ["N", 2, 3])}, {}, {}),
    ("concat", [node("Relu", ["x"], ["r"]), node("Concat", ["x", "r", "x"], axis=1)], X2, {}, {}),
    ("shape_gather_reshape", [node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["n"]),
                              node("Unsqueeze", ["n", "ax"], ["n1"]), node("Concat", ["n1", "minus1"], ["t"], axis=0),
                              node("Reshape", ["x", "t"])], X4,
     {"zero": np.array(0, I64), "ax": np.array([0], I64), "minus1": np.array([-1], I64)}, {}),
    ("shape_slice", [node("Shape", ["x"], ["y"], start=1, end=-1)], X4, {}, {}),
    ("gather_axis1_negative", [node("Gather", ["x", "i"], axis=1)], X2, {"i": np.array([[-1, 0], [2, 2]], I64)}, {}),
    ("identity", [node("Identity", ["x"])], X2, {}, {}),
    ("dropout_mask", [node("Dropout", ["x"], ["y", "mask"])], X2, {}, {"outputs": ["y", "mask"]}),
    ("dropout_training_mode_false", [node("Dropout", ["x", "r", "t"], ["y", "mask"])], X2,
     {"r": np.array(0.5, F), "t": np.array(False)}, {"outputs": ["y", "mask"]}),
    ("dropout_training_mode_constant_false",
     [node("Constant", [], ["t"], value=helper.make_tensor("v", TensorProto.BOOL, [], [False])),
      node("Dropout", ["x", "", "t"], ["y", "mask"])], X2, {}, {"outputs": ["y", "mask"]}),
    ("cast_to_int", [node("Cast", ["x"], to=TensorProto.INT64)], X2, {}, {}),
    ("cast_int_to_float", [node("Cast", ["x"], to=TensorProto.FLOAT)], {"x": (I64, ["N", 3])}, {}, {}),
    ("cast_int_to_string", [node("Cast", ["x"], to=TensorProto.STRING)], {"x": (I64, ["N", 3])}, {}, {}),
    ("argmax", [node("ArgMax", ["x"], axis=1, keepdims=0)], X2, {}, {}),
    ("argmax_keepdims_last", [node("ArgMax", ["x"], axis=-1, select_last_index=1)],
     {"x": (I64, ["N", 6])}, {}, {}),
    ("conv", [node("Conv", ["x", "W", "b"], pads=[1, 1, 1, 1])], X4, {"W": w(5, 3, 3, 3), "b": w(5)}, {}),
    ("conv_stride_dilation", [node("Conv", ["x", "W"], strides=[2, 1], dilations=[2, 2], pads=[0, 1, 2, 1])], X4,
     {"W": w(4, 3, 3, 2)}, {}),
    ("conv_same_upper", [node("Conv", ["x", "W"], auto_pad="SAME_UPPER", strides=[2, 2])], X4,
     {"W": w(2, 3, 4, 4)}, {}),
    ("conv_same_lower", [node("Conv", ["x", "W"], auto_pad="SAME_LOWER", strides=[2, 2])], X4,
     {"W": w(2, 3, 4, 4)}, {}),
    ("conv_valid_1x1", [node("Conv", ["x", "W"], auto_pad="VALID", kernel_shape=[1, 1])], X4, {"W": w(7, 3, 1, 1)}, {}),
    ("batchnorm", [node("BatchNormalization", ["x", "s", "o", "m", "v"], epsilon=0.01)], X4,
     {"s": w(3), "o": w(3), "m": w(3), "v": rng.uniform(0.1, 2, 3).astype(F)}, {}),
    ("maxpool", [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], X4, {}, {}),
    ("maxpool_pad_ceil", [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                               ceil_mode=1)], {"x": (F, ["N", 2, 8, 8])}, {}, {}),
    ("maxpool_dilated", [node("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2])], X4, {}, {}),
    ("avgpool", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2])], X4, {}, {}),
    ("avgpool_pads_exclude", [node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], X4, {}, {}),
    ("avgpool_pads_include", [node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 2, 1, 0],
                                   count_include_pad=1)], X4, {}, {}),
    ("avgpool_ceil_include", [node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
                                   ceil_mode=1, count_include_pad=1)], {"x": (F, ["N", 1, 6, 6])}, {}, {}),
    ("avgpool_same_upper", [node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")],
     X4, {}, {}),
    ("globalavgpool", [node("GlobalAveragePool", ["x"])], X4, {}, {}),
    ("reducemean_axes_input", [node("ReduceMean", ["x", "a"], keepdims=0)], X4, {"a": np.array([-1, 2], I64)},
     {"opset": 18}),
    ("reducemean_all", [node("ReduceMean", ["x"])], X4, {}, {"opset": 18}),
    ("reducemean_attr_opset13", [node("ReduceMean", ["x"], axes=[1])], X4, {}, {"opset": 13}),
    ("constant", [node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [6], w(6))),
                  node("Add", ["x", "c"])], X2, {}, {}),
    ("constant_value_floats", [node("Constant", [], ["c"], value_floats=[1.0, 2.0]),
                               node("Mul", ["x", "c"])], {"x": (F, ["N", 2])}, {}, {}),
    # digital ops beyond the core set (lea_compiler/op_rules.py, lea_compiler/digital_kernels.py)
    ("erf", [nd("Mul", ["x", "k"], ["big"]), nd("Erf", ["big"])], X2, {"k": np.array(2.5, F)}, {}),
    ("gelu_exact_as_torch_exports_it", [nd("Div", ["x", "r2"], ["d"]), nd("Erf", ["d"], ["e"]),
                                        nd("Add", ["e", "one"], ["a"]), nd("Mul", ["x", "a"], ["m"]),
                                        nd("Mul", ["m", "half"])], X2,
     {"r2": np.array(np.sqrt(2), F), "one": np.array(1, F), "half": np.array(0.5, F)}, {}),
    ("gelu", [nd("Gelu", ["x"])], X2, {}, {"opset": 20}),
    ("gelu_tanh", [nd("Gelu", ["x"], approximate="tanh")], X2, {}, {"opset": 20}),
    ("elu", [nd("Elu", ["x"], alpha=0.7)], X2, {}, {}),
    ("selu", [nd("Selu", ["x"])], X2, {}, {}),
    ("celu", [nd("Celu", ["x"], alpha=2.0)], X2, {}, {}),
    ("softplus", [nd("Mul", ["x", "k"], ["big"]), nd("Softplus", ["big"])], X2, {"k": np.array(40.0, F)}, {}),
    ("softsign", [nd("Softsign", ["x"])], X2, {}, {}),
    ("hardswish", [nd("Mul", ["x", "k"], ["big"]), nd("HardSwish", ["big"])], X2, {"k": np.array(4.0, F)}, {}),
    ("mish", [nd("Mish", ["x"])], X2, {}, {"opset": 18}),
    ("thresholdedrelu", [nd("ThresholdedRelu", ["x"], alpha=0.3)], X2, {}, {}),
    ("exp_log_sqrt_abs", [nd("Exp", ["x"], ["e"]), nd("Sqrt", ["e"], ["s"]), nd("Log", ["s"], ["l"]),
                          nd("Abs", ["l"])], X2, {}, {}),
    ("neg_reciprocal_sign", [nd("Neg", ["x"], ["n"]), nd("Reciprocal", ["n"], ["r"]), nd("Sign", ["r"])],
     X2, {}, {}),
    ("neg_abs_int", [nd("Neg", ["x"], ["n"]), nd("Abs", ["n"])], {"x": (I64, ["N", 4])}, {}, {}),
    ("floor_ceil_round", [nd("Mul", ["x", "k"], ["big"]), nd("Floor", ["big"], ["f"]), nd("Ceil", ["big"], ["c"]),
                          nd("Round", ["big"], ["r"]), nd("Sum", ["f", "c", "r"])], X2,
     {"k": np.array(2.5, F)}, {}),
    ("prelu_per_channel", [nd("PRelu", ["x", "s"])], X4, {"s": w(3, 1, 1)}, {}),
    ("pow_float_exponent", [nd("Abs", ["x"], ["a"]), nd("Pow", ["a", "p"])], X2, {"p": w(6)}, {}),
    ("pow_int_exponent", [nd("Pow", ["x", "p"])], X2, {"p": np.array([0, 1, 2, 3, 2, 1], I64)}, {}),
    ("min_max_three", [nd("Max", ["x", "a", "b"], ["m"]), nd("Min", ["m", "c"])], X2,
     {"a": w(6), "b": w(1, 6), "c": np.array(0.5, F)}, {}),
    ("sum_mean", [nd("Sum", ["x", "a"], ["s"]), nd("Mean", ["s", "x", "a"])], X2, {"a": w(6)}, {}),
    ("where_compare", [nd("Greater", ["x", "t"], ["g"]), nd("Less", ["x", "u"], ["l"]),
                       nd("Or", ["g", "l"], ["o"]), nd("Not", ["o"], ["n"]), nd("Equal", ["x", "x"], ["e"]),
                       nd("And", ["n", "e"], ["c"]), nd("GreaterOrEqual", ["x", "t"], ["ge"]),
                       nd("LessOrEqual", ["x", "u"], ["le"]), nd("And", ["ge", "le"], ["a2"]),
                       nd("Or", ["c", "a2"], ["cc"]),
                       nd("Where", ["cc", "x", "zero"])], X2,
     {"t": np.array(0.5, F), "u": np.array(-0.5, F), "zero": np.array(0.0, F)}, {}),
    ("castlike", [nd("CastLike", ["x", "like"])], X2, {"like": np.array([1], I64)}, {}),
    ("reducesum_axes_input", [nd("ReduceSum", ["x", "a"], keepdims=0)], X4, {"a": np.array([1, -1], I64)}, {}),
    ("reducesum_noop", [nd("ReduceSum", ["x", "a"], noop_with_empty_axes=1)], X4,
     {"a": np.array([], I64)}, {}),
    ("reducemax_min_prod", [nd("ReduceMax", ["x", "a"], ["mx"]), nd("ReduceMin", ["x", "a"], ["mn"]),
                            nd("ReduceProd", ["x", "a"], ["p"]), nd("Sum", ["mx", "mn", "p"])], X4,
     {"a": np.array([2], I64)}, {"opset": 18}),
    ("reduce_norms", [nd("ReduceL1", ["x", "a"], ["l1"]), nd("ReduceL2", ["x", "a"], ["l2"]),
                      nd("ReduceSumSquare", ["x", "a"], ["sq"]), nd("ReduceLogSumExp", ["x", "a"], ["lse"]),
                      nd("Abs", ["x"], ["ab"]), nd("ReduceLogSum", ["ab", "a"], ["ls"]),
                      nd("Sum", ["l1", "l2", "sq", "lse", "ls"])], X4, {"a": np.array([1, 3], I64)},
     {"opset": 18}),
    ("reducemax_attr_opset13", [nd("ReduceMax", ["x"], axes=[0], keepdims=0)], X2, {}, {"opset": 13}),
    ("pad_constant", [nd("Pad", ["x", "p", "v"])], X4, {"p": np.array([0, 0, 1, -2, 0, 1, 2, 0], I64),
                                                            "v": np.array(1.5, F)}, {}),
    ("pad_reflect_axes", [nd("Pad", ["x", "p", "", "a"], mode="reflect")], X4,
     {"p": np.array([2, 1, 1, 3], I64), "a": np.array([-1, 2], I64)}, {"opset": 18}),
    ("pad_edge", [nd("Pad", ["x", "p"], mode="edge")], X4, {"p": np.array([0, 0, 2, 2, 0, 0, 1, 3], I64)}, {}),
    ("pad_wrap", [nd("Pad", ["x", "p"], mode="wrap")], X4, {"p": np.array([0, 0, 2, 2, 0, 0, 1, 3], I64)},
     {"opset": 19}),
    ("slice", [nd("Slice", ["x", "s", "e", "a", "t"])], X4,
     {"s": np.array([1, -1, 0], I64), "e": np.array([100, -100, 9], I64), "a": np.array([2, 3, 1], I64),
      "t": np.array([2, -3, 2], I64)}, {}),
    ("slice_defaults", [nd("Slice", ["x", "s", "e"])], X2, {"s": np.array([0, 2], I64),
                                                             "e": np.array([2, 5], I64)}, {}),
    ("split_input", [nd("Split", ["x", "s"], ["a", "b", "c"], axis=1), nd("Concat", ["c", "a"], ["y"], axis=1)],
     X2, {"s": np.array([2, 1, 3], I64)}, {}),
    ("split_equal", [nd("Split", ["x"], ["a", "b"], axis=-1), nd("Sub", ["a", "b"])], X2, {}, {}),
    ("split_num_outputs_uneven", [nd("Split", ["x"], ["a", "b", "c"], axis=2, num_outputs=3),
                                  nd("Concat", ["c", "b", "a"], ["y"], axis=2)], X4, {}, {"opset": 18}),
    ("expand", [nd("Expand", ["x", "s"])], {"x": (F, ["N", 1, 3])}, {"s": np.array([4, 1], I64)}, {}),
    ("tile", [nd("Tile", ["x", "r"])], X2, {"r": np.array([2, 3], I64)}, {}),
    ("layernorm", [nd("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv"], axis=-2, epsilon=0.01)],
     {"x": (F, ["N", 3, 4])}, {"s": w(3, 4), "b": w(4)}, {"outputs": ["y", "mean", "inv"]}),
    ("layernorm_no_bias", [nd("LayerNormalization", ["x", "s"])], X2, {"s": w(6)}, {}),
    ("constantofshape_range_size", [nd("Size", ["x"], ["n"]), nd("Unsqueeze", ["n", "ax"], ["n1"]),
                                    nd("ConstantOfShape", ["n1"], ["c"], value=helper.make_tensor(
                                        "v", TensorProto.INT64, [1], [3])),
                                    nd("Range", ["zero", "n", "c0"], ["r"]),
                                    nd("Concat", ["c", "r"], ["y"], axis=0)], X2,
     {"ax": np.array([0], I64), "zero": np.array(1, I64), "c0": np.array(2, I64)},
     {"outputs": [("y", I64, [None])]}),
    ("range_float", [nd("Range", ["a", "b", "c"], ["r"]), nd("Mul", ["x", "r"])], X2,
     {"a": np.array(0.5, F), "b": np.array(-2.3, F), "c": np.array(-0.5, F)}, {}),
    ("array_feature_extractor", [helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain="ai.onnx.ml")],
     X2, {"i": np.array([3, 0, 3], I64)}, {"ml_opset": 1}),
    ("labels_like_skl2onnx", [node("ArgMax", ["x"], ["k"], axis=1, keepdims=0),
                              helper.make_node("ArrayFeatureExtractor", ["labels", "k"], ["y"], domain="ai.onnx.ml")],
     X2, {"labels": np.array([10, 20, 30, 40, 50, 60], I64)}, {"ml_opset": 1, "outputs": [("y", I64, [1, "N"])]}),
]


@pytest.mark.parametrize("case_id, nodes, inputs, inits, extra", CASES, ids=[c[0] for c in CASES])
def test_op_matches_onnxruntime(case_id, nodes, inputs, inits, extra) -> None:
    output_specs = extra.get("outputs", ["y"])
    outputs = [o if isinstance(o, str) else o[0] for o in output_specs]
    model = make_model(nodes, inputs, output_specs, inits, ml_opset=extra.get("ml_opset"),
                       opset=extra.get("opset", 17))
    feeds = random_feeds(model, batch=4, seed=len(case_id))
    expected = run_onnxruntime(model, feeds)
    graph = import_model(model)
    got = interpreter.run(graph, feeds)
    assert list(got) == outputs
    for name in outputs:
        assert got[name].shape == expected[name].shape, name
        assert got[name].dtype == expected[name].dtype, name
        if got[name].dtype == object:
            assert got[name].tolist() == expected[name].tolist()
        else:
            np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=ATOL)


def test_every_supported_op_is_exercised() -> None:
    used = {(n.domain, n.op_type) for c in CASES for n in c[1]}
    used = {("" if d in ("", "ai.onnx") else d, op) for d, op in used}
    onnx_ops = {key for key in OPS if key[0] != LEAC_DOMAIN}  # leac's own ops: tests/passes
    assert onnx_ops <= used, sorted(onnx_ops - used)


@pytest.mark.parametrize("make", [mlp_model, cnn_model], ids=["mlp", "cnn_batchnorm"])
def test_whole_models_match_onnxruntime(make) -> None:
    model = make()
    feeds = random_feeds(model, batch=16, seed=7)
    expected = run_onnxruntime(model, feeds)
    got = interpreter.run(import_model(model), feeds)
    np.testing.assert_allclose(got["y"], expected["y"], rtol=RTOL, atol=ATOL)


def test_opset_11_model_is_converted_and_agrees() -> None:
    nodes = [
        node("Softmax", ["x"], ["s"], axis=1),  # opset < 13: softmax over the flattened trailing axes
        node("Unsqueeze", ["s"], ["u"], axes=[1]),
        node("Squeeze", ["u"], ["y"], axes=[1]),
    ]
    model = make_model(nodes, {"x": (F, ["N", 3, 4])}, ["y"], opset=11)
    feeds = random_feeds(model, seed=3)
    graph = import_model(model)
    assert graph.opset[""] == 13
    np.testing.assert_allclose(interpreter.run(graph, feeds)["y"], run_onnxruntime(model, feeds)["y"], rtol=RTOL,
                               atol=ATOL)


def test_listeners_see_every_node_in_order() -> None:
    seen = []

    class Recorder:
        def on_node(self, node, inputs, outputs) -> None:
            seen.append((node.name, outputs[0].shape))

    model = mlp_model()
    interpreter.run(import_model(model), random_feeds(model, batch=3), listeners=[Recorder()])
    assert seen == [("fc0", (3, 12)), ("act0", (3, 12)), ("fc1", (3, 6)), ("act1", (3, 6)), ("fc2", (3, 3)),
                    ("softmax", (3, 3))]


def test_keep_returns_intermediate_values() -> None:
    model = mlp_model()
    feeds = random_feeds(model, batch=2)
    out = interpreter.run(import_model(model), feeds, keep=["h0"])
    assert set(out) == {"y", "h0"} and out["h0"].shape == (2, 12)


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({}, "missing x"),
        ({"x": np.zeros((2, 4), F), "z": np.zeros(1)}, "unknown z"),
        ({"x": np.zeros((2, 5), F)}, "dimension 1 is 5"),
        ({"x": np.zeros((2, 4, 1), F)}, "got shape [2, 4, 1]"),
        ({"x": np.array([["a"] * 4])}, "got <U1 data"),
    ],
)
def test_bad_feeds_are_refused_with_a_message(feeds, message) -> None:
    graph = import_model(mlp_model())
    with pytest.raises(BadDataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        interpreter.run(graph, feeds)


def test_float64_feeds_are_cast_to_the_model_dtype() -> None:
    model = mlp_model()
    feeds = random_feeds(model)
    out64 = interpreter.run(import_model(model), {"x": feeds["x"].astype(np.float64)})
    np.testing.assert_array_equal(out64["y"], interpreter.run(import_model(model), feeds)["y"])


def test_out_of_range_index_names_the_node() -> None:
    nodes = [helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain="ai.onnx.ml", name="afe")]
    model = make_model(nodes, X2, ["y"], {"i": np.array([9], I64)}, ml_opset=1)
    with pytest.raises(BadDataError, match="node 'afe'"):
        interpreter.run(import_model(model), random_feeds(model))


# Both sides of every float8 range edge (E4M3FN max 448, E4M3FNUZ 240, E5M2 57344), infinities, NaN and -0.
# (Not 61440, the E5M2 rounding midpoint to infinity: onnxruntime 1.32 gives NaN there without saturate, where
# the ONNX spec and its reference give infinity.)
SPECIAL = np.array([0.0, -0.0, 0.3, -5.9, 241.0, 250.0, 449.0, 465.0, -500.0, 57344.0, 61439.0, 7e4, 1e6, -1e6,
                    np.inf, -np.inf, np.nan], F)


def _cast_round_trip(to: int, opset: int, size: int, **attrs: object):
    nodes = [helper.make_node("Cast", ["x"], ["q"], name="narrow", to=to, **attrs),
             helper.make_node("Cast", ["q"], ["y"], name="widen", to=TensorProto.FLOAT)]
    return make_model(nodes, {"x": (F, [size])}, ["y"], opset=opset)


@pytest.mark.parametrize("saturate", [None, 1, 0], ids=["default", "saturate", "no_saturate"])
@pytest.mark.parametrize("to", [TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2,
                                TensorProto.FLOAT8E5M2FNUZ], ids=TensorProto.DataType.Name)
def test_cast_to_float8_saturates_like_onnxruntime_and_the_spec(to, saturate) -> None:
    model = _cast_round_trip(to, 19, len(SPECIAL), **({} if saturate is None else {"saturate": saturate}))
    got = interpreter.run(import_model(model), {"x": SPECIAL})["y"]
    for want in (run_onnxruntime(model, {"x": SPECIAL})["y"], ReferenceEvaluator(model).run(None, {"x": SPECIAL})[0]):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    if saturate != 0:  # out of range, infinities included: the largest finite value, never inf or NaN
        assert np.isfinite(got[~np.isnan(SPECIAL)]).all()


def test_cast_to_float4_agrees_with_the_onnx_reference() -> None:
    # onnxruntime has no float4 Cast; float4 has no inf or NaN and saturates (to +-6), saturate or not
    x = SPECIAL[~np.isnan(SPECIAL)]
    model = _cast_round_trip(TensorProto.FLOAT4E2M1, 23, len(x))
    got = interpreter.run(import_model(model), {"x": x})["y"]
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, {"x": x})[0])


def test_bad_computed_slice_steps_name_the_node() -> None:
    # steps known only at run time: a 0 step is bad data, reported with the node, not a crash
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"], name="sl")]
    model = make_model(nodes, {"x": (F, ["N", 4]), "t": (I64, [1])}, ["y"],
                       {"s": np.array([0], I64), "e": np.array([2], I64), "a": np.array([1], I64)})
    graph = import_model(model)
    with pytest.raises(BadDataError, match=r"node 'sl' \(Slice\) fails on this data: a step is 0"):
        interpreter.run(graph, {"x": np.zeros((2, 4), F), "t": np.array([0], I64)})
    got = interpreter.run(graph, {"x": np.arange(8, dtype=F).reshape(2, 4), "t": np.array([2], I64)})["y"]
    np.testing.assert_array_equal(got, [[0], [4]])
