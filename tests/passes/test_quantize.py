"""quantize: level pairs, scales and errors (property tests with hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lea_compiler.errors import CompileError, UsageError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.passes.quantize import (
    PairCode,
    Quantize,
    QuantizedLayer,
    choose_scale,
    joint_mean,
    pair_noise_variance,
    quantize_matrix,
)
from tests.helpers import mlp_model

PAPER_LEVELS = (133.0, 167.0, 200.0, 233.0)

matrices = arrays(
    np.float64,
    st.tuples(st.integers(1, 12), st.integers(1, 9)),
    elements=st.floats(-4, 4, allow_nan=False, width=32),
)
level_sets = st.lists(st.floats(1, 1000, allow_nan=False), min_size=2, max_size=6, unique=True).map(
    lambda v: tuple(sorted(v))
).filter(lambda v: min(np.diff(v)) > 1e-3)


def test_simple_code_for_the_papers_levels() -> None:
    code = PairCode.build(PAPER_LEVELS, "simple")
    np.testing.assert_allclose(code.diffs_uS, [-100, -67, -34, 0, 34, 67, 100])
    assert code.pos.tolist() == [0, 0, 0, 0, 1, 2, 3] and code.neg.tolist() == [3, 2, 1, 0, 0, 0, 0]


def test_rme_prefers_the_lowest_total_conductance() -> None:
    code = PairCode.build((100.0, 150.0, 200.0), "rme")
    np.testing.assert_allclose(code.diffs_uS, [-100, -50, 0, 50, 100])
    assert list(zip(code.pos.tolist(), code.neg.tolist(), strict=True)) == [(0, 2), (0, 1), (0, 0), (1, 0), (2, 0)]


def test_rme_reaches_more_differences_with_uneven_levels() -> None:
    levels = (100.0, 130.0, 200.0)
    assert len(PairCode.build(levels, "rme").diffs_uS) > len(PairCode.build(levels, "simple").diffs_uS)


@settings(max_examples=60, deadline=None)
@given(matrices, st.sampled_from(["simple", "rme"]), level_sets, st.booleans())
def test_levels_are_valid_and_error_is_consistent(matrix, encoding, levels, per_layer) -> None:
    q = quantize_matrix(matrix, levels, encoding, per_layer, bias_row=False)
    assert q.pos.dtype == np.int8 and q.pos.shape == matrix.shape
    assert q.pos.min() >= 0 and q.pos.max() < len(levels) and q.neg.min() >= 0 and q.neg.max() < len(levels)
    error = matrix - q.dequantized()
    assert q.max_error == pytest.approx(np.max(np.abs(error)), abs=1e-9)
    assert q.rms_error == pytest.approx(np.sqrt(np.mean(error**2)), abs=1e-9)
    if encoding == "simple":  # one device of every pair sits at the lowest level
        assert np.all((q.pos == 0) | (q.neg == 0))
    if per_layer:
        assert np.all(q.scale == q.scale[0])


@settings(max_examples=60, deadline=None)
@given(matrices, level_sets)
def test_chosen_scale_beats_the_no_clipping_scale(matrix, levels) -> None:
    code = PairCode.build(levels, "simple")
    scale = choose_scale(matrix, code, per_layer=False)
    amax = np.max(np.abs(matrix), axis=0)
    plain = np.where(amax > 0, np.max(code.diffs_uS) / np.where(amax > 0, amax, 1), scale)

    def col_error(s):
        return np.sum((matrix - code.diffs_uS[code.nearest(matrix * s)] / s) ** 2, axis=0)

    assert np.all(col_error(scale) <= col_error(plain) + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 10), st.integers(1, 10), st.floats(0.01, 10), st.integers(0, 2**32 - 1))
def test_ternary_weights_quantize_exactly(rows, cols, a, seed) -> None:
    rng = np.random.default_rng(seed)
    matrix = a * rng.integers(-1, 2, size=(rows, cols)).astype(np.float64)
    q = quantize_matrix(matrix, PAPER_LEVELS, "simple", per_layer=True, bias_row=False)
    assert q.max_error <= 1e-9 * a


def test_pass_attaches_facts_and_bias_row_option() -> None:
    graph = Canonicalize().run(import_model(mlp_model()))
    Quantize(PAPER_LEVELS, bias="row").run(graph)
    facts = [n.fact(QuantizedLayer) for n in graph.nodes_of("MVM")]
    assert [f.shape for f in facts] == [(5, 12), (13, 6), (7, 3)] and all(f.bias_row for f in facts)
    graph = Canonicalize().run(import_model(mlp_model()))
    Quantize(PAPER_LEVELS).run(graph)
    assert [n.fact(QuantizedLayer).shape for n in graph.nodes_of("MVM")] == [(4, 12), (12, 6), (6, 3)]


def test_pass_needs_canonicalize_first() -> None:
    with pytest.raises(CompileError, match="run canonicalize first"):
        Quantize(PAPER_LEVELS).run(import_model(mlp_model()))


@pytest.mark.parametrize("kwargs, message", [({"encoding": "fancy"}, "unknown encoding"),
                                             ({"scale": "per-row"}, "unknown scale"),
                                             ({"bias": "both"}, "unknown bias")])
def test_bad_options_are_refused(kwargs, message) -> None:
    with pytest.raises(CompileError, match=message):
        Quantize(PAPER_LEVELS, **kwargs)


# Found by the fuzzer (tests/fuzzing.py): an infinite Gemm alpha was a CompileError (exit 1) after a numpy
# warning on stderr (0 x inf), and an infinite digital bias compiled into a Program `leac emit` then crashed on.
@pytest.mark.parametrize("change", ["alpha_inf", "weight_inf", "bias_inf"])
def test_nan_or_infinite_weights_or_bias_are_invalid_input(change: str) -> None:
    import math
    import warnings

    from onnx import helper, numpy_helper

    from lea_compiler.errors import InvalidModelError

    model = mlp_model()
    if change == "alpha_inf":
        model.graph.node[0].attribute.append(helper.make_attribute("alpha", math.inf))
        weights = numpy_helper.to_array(model.graph.initializer[0]).copy()
        weights[0, 0] = 0.0  # 0 x inf: NaN
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weights, "W0"))
    else:
        init = model.graph.initializer[0 if change == "weight_inf" else 1]  # W0 or b0
        values = numpy_helper.to_array(init).copy()
        values.flat[0] = math.inf
        init.CopyFrom(numpy_helper.from_array(values, init.name))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # folding alpha into the weights must not warn either
        graph = Canonicalize().run(import_model(model))
    with pytest.raises(InvalidModelError, match="fc0.*contain NaN or infinity"):
        Quantize(PAPER_LEVELS).run(graph)


@pytest.mark.parametrize("encoding", ["simple", "rme", "joint"])
def test_a_column_of_vanishing_weights_gets_a_finite_scale(encoding) -> None:
    # d_max / 2.2e-308 overflows: the column must quantize to zeros, not to inf / NaN targets (found by hypothesis)
    matrix = np.array([[2.2250738585072014e-308, 1.0], [0.0, -0.5]])
    q = quantize_matrix(matrix, PAPER_LEVELS, encoding, per_layer=False, bias_row=False, copies=2)
    assert np.all(np.isfinite(q.scale)) and np.isfinite(q.rms_error)
    np.testing.assert_array_equal(q.dequantized()[:, 0], [0.0, 0.0])
    if q.exact_uS is not None:
        assert np.all(np.isfinite(q.exact_uS))


def _objective(w: np.ndarray, s: float, code: PairCode, copies: int, noise: float) -> float:
    """Squared error of one column's averaged weights at scale s: quantization plus noise (by hand)."""
    held = joint_mean(w * s, code, copies) if code.encoding == "joint" else code.diffs_uS[code.nearest(w * s)]
    return float(np.sum((w - held / s) ** 2) + len(w) * noise / (copies * s**2))


