"""Numpy kernels of the digital ops whose type rules are in `lea_compiler.op_rules`.

Elementwise maths, variadic and comparison ops, reductions, and Pad, Slice, Split, Expand and Tile, each to
ONNX's semantics (opset 13 and later), vectorised over the whole batch. `lea_compiler.interpreter` puts
them in its `KERNELS`; the simulator runs them in the digital periphery like every other non-crossbar op.

Float kernels compute in the input's dtype, except Erf (and exact Gelu), which numpy lacks: `erf` evaluates
it in float64 to within 2e-15 of the true value (a Maclaurin series for |x| <= 2, the continued fraction of
erfc beyond) and rounds to the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lea_compiler.ir import Node
from lea_compiler.op_rules import (
    check_computed_size,
    check_pad,
    pad_widths,
    range_count,
    reduce_axes,
    slice_range,
    slice_spec,
    split_sizes,
)
from lea_compiler.shapes import ShapeError

Array = np.ndarray[Any, Any]
Kernel = Callable[[Node, list[Array | None]], list[Array]]

_SERIES_TERMS = 40
"""Maclaurin terms of erf for |x| <= 2: the last is below 1e-30."""
_FRACTION_TERMS = 60
"""Continued-fraction terms of erfc for |x| > 2: converged to double precision."""


def _arg(inputs: list[Array | None], index: int) -> Array:
    value = inputs[index] if index < len(inputs) else None
    assert value is not None, f"input {index} is required"
    return value


def _optional(inputs: list[Array | None], index: int) -> Array | None:
    return inputs[index] if index < len(inputs) else None


def _const(node: Node, name: str, default: float, x: Array) -> Array:
    """A float attribute as a scalar of x's dtype (so float32 stays float32)."""
    return np.asarray(node.attr(name, default), dtype=x.dtype)


# ----------------------------------------------------------------- unary
def erf(x: Array) -> Array:
    """The error function, elementwise, in x's dtype (computed in float64; see the module docstring)."""
    x = np.asarray(x)
    a = np.abs(x.astype(np.float64))
    small = a <= 2.0
    s = np.where(small, a, 0.0)
    sq = s * s
    term, total = s.copy(), s.copy()
    for n in range(1, _SERIES_TERMS):  # 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        term = term * (-sq) / n
        total = total + term / (2 * n + 1)
    series = total * (2.0 / math.sqrt(math.pi))
    b = np.where(small, 3.0, a)  # erfc(b) = exp(-b^2) / sqrt(pi) / (b + (1/2) / (b + 1 / (b + (3/2) / ...)))
    fraction = b.copy()
    for n in range(_FRACTION_TERMS, 0, -1):
        fraction = b + (n / 2.0) / fraction
    tail = 1.0 - np.exp(-b * b) / (math.sqrt(math.pi) * fraction)
    return np.copysign(np.where(small, series, tail), x).astype(x.dtype, copy=False)


def _gelu(node: Node, x: Array) -> Array:
    half = np.asarray(0.5, x.dtype)
    if node.attr("approximate", "none") == "tanh":
        inner = np.asarray(math.sqrt(2.0 / math.pi), x.dtype) * (x + np.asarray(0.044715, x.dtype) * x * x * x)
        return half * x * (1 + np.tanh(inner))
    return half * x * (1 + erf(x / np.asarray(math.sqrt(2.0), x.dtype)))


def _elu(node: Node, x: Array) -> Array:
    return np.where(x < 0, _const(node, "alpha", 1.0, x) * np.expm1(x), x)


def _selu(node: Node, x: Array) -> Array:
    alpha = _const(node, "alpha", 1.67326319217681884765625, x)
    gamma = _const(node, "gamma", 1.05070102214813232421875, x)
    return np.where(x > 0, gamma * x, gamma * alpha * np.expm1(x))


def _celu(node: Node, x: Array) -> Array:
    alpha = _const(node, "alpha", 1.0, x)
    return np.maximum(x, 0) + np.minimum(alpha * np.expm1(x / alpha), 0)


