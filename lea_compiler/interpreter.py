"""The digital reference: runs an IR graph on numpy arrays, a batch at a time.

Every op in `lea_compiler.ops.OPS` has one kernel in `KERNELS`, written to
the ONNX semantics of opset 13 and later and checked against onnxruntime in the
tests (and on ONNX's own conformance cases, tests/conformance.py); those of the
digital maths, reduction and slicing ops live in `lea_compiler.digital_kernels`.
Kernels are vectorised over the whole batch. Observers (`Listener`)
see every node's inputs and outputs as they are computed; the simulator builds
its cycle and energy accounting on them, so the functional meaning of a step
lives only here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lea_compiler import digital_kernels
from lea_compiler.dtypes import convert
from lea_compiler.errors import BadDataError
from lea_compiler.grouping import grouped_matmul
from lea_compiler.ir import Graph, Node, Value
from lea_compiler.ops import (
    LEAC_DOMAIN,
    ML_DOMAIN,
    OPS,
    SATURATING_FLOAT8,
    constant_value,
    onnx_dtype,
    shape_slice,
)
from lea_compiler.shapes import ShapeError, Window, window_of

Array = np.ndarray[Any, Any]
Kernel = Callable[[Node, list[Array | None]], list[Array]]


class Listener(Protocol):
    """Observes execution: called once per node with its input and output arrays."""

    def on_node(self, node: Node, inputs: Sequence[Array | None], outputs: Sequence[Array]) -> None: ...


# --------------------------------------------------------------- elementwise
def _x(inputs: list[Array | None], index: int = 0) -> Array:
    value = inputs[index] if index < len(inputs) else None
    assert value is not None, f"input {index} is required"
    return value


def _gemm(node: Node, inputs: list[Array | None]) -> list[Array]:
    a, b = _x(inputs, 0), _x(inputs, 1)
    if node.attr("transA", 0):
        a = a.T
    if node.attr("transB", 0):
        b = b.T
    y = a @ b
    alpha = node.attr("alpha", 1.0)
    if alpha != 1.0:
        y = y * np.asarray(alpha, dtype=y.dtype)
    c = inputs[2] if len(inputs) > 2 else None
    if c is not None:
        beta = node.attr("beta", 1.0)
        y = y + (c if beta == 1.0 else c * np.asarray(beta, dtype=c.dtype))
    return [y]


def _int_div(a: Array, b: Array) -> Array:
    quotient = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -quotient, quotient).astype(np.result_type(a, b))


def _div(node: Node, inputs: list[Array | None]) -> list[Array]:
    a, b = _x(inputs, 0), _x(inputs, 1)
    if a.dtype.kind in "iu":
        return [_int_div(a, b)]
    return [a / b]


def _sigmoid(x: Array) -> Array:
    # tanh form: no overflow for large |x|, unlike 1 / (1 + exp(-x))
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(x.dtype, copy=False)


def _clip(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    low = inputs[1] if len(inputs) > 1 else node.attr("min")
    high = inputs[2] if len(inputs) > 2 else node.attr("max")
    if low is not None:
        x = np.maximum(x, np.asarray(low, dtype=x.dtype))
    if high is not None:
        x = np.minimum(x, np.asarray(high, dtype=x.dtype))
    return [x]


def _softmax(x: Array, axis: int, log: bool) -> Array:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    if log:
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def _unary(fn: Callable[[Node, Array], Array]) -> Kernel:
    return lambda node, inputs: [fn(node, _x(inputs))]


def _binary(fn: Callable[[Array, Array], Array]) -> Kernel:
    return lambda node, inputs: [fn(_x(inputs, 0), _x(inputs, 1))]


# ------------------------------------------------------------ shape handling
def _flatten(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    axis = int(node.attr("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return [x.reshape(outer, int(np.prod(x.shape[axis:], dtype=np.int64)))]


def _reshape(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, target = _x(inputs, 0), [int(d) for d in _x(inputs, 1).reshape(-1)]
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return [x.reshape(target)]


def _axes(node: Node, inputs: list[Array | None]) -> list[int] | None:
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in inputs[1].reshape(-1)]
    return None


def _squeeze(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    axes = _axes(node, inputs)
    return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(a % x.ndim for a in axes))]


def _unsqueeze(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    axes = _axes(node, inputs) or []
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = np.expand_dims(x, a)
    return [x]


def _transpose(node: Node, inputs: list[Array | None]) -> list[Array]:
    perm = node.attr("perm")
    return [np.transpose(_x(inputs), None if perm is None else [int(p) for p in perm])]


def _concat(node: Node, inputs: list[Array | None]) -> list[Array]:
    return [np.concatenate([v for v in inputs if v is not None], axis=int(node.attr("axis")))]


def _dropout(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    outputs = [x]
    if len(node.outputs) > 1:
        outputs.append(np.ones(x.shape, dtype=bool))
    return outputs


def _cast(node: Node, inputs: list[Array | None]) -> list[Array]:
    return [cast_to(_x(inputs), int(node.attr("to")), bool(node.attr("saturate", 1)))]


def _castlike(node: Node, inputs: list[Array | None]) -> list[Array]:
    import onnx.helper  # here: importing onnx takes ~1 s, and only CastLike needs it here

    target = _x(inputs, 1).dtype
    to = onnx.TensorProto.STRING if target == np.dtype(object) else onnx.helper.np_dtype_to_tensor_dtype(target)
    return [cast_to(_x(inputs), to, bool(node.attr("saturate", 1)))]


def cast_to(x: Array, to: int, saturate: bool) -> Array:
    """ONNX Cast of `x` to the TensorProto type `to` (`saturate` for the float8 targets)."""
    target = onnx_dtype(to)
    if target == np.dtype(object):
        return np.array([_onnx_str(v) for v in x.ravel()], dtype=object).reshape(x.shape)
    if x.dtype == np.dtype(object):
        x = np.array([float(v) for v in x.ravel()]).reshape(x.shape)
    if to in SATURATING_FLOAT8 and saturate:
        import onnx.numpy_helper  # here: importing onnx takes ~1 s, and only float8 casts need it

        # out of range (infinities too) -> the largest finite value, as ONNX's reference does it
        return onnx.numpy_helper.saturate_cast(x, target)
    return x.astype(target)


def _onnx_str(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return format(float(v), ".9g")
    return str(v)


def _argmax(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    axis = int(node.attr("axis", 0)) % x.ndim
    keepdims = bool(node.attr("keepdims", 1))
    if node.attr("select_last_index", 0):
        flipped = np.flip(x, axis=axis)
        index = x.shape[axis] - 1 - np.argmax(flipped, axis=axis, keepdims=keepdims)
    else:
        index = np.argmax(x, axis=axis, keepdims=keepdims)
    return [index.astype(np.int64)]


# ------------------------------------------------------------------ windows
def pad_spatial(x: Array, window: Window, value: float, extra: tuple[int, int] = (0, 0)) -> Array:
    """Pad the two spatial axes of an NCHW tensor by the window's pads (plus `extra` at the end)."""
    top, left, bottom, right = window.pads
    widths = ((0, 0), (0, 0), (top, bottom + extra[0]), (left, right + extra[1]))
    if not any(any(w) for w in widths):
        return x
    return np.pad(x, widths, mode="constant", constant_values=value)