def test_the_noise_aware_scale_minimises_quantization_plus_noise_error() -> None:
    # independent reference: the objective evaluated by hand on the same grid of clipping points
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((30, 4)) * np.array([1.0, 0.1, 3.0, 1.0])
    matrix[0, 3] = 8.0  # an outlier: with noise it pays to clip it
    levels = np.asarray(PAPER_LEVELS)
    noise = pair_noise_variance(16.66, 10.0)
    assert noise == pytest.approx(2 * 16.66**2 + 2 * 10.0**2 / 3)
    for encoding, copies in (("simple", 1), ("simple", 4), ("joint", 4)):
        code = PairCode.build(PAPER_LEVELS, encoding)
        d_max = float(levels[-1] - levels[0])
        quiet = quantize_matrix(matrix, PAPER_LEVELS, encoding, False, False, copies=copies)
        noisy = quantize_matrix(matrix, PAPER_LEVELS, encoding, False, False, copies=copies, noise_uS2=noise)
        assert np.all(noisy.scale >= quiet.scale)  # noise never asks for finer steps, only for more clipping
        assert noisy.scale[3] > quiet.scale[3]
        for j in range(matrix.shape[1]):
            w = matrix[:, j]
            grid = [d_max / (t * np.abs(w).max()) for t in np.linspace(0.2, 1.0, 81)]
            values = [_objective(w, s, code, copies, noise) for s in grid]
            assert _objective(w, noisy.scale[j], code, copies, noise) <= min(values) * (1 + 1e-9)


def test_scale_noise_option_feeds_the_chips_noise_to_quantize() -> None:
    from lea_compiler.chip import DeviceModel
    from lea_compiler.pipeline import CompileOptions, front_passes

    device = DeviceModel(write_noise_uS=5.0, read_noise_uS=3.0)
    default = front_passes(CompileOptions(), device)[-1]
    chip = front_passes(CompileOptions(scale_noise="chip"), device)[-1]
    assert isinstance(default, Quantize) and isinstance(chip, Quantize)
    assert default.noise_uS2 == 0.0 and chip.noise_uS2 == pytest.approx(2 * 25 + 2 * 9 / 3)
    with pytest.raises(UsageError, match="unknown scale noise 'loud'; choose one of none, chip"):
        CompileOptions(scale_noise="loud")
    with pytest.raises(CompileError, match="noise variance must be finite and non-negative"):
        Quantize(PAPER_LEVELS, noise_uS2=-1.0)