def _softplus(x: Array) -> Array:
    return np.logaddexp(np.zeros((), x.dtype), x)


def _hardswish(x: Array) -> Array:
    return x * np.clip(x / np.asarray(6, x.dtype) + np.asarray(0.5, x.dtype), 0, 1)


def _unary(fn: Callable[[Node, Array], Array]) -> Kernel:
    return lambda node, inputs: [fn(node, _arg(inputs, 0))]


def _plain(fn: Callable[[Array], Array]) -> Kernel:
    return lambda node, inputs: [fn(_arg(inputs, 0))]


UNARY: dict[str, Kernel] = {
    "Erf": _plain(erf),
    "Gelu": _unary(_gelu),
    "Elu": _unary(_elu),
    "Selu": _unary(_selu),
    "Celu": _unary(_celu),
    "Softplus": _plain(_softplus),
    "Softsign": _plain(lambda x: x / (1 + np.abs(x))),
    "HardSwish": _plain(_hardswish),
    "Mish": _plain(lambda x: x * np.tanh(_softplus(x))),
    "ThresholdedRelu": _unary(lambda n, x: np.where(x > _const(n, "alpha", 1.0, x), x, np.zeros((), x.dtype))),
    "Exp": _plain(np.exp),
    "Log": _plain(np.log),
    "Sqrt": _plain(np.sqrt),
    "Reciprocal": _plain(np.reciprocal),
    "Abs": _plain(np.abs),
    "Neg": _plain(np.negative),
    "Sign": _plain(np.sign),
    "Floor": _plain(np.floor),
    "Ceil": _plain(np.ceil),
    "Round": _plain(np.round),  # half to even, as ONNX
    "Not": _plain(np.logical_not),
}


# ---------------------------------------------------------------- binary
def _pow(node: Node, inputs: list[Array | None]) -> list[Array]:
    base, exponent = _arg(inputs, 0), _arg(inputs, 1)
    if base.dtype.kind in "iu":
        if exponent.dtype.kind in "iu" and not np.any(exponent < 0):
            return [np.power(base, exponent.astype(base.dtype))]
        return [np.power(base.astype(np.float64), exponent.astype(np.float64)).astype(base.dtype)]
    return [np.power(base, exponent.astype(base.dtype))]


def _prelu(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, slope = _arg(inputs, 0), _arg(inputs, 1)
    return [np.where(x < 0, x * slope, x)]


def _variadic(fn: Callable[[Array, Array], Array], mean: bool = False) -> Kernel:
    def kernel(node: Node, inputs: list[Array | None]) -> list[Array]:
        parts = [v for v in inputs if v is not None]
        result = parts[0]
        for part in parts[1:]:
            result = fn(result, part)
        if mean:
            result = result / np.asarray(len(parts), result.dtype)
        return [np.broadcast_to(result, np.broadcast_shapes(*(p.shape for p in parts))).copy()]
    return kernel


def _binary(fn: Callable[[Array, Array], Array]) -> Kernel:
    return lambda node, inputs: [fn(_arg(inputs, 0), _arg(inputs, 1))]


def _where(node: Node, inputs: list[Array | None]) -> list[Array]:
    return [np.where(_arg(inputs, 0), _arg(inputs, 1), _arg(inputs, 2))]


BINARY: dict[str, Kernel] = {
    "Pow": _pow,
    "PRelu": _prelu,
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Sum": _variadic(np.add),
    "Mean": _variadic(np.add, mean=True),
    "Equal": _binary(np.equal),
    "Less": _binary(np.less),
    "LessOrEqual": _binary(np.less_equal),
    "Greater": _binary(np.greater),
    "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and),
    "Or": _binary(np.logical_or),
    "Where": _where,
}


# ------------------------------------------------------------ reductions
def _lowest(dtype: np.dtype[Any]) -> Any:
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _highest(dtype: np.dtype[Any]) -> Any:
    if dtype.kind == "f":
        return np.inf
    if dtype.kind == "b":
        return True
    return np.iinfo(dtype).max


def _log_sum_exp(x: Array, axes: tuple[int, ...], keep: bool) -> Array:
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=axes, keepdims=keep))
    top = np.max(x, axis=axes, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    total = np.log(np.sum(np.exp(x - top), axis=axes, keepdims=True)) + top
    return total if keep else np.squeeze(total, axis=axes)


def _mean(x: Array, axes: tuple[int, ...], keep: bool) -> Array:
    if x.size == 0:  # ONNX leaves the mean of nothing undefined; onnxruntime gives 0, as the sum does
        return np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype)
    return np.mean(x, axis=axes, keepdims=keep, dtype=x.dtype)