def window_view(xp: Array, window: Window, out_hw: tuple[int, int]) -> Array:
    """A strided (N, C, OH, OW, KH, KW) view of every window position over a padded NCHW tensor."""
    kh, kw = window.kernel
    dh, dw = window.dilations
    sh, sw = window.strides
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    view = sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
    view = view[:, :, :: sh, :: sw, :: dh, :: dw]
    return view[:, :, : out_hw[0], : out_hw[1]]


def _out_hw(x: Array, window: Window) -> tuple[tuple[int, int], tuple[int, int]]:
    """Output size and the extra end padding ceil_mode needs so every window is in bounds."""
    sizes: list[int] = []
    extra: list[int] = []
    for axis in range(2):
        size = x.shape[2 + axis]
        k, s, d = window.kernel[axis], window.strides[axis], window.dilations[axis]
        begin, end = window.pads[axis], window.pads[axis + 2]
        span = d * (k - 1) + 1
        room = size + begin + end - span
        count = (-(-room // s) if window.ceil_mode else room // s) + 1
        if window.ceil_mode and (count - 1) * s >= size + begin:
            count -= 1
        sizes.append(count)
        extra.append(max((count - 1) * s + span - (size + begin + end), 0))
    return (sizes[0], sizes[1]), (extra[0], extra[1])


def as_2d(x: Array) -> Array:
    """A 1-D window op's (N, C, L) input as the (N, C, 1, L) one of unit height its `Window` is for."""
    return x[:, :, None, :] if x.ndim == 3 else x


def _as_rank(y: Array, window: Window) -> Array:
    """A 2-D window op's (N, C, OH, OW) result at the node's own rank (1-D: OH is 1 and goes)."""
    return y[:, :, 0, :] if window.rank == 1 else y


def im2col(x: Array, window: Window) -> tuple[Array, tuple[int, int]]:
    """Patches of an NCHW (or NCL, as unit height) tensor as rows: (N * OH * OW, C * KH * KW), and (OH, OW).

    This is how a Conv becomes a matrix product; the row order matches a
    weight reshaped as (C_out, C_in * KH * KW), so the columns of one group
    of channels are contiguous.
    """
    x = as_2d(x)
    out_hw, extra = _out_hw(x, window)
    view = window_view(pad_spatial(x, window, 0.0, extra), window, out_hw)
    n, c = x.shape[:2]
    depth = c * window.kernel[0] * window.kernel[1]
    patches = view.transpose(0, 2, 3, 1, 4, 5).reshape(n * out_hw[0] * out_hw[1], depth)
    return patches, out_hw


def _conv(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, w = _x(inputs, 0), _x(inputs, 1)
    kernel = [int(k) for k in node.attr("kernel_shape", w.shape[2:])]
    window = window_of(node, x.shape[2:], kernel)
    patches, (oh, ow) = im2col(x, window)
    group = int(node.attr("group", 1))
    out_channels = w.shape[0]
    depth = patches.shape[1] // group  # each group's inputs: C/group x KH x KW contiguous patch columns
    y = grouped_matmul(patches.reshape(-1, group, depth), w.reshape(out_channels, depth).T)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + inputs[2]
    return [_as_rank(y.reshape(x.shape[0], oh, ow, out_channels).transpose(0, 3, 1, 2), window)]


def _pool_window(node: Node, x: Array) -> Window:
    return window_of(node, x.shape[2:], [int(k) for k in node.attr("kernel_shape")])


def _maxpool(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    window = _pool_window(node, x)
    x = as_2d(x)
    out_hw, extra = _out_hw(x, window)
    view = window_view(pad_spatial(x, window, -np.inf, extra), window, out_hw)
    return [_as_rank(view.max(axis=(4, 5)), window)]


def _avgpool(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    window = _pool_window(node, x)
    x = as_2d(x)
    out_hw, extra = _out_hw(x, window)
    total = window_view(pad_spatial(x, window, 0.0, extra), window, out_hw).sum(axis=(4, 5))
    # divisor: window cells inside the input, or inside input + declared pads
    inside = np.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    if node.attr("count_include_pad", 0):
        inside = pad_spatial(inside, window, 1.0)
        unpadded = Window(window.kernel, window.strides, window.dilations, (0, 0, 0, 0), window.ceil_mode)
        inside = np.pad(inside, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
        count = window_view(inside, unpadded, out_hw).sum(axis=(4, 5))
    else:
        count = window_view(pad_spatial(inside, window, 0.0, extra), window, out_hw).sum(axis=(4, 5))
    return [_as_rank((total / count).astype(x.dtype, copy=False), window)]


def _global_avgpool(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=x.dtype)]


def _batchnorm(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, scale, bias, mean, var = (_x(inputs, i) for i in range(5))
    eps = np.asarray(node.attr("epsilon", 1e-5), dtype=x.dtype)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    factor = scale / np.sqrt(var + eps)
    return [(x - mean.reshape(shape)) * factor.reshape(shape) + bias.reshape(shape)]


def _array_feature_extractor(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, index = _x(inputs, 0), _x(inputs, 1).reshape(-1)
    width = x.shape[-1]
    if index.size and (index.min() < 0 or index.max() >= width):
        raise IndexError(f"index {int(index.max() if index.max() >= width else index.min())} is outside 0..{width - 1}")
    out = x[..., index]
    return [out.reshape(1, -1) if x.ndim == 1 else out]


def _shape(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    start, end = shape_slice(node, x.ndim)
    return [np.asarray(x.shape[start:end], dtype=np.int64)]


def _mvm(node: Node, inputs: list[Array | None]) -> list[Array]:
    x, w = _x(inputs, 0), _x(inputs, 1)
    # grouped (`leac.MVM` in ops.py): x is (..., G, K), each group's vector times its own columns only
    y = grouped_matmul(x, w) if int(node.attr("groups", 1)) > 1 else x @ w
    bias = inputs[2] if len(inputs) > 2 else None
    return [y if bias is None else y + bias]


def _patches(node: Node, inputs: list[Array | None]) -> list[Array]:
    x = _x(inputs)
    window = window_of(node, x.shape[2:], [int(k) for k in node.attr("kernel_shape")])
    patches, (oh, ow) = im2col(x, window)
    pixels = (ow,) if window.rank == 1 else (oh, ow)
    groups = int(node.attr("groups", 1))  # (..., G, C/G KH KW): each group's patch its own vector
    depth = (groups, patches.shape[1] // groups) if groups > 1 else (patches.shape[1],)
    return [patches.reshape(x.shape[0], *pixels, *depth)]


KERNELS: dict[tuple[str, str], Kernel] = {
    ("", "Gemm"): _gemm,
    ("", "MatMul"): _binary(np.matmul),
    ("", "Add"): _binary(np.add),
    ("", "Sub"): _binary(np.subtract),
    ("", "Mul"): _binary(np.multiply),
    ("", "Div"): _div,
    ("", "Relu"): _unary(lambda n, x: np.maximum(x, np.zeros((), x.dtype))),
    ("", "LeakyRelu"): _unary(lambda n, x: np.where(x >= 0, x, x * np.asarray(n.attr("alpha", 0.01), x.dtype))),
    ("", "Tanh"): _unary(lambda n, x: np.tanh(x)),
    ("", "Sigmoid"): _unary(lambda n, x: _sigmoid(x)),
    ("", "Clip"): _clip,
    ("", "HardSigmoid"): _unary(
        lambda n, x: np.clip(
            x * np.asarray(n.attr("alpha", 0.2), x.dtype) + np.asarray(n.attr("beta", 0.5), x.dtype), 0, 1
        ).astype(x.dtype)
    ),
    ("", "Softmax"): _unary(lambda n, x: _softmax(x, int(n.attr("axis", -1)), log=False)),
    ("", "LogSoftmax"): _unary(lambda n, x: _softmax(x, int(n.attr("axis", -1)), log=True)),
    ("", "Flatten"): _flatten,
    ("", "Reshape"): _reshape,
    ("", "Squeeze"): _squeeze,
    ("", "Unsqueeze"): _unsqueeze,
    ("", "Transpose"): _transpose,
    ("", "Concat"): _concat,
    ("", "Identity"): _unary(lambda n, x: x),
    ("", "Dropout"): _dropout,
    ("", "Cast"): _cast,
    ("", "CastLike"): _castlike,
    ("", "ArgMax"): _argmax,
    ("", "Conv"): _conv,
    ("", "BatchNormalization"): _batchnorm,
    ("", "MaxPool"): _maxpool,
    ("", "AveragePool"): _avgpool,
    ("", "GlobalAveragePool"): _global_avgpool,
    ("", "Constant"): lambda node, inputs: [constant_value(node)],
    ("", "Shape"): _shape,
    ("", "Gather"): lambda node, inputs: [np.take(_x(inputs, 0), _x(inputs, 1), axis=int(node.attr("axis", 0)))],
    (ML_DOMAIN, "ArrayFeatureExtractor"): _array_feature_extractor,
    (LEAC_DOMAIN, "MVM"): _mvm,
    (LEAC_DOMAIN, "Patches"): _patches,
    **digital_kernels.KERNELS,
}

assert KERNELS.keys() == OPS.keys(), "every op in OPS needs exactly one kernel"


def check_feeds(graph: Graph, feeds: Mapping[str, Any]) -> dict[str, Array]:
    """Match `feeds` to the graph inputs: names, ranks, known dimensions; dtypes converted by `dtypes.convert`.

    Raises:
        BadDataError: a missing or unknown input, or an array that does not fit.
    """
    expected = {v.name: v for v in graph.inputs}
    unknown = sorted(set(feeds) - set(expected))
    missing = [name for name in expected if name not in feeds]
    if unknown or missing:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unknown:
            parts.append("unknown " + ", ".join(unknown))
        raise BadDataError(f"inputs do not match the model ({'; '.join(parts)}); it takes {', '.join(expected)}")
    checked: dict[str, Array] = {}
    for name, value in expected.items():
        array = np.asarray(feeds[name])
        checked[name] = _fit(value, array)
    return checked


def _fit(value: Value, array: Array) -> Array:
    array = convert(array, value.dtype, f"input {value.name}")
    if value.shape is not None:
        if array.ndim != len(value.shape):
            raise BadDataError(f"input {value.name}: got shape {list(array.shape)}, the model takes {value.type_str()}")
        for axis, (got, want) in enumerate(zip(array.shape, value.shape, strict=True)):
            if isinstance(want, int) and got != want:
                raise BadDataError(
                    f"input {value.name}: dimension {axis} is {got}, the model takes {value.type_str()}"
                )
    return array


def run(
    graph: Graph,
    feeds: Mapping[str, Any],
    *,
    listeners: Sequence[Listener] = (),
    keep: Sequence[str] = (),
    kernels: Mapping[str, Kernel] | None = None,
) -> dict[str, Array]:
    """Run `graph` on `feeds` (graph input name -> batch array) and return its outputs by name.

    Intermediate arrays are freed after their last reader, except the values
    named in `keep`, which are returned too. `kernels` replaces the kernel of
    the nodes it names (the simulator runs crossbar layers this way and
    everything else exactly as here).

    Raises:
        BadDataError: the feeds do not fit the graph's inputs, or a node fails
            on this data (the message names the node).
    """
    env: dict[int, Array] = {}
    for value, array in zip(graph.inputs, check_feeds(graph, feeds).values(), strict=True):
        env[id(value)] = array
    for value in graph.initializers.values():
        assert value.const is not None
        env[id(value)] = value.const
    wanted = {id(v) for v in graph.outputs} | {id(graph.value(name)) for name in keep}
    remaining = {id(v): len(v.uses) for v in graph.values()}
    for node in graph.nodes:
        args = [None if v is None else env[id(v)] for v in node.inputs]
        kernel = (kernels or {}).get(node.name) or KERNELS[(node.domain, node.op_type)]
        try:
            with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
                results = kernel(node, args)
        except (ValueError, IndexError, TypeError, ZeroDivisionError, ShapeError) as exc:
            raise BadDataError(f"{node.describe()} fails on this data: {exc}") from None
        outs = []
        for value, result in zip(node.outputs, results, strict=True):
            result = np.asarray(result)
            if result.dtype != value.dtype:
                result = result.astype(value.dtype)
            env[id(value)] = result
            outs.append(result)
        for listener in listeners:
            listener.on_node(node, args, outs)
        for read in node.inputs:
            if read is None:
                continue
            remaining[id(read)] -= 1
            if remaining[id(read)] == 0 and id(read) not in wanted and not read.is_const:
                env.pop(id(read), None)
    names = [v.name for v in graph.outputs] + [n for n in keep if n not in {v.name for v in graph.outputs}]
    return {name: env[id(graph.value(name))] for name in names}
