"""The digital kernels of lea_compiler/digital_kernels.py against independent references: math.erf, hand-computed
Slice clamping, and onnxruntime on seeded random Slice, Pad, Split and Reduce* cases (where onnxruntime refuses
a case, leac must refuse it too, with an error of its own)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from lea_compiler import interpreter
from lea_compiler.digital_kernels import erf
from lea_compiler.errors import BadDataError, InvalidInputError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.reference import run_onnxruntime
from tests.helpers import make_model

F = np.float32
I64 = np.int64
BIG = np.iinfo(I64).max


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_erf_matches_math_erf(dtype) -> None:
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 1e-30, -1e-30, 2.0, 1.9999999, 2.0000001, 40.0,
                                                    -40.0]]).astype(dtype)
    want = np.array([math.erf(float(v)) for v in x])
    got = erf(x)
    assert got.dtype == dtype
    # float64: within 4 ulp of 1; narrower types: correctly rounded but for ties (one ulp)
    tolerance = 4 * np.finfo(np.float64).eps if dtype == np.float64 else np.finfo(dtype).eps
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=tolerance, atol=tolerance)
    assert np.signbit(erf(np.array([-0.0]))[0])
    assert erf(np.array([np.inf, -np.inf])).tolist() == [1.0, -1.0] and np.isnan(erf(np.array([np.nan]))[0])


def _agree_or_both_refuse(model, feeds, what: str) -> None:
    """leac's output is onnxruntime's, or both refuse."""
    try:
        want = run_onnxruntime(model, feeds)["y"]
    except InvalidInputError:
        want = None
    try:
        got = interpreter.run(import_model(model), feeds)["y"]
    except (InvalidInputError, BadDataError) as exc:
        assert want is None, f"{what}: leac refuses ({exc}), onnxruntime gives {want}"
        return
    assert want is not None, f"{what}: onnxruntime refuses, leac gives {got}"
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.shape} vs {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)


def _index(rng: np.random.Generator, step: int) -> int:
    """A start or end: mostly small (beyond the axis too), sometimes the INT64 extreme for "to the end", the way
    the spec recommends it (INT64_MAX forward, INT64_MIN backward)."""
    if rng.random() < 0.2:
        return int(BIG if step > 0 else -BIG - 1)
    return int(rng.integers(-7, 8))


def test_random_slices_match_onnxruntime() -> None:
    rng = np.random.default_rng(20)
    for case in range(40):
        shape = [int(d) for d in rng.integers(1, 6, size=rng.integers(1, 4))]
        axes = [int(a) for a in rng.permutation(len(shape))[: rng.integers(1, len(shape) + 1)]]
        axes = [a - len(shape) if rng.random() < 0.3 else a for a in axes]
        steps = [int(rng.choice([-3, -2, -1, 1, 2, 3])) for _ in axes]
        starts, ends = [_index(rng, t) for t in steps], [_index(rng, t) for t in steps]
        inits = {"s": np.array(starts, I64), "e": np.array(ends, I64), "a": np.array(axes, I64),
                 "t": np.array(steps, I64)}
        model = make_model([helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"], name="sl")],
                           {"x": (F, shape)}, ["y"], inits)
        x = rng.standard_normal(shape).astype(F)
        _agree_or_both_refuse(model, {"x": x}, f"case {case}: {shape} {inits}")


@pytest.mark.parametrize("start, end, step, kept", [
    (-6, -7, -1, [0]),  # start -3 -> clamped to 0, end -4 -> clamped to -1: element 0 (onnxruntime too; ONNX's
                        # reference evaluator slices as Python does and keeps nothing)
    (-5, BIG, -1, []),  # start 0, end clamped to 2: nothing from 0 down to 2 (onnxruntime keeps element 0)
    (BIG, -BIG - 1, -2, [2, 0]),  # start clamped to 2, end to -1
    (-BIG - 1, BIG, 2, [0, 2]),
    (1, 1, 1, []),
])
def test_slice_clamps_as_the_spec_says(start, end, step, kept) -> None:
    # ONNX Slice: negative start/end count from the end, then start is clamped to [0, dim] ([0, dim - 1] for a
    # negative step) and end to [0, dim] ([-1, dim - 1]); an axis of 3 elements here
    model = make_model([helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"], name="sl")],
                       {"x": (F, [2, 3])}, ["y"], {"s": np.array([start], I64), "e": np.array([end], I64),
                                                   "a": np.array([1], I64), "t": np.array([step], I64)})
    x = np.arange(6, dtype=F).reshape(2, 3)
    graph = import_model(model)
    assert graph.outputs[0].shape == (2, len(kept))
    np.testing.assert_array_equal(interpreter.run(graph, {"x": x})["y"], x[:, kept])


def test_random_pads_match_onnxruntime() -> None:
    rng = np.random.default_rng(21)
    for case in range(40):
        shape = [int(d) for d in rng.integers(1, 5, size=rng.integers(1, 4))]
        mode = str(rng.choice(["constant", "reflect", "edge", "wrap"]))
        pads = [int(p) for p in rng.integers(-2, 5, size=2 * len(shape))]
        model = make_model([helper.make_node("Pad", ["x", "p", "v"], ["y"], name="pad", mode=mode)],
                           {"x": (F, shape)}, ["y"], {"p": np.array(pads, I64), "v": np.array(2.5, F)}, opset=19)
        x = rng.standard_normal(shape).astype(F)
        try:
            model_ok = import_model(model) is not None
        except InvalidInputError:
            model_ok = False  # a pad leac refuses up front: onnxruntime must refuse to run it too
        if not model_ok:
            with pytest.raises(InvalidInputError):
                run_onnxruntime(model, {"x": x})
            continue
        _agree_or_both_refuse(model, {"x": x}, f"case {case}: {shape} {mode} {pads}")


def test_random_splits_and_reductions_match_onnxruntime() -> None:
    rng = np.random.default_rng(22)
    reductions = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                  "ReduceSumSquare", "ReduceLogSumExp"]
    for case in range(40):
        shape = [int(d) for d in rng.integers(1, 5, size=rng.integers(1, 4))]
        op = reductions[case % len(reductions)]
        axes = [int(a) for a in rng.permutation(len(shape))[: rng.integers(0, len(shape) + 1)]]
        attrs = {"keepdims": int(rng.integers(0, 2)), "noop_with_empty_axes": int(rng.integers(0, 2))}
        model = make_model([helper.make_node(op, ["x", "a"], ["y"], name="r", **attrs)], {"x": (F, shape)}, ["y"],
                           {"a": np.array(axes, I64)}, opset=18)
        x = rng.uniform(0.5, 1.5, shape).astype(F) * rng.choice([-1, 1], shape).astype(F)
        _agree_or_both_refuse(model, {"x": x}, f"case {case}: {op} {shape} axes {axes} {attrs}")
    for _ in range(20):
        dim = int(rng.integers(1, 9))
        outputs = int(rng.integers(1, 4))
        names = [f"o{i}" for i in range(outputs)]
        model = make_model([helper.make_node("Split", ["x"], names, name="s", axis=1, num_outputs=outputs),
                            helper.make_node("Concat", names[::-1], ["y"], name="c", axis=1)],
                           {"x": (F, [2, dim])}, ["y"], opset=18)
        x = rng.standard_normal((2, dim)).astype(F)
        try:
            graph = import_model(model)
        except InvalidInputError:
            continue  # split_sizes refuses what ONNX leaves undefined; checked in test_onnx_frontend
        np.testing.assert_array_equal(interpreter.run(graph, {"x": x})["y"], run_onnxruntime(model, {"x": x})["y"])


def test_exploding_ranges_are_refused_before_anything_is_built() -> None:
    # constant inputs: refused by the front end before ONNX's shape inference (which would build the range);
    # inputs known only at run time: the kernels refuse before allocating
    nodes = [helper.make_node("Range", ["a", "b", "d"], ["r"], name="r"),
             helper.make_node("Add", ["x", "r"], ["y"], name="add")]
    inits = {"a": np.array(0, F), "d": np.array(1, F)}
    with pytest.raises(InvalidInputError, match=r"node 'r' \(Range\) makes 1000000000 elements, more than leac "
                                                r"handles \(16777216\)"):
        import_model(make_model(nodes, {"x": (F, ["N", 1])}, ["y"], inits | {"b": np.array(1e9, F)}))
    with pytest.raises(InvalidInputError, match=r"node 'r' \(Range\): delta is 0"):
        import_model(make_model(nodes, {"x": (F, ["N", 1])}, ["y"], inits | {"b": np.array(5, F),
                                                                                "d": np.array(0, F)}))
    graph = import_model(make_model(nodes, {"x": (F, ["N", 1]), "b": (F, [])}, ["y"], inits))
    with pytest.raises(BadDataError, match=r"node 'r' \(Range\) fails on this data: the range would hold "
                                           r"1000000000 elements"):
        interpreter.run(graph, {"x": np.zeros((2, 1), F), "b": np.array(1e9, F)})
    np.testing.assert_array_equal(interpreter.run(graph, {"x": np.zeros((1, 1), F), "b": np.array(3, F)})["y"],
                                  [[0, 1, 2]])


@pytest.mark.parametrize("op, inputs, feeds", [
    ("Expand", ["x", "s"], {"s": np.array([1, 10**9], I64)}),
    ("Tile", ["x", "s"], {"s": np.array([1, 10**9], I64)}),
    ("Pad", ["x", "s"], {"s": np.array([0, 0, 0, 10**9], I64)}),
])
def test_computed_sizes_are_bounded(op, inputs, feeds) -> None:
    width = len(next(iter(feeds.values())))
    model = make_model([helper.make_node(op, inputs, ["y"], name="n")], {"x": (F, ["N", 1]), "s": (I64, [width])},
                       ["y"])
    graph = import_model(model)
    with pytest.raises(BadDataError, match=rf"node 'n' \({op}\) fails on this data: the \w+ tensor would hold "):
        interpreter.run(graph, {"x": np.zeros((2, 1), F), **feeds})


@pytest.mark.parametrize("pads, shape", [
    ([0, 10**8, 0, -10**8], (2, 1)),  # padded and cropped back on one axis: the output is x's size
    ([0, 0, -2, 10**8], (0, 10**8 + 1)),  # one axis cropped to nothing, another padded: no element at all
])
def test_constant_pads_allocate_only_the_output(pads, shape) -> None:
    import tracemalloc

    model = make_model([helper.make_node("Pad", ["x", "s"], ["y"], name="n")], {"x": (F, ["N", 1]),
                                                                               "s": (I64, [4])}, ["y"])
    graph = import_model(model)
    tracemalloc.start()
    try:
        y = interpreter.run(graph, {"x": np.ones((2, 1), F), "s": np.array(pads, I64)})["y"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.shape == shape and not np.any(y) and peak < 1 << 20  # what padding first would take: 800 MB


def test_the_mean_of_nothing_is_zero_as_onnxruntime_gives_it() -> None:
    model = make_model([helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="n", keepdims=0)],
                       {"x": (F, ["N", "M"])}, ["y"], {"axes": np.array([1], I64)}, opset=18)
    x = np.zeros((2, 0), F)
    y = interpreter.run(import_model(model), {"x": x})["y"]
    np.testing.assert_array_equal(y, run_onnxruntime(model, {"x": x})["y"])
    assert y.shape == (2,) and not np.any(y)