REDUCTIONS: dict[str, Callable[[Array, tuple[int, ...], bool], Array]] = {
    "ReduceMean": _mean,
    "ReduceSum": lambda x, a, k: np.sum(x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_lowest(x.dtype)),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_highest(x.dtype)),
    "ReduceSumSquare": lambda x, a, k: np.sum(x * x, axis=a, keepdims=k, dtype=x.dtype),
    "ReduceL1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k, dtype=x.dtype),
    "ReduceL2": lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceLogSum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k, dtype=x.dtype)),
    "ReduceLogSumExp": _log_sum_exp,
}
"""Each Reduce* op as f(x, axes, keepdims); an empty axes tuple (noop_with_empty_axes) applies the op to each
element alone, as ONNX's reference does (ReduceSumSquare squares, ReduceMax copies)."""


def _reduce(fn: Callable[[Array, tuple[int, ...], bool], Array]) -> Kernel:
    def kernel(node: Node, inputs: list[Array | None]) -> list[Array]:
        x = _arg(inputs, 0)
        given = _optional(inputs, 1)
        axes = reduce_axes(node, None if given is None else [int(a) for a in given.reshape(-1)], x.ndim)
        return [np.asarray(fn(x, () if axes is None else axes, bool(node.attr("keepdims", 1))))]
    return kernel


# ------------------------------------------------------------------ shapes
def _pad(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, pads = _arg(inputs, 0), [int(p) for p in _arg(inputs, 1).reshape(-1)]
    value, axes = _optional(inputs, 2), _optional(inputs, 3)
    widths = pad_widths(x.ndim, pads, None if axes is None else [int(a) for a in axes.reshape(-1)])
    mode = node.attr("mode", "constant")
    for dim, (begin, end) in zip(x.shape, widths, strict=True):
        check_pad(mode, dim, begin, end)
    check_computed_size([d + b + e for d, (b, e) in zip(x.shape, widths, strict=True)], "the padded tensor")
    grow = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":  # element i is x[i - begin] where that exists, else the value: built at its own size
        fill = 0 if value is None or value.size == 0 else value.reshape(-1)[0]
        shape = [d + b + e for d, (b, e) in zip(x.shape, widths, strict=True)]
        out = np.full(shape, np.asarray(fill, x.dtype), dtype=x.dtype)
        source = [(max(0, -b), min(d, n - b)) for d, n, (b, _) in zip(x.shape, shape, widths, strict=True)]
        if all(lo < hi for lo, hi in source):
            out[tuple(slice(lo + b, hi + b) for (lo, hi), (b, _) in zip(source, widths, strict=True))] = \
                x[tuple(slice(lo, hi) for lo, hi in source)]
        return [out]
    # the modes that copy elements remove the negative pads' elements first, as onnxruntime does
    x = x[tuple(slice(-min(b, 0), x.shape[i] + min(e, 0)) for i, (b, e) in enumerate(widths))]
    return [np.pad(x, grow, mode=mode)]


def _slice(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _arg(inputs, 0)
    ints = [None if v is None else [int(i) for i in v.reshape(-1)] for v in (_optional(inputs, i) for i in range(1, 5))]
    starts, ends, axes, steps = ints
    assert starts is not None and ends is not None
    index: list[slice] = [slice(None)] * x.ndim
    for axis, start, end, step in slice_spec(node, x.ndim, starts, ends, axes, steps):
        kept = slice_range(x.shape[axis], start, end, step)
        index[axis] = slice(kept.start, None if kept.stop < 0 else kept.stop, kept.step)
    return [x[tuple(index)]]


def _split(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _arg(inputs, 0)
    given = _optional(inputs, 1)
    split = [int(s) for s in given.reshape(-1)] if given is not None else node.attr("split")
    axis = int(node.attr("axis", 0)) % x.ndim
    sizes = split_sizes(x.shape[axis], split, node.attr("num_outputs"), len(node.outputs))
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _expand(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, shape = _arg(inputs, 0), tuple(int(d) for d in _arg(inputs, 1).reshape(-1))
    out = np.broadcast_shapes(x.shape, shape)
    check_computed_size(out, "the expanded tensor")
    return [np.broadcast_to(x, out).copy()]


def _tile(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, repeats = _arg(inputs, 0), [int(r) for r in _arg(inputs, 1).reshape(-1)]
    if len(repeats) != x.ndim or any(r < 0 for r in repeats):
        raise ShapeError(f"repeats {repeats} do not fit an input of rank {x.ndim}")
    check_computed_size([d * r for d, r in zip(x.shape, repeats, strict=True)], "the tiled tensor")
    return [np.tile(x, repeats)]


def _layer_norm(node: Node, inputs: list[Array | None]) -> list[Array]:
    """Normalize over the axes from `axis` on, in float32 (stash_type 1), then scale and shift in X's dtype."""
    x, scale, bias = _arg(inputs, 0), _arg(inputs, 1), _optional(inputs, 2)
    axes = tuple(range(int(node.attr("axis", -1)) % x.ndim, x.ndim))
    x32 = x.astype(np.float32)
    mean = np.mean(x32, axis=axes, keepdims=True)
    diff = x32 - mean
    inv_std = np.reciprocal(np.sqrt(np.mean(diff * diff, axis=axes, keepdims=True) +
                                    np.float32(node.attr("epsilon", 1e-5))))
    y = (diff * inv_std).astype(x.dtype) * scale
    if bias is not None:
        y = y + bias
    return [y, mean, inv_std][: len(node.outputs)]


def _constant_of_shape(node: Node, inputs: list[Array | None]) -> list[Array]:
    value = node.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    shape = [int(d) for d in _arg(inputs, 0).reshape(-1)]
    if any(d < 0 for d in shape):
        raise ShapeError(f"shape {shape} has a negative dimension")
    check_computed_size(shape, "the constant")
    return [np.full(shape, fill[0], dtype=fill.dtype)]


def _range(node: Node, inputs: list[Array | None]) -> list[Array]:
    """start + i * delta in the inputs' type; float16 and bfloat16 (allowed from opset 27, which added
    `stash_type`) in float32 unless stash_type is 0."""
    start, limit, delta = (_arg(inputs, i).reshape(-1)[0] for i in range(3))
    dtype = _arg(inputs, 0).dtype
    narrow = dtype.itemsize == 2 and dtype.kind in "fV"
    work = np.dtype(np.float32) if narrow and int(node.attr("stash_type", 1)) == 1 else dtype
    count = range_count(start, limit, delta)
    check_computed_size([count], "the range")
    steps = np.arange(count).astype(work)
    return [(np.asarray(start, work) + steps * np.asarray(delta, work)).astype(dtype)]


SHAPES: dict[str, Kernel] = {
    "Pad": _pad, "Slice": _slice, "Split": _split, "Expand": _expand, "Tile": _tile,
    "LayerNormalization": _layer_norm, "ConstantOfShape": _constant_of_shape, "Range": _range,
    "Size": lambda node, inputs: [np.asarray(_arg(inputs, 0).size, dtype=np.int64)],
}

KERNELS: dict[tuple[str, str], Kernel] = {
    ("", op): kernel
    for table in (UNARY, BINARY, SHAPES, {op: _reduce(fn) for op, fn in REDUCTIONS.items()})
    for op, kernel in table.items()
}
"""Every kernel of this module, keyed like `lea_compiler.ops.OPS`."""
