"""The operators leac understands: one schema per op with its output type rule.

`OPS` is the explicit registry, keyed by (domain, op type); the ONNX front end
refuses any op not in it, the interpreter has one kernel per entry, and the IR
verifier uses each schema's `infer` to check that recorded shapes and dtypes
are consistent. The rules of the digital-only maths, reduction and slicing ops
are in `lea_compiler.op_rules`. Semantics follow ONNX opset 13 and later
(older models are converted by the front end).

Shape rules work on symbolic dimensions: an int is known, a string is a named
dimension (the batch size, usually), None is unknown. A rule never guesses: a
dimension it cannot derive is None, and the verifier only compares dimensions
that both sides know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from lea_compiler import op_rules
from lea_compiler.op_rules import const_ints as _const_ints
from lea_compiler.op_rules import input_of as _in
from lea_compiler.op_rules import reduce_rule
from lea_compiler.shapes import (
    Dim,
    Shape,
    ShapeError,
    broadcast,
    merge_dim,
    normalize_axis,
    product,
    sum_dims,
    window_of,
    window_output,
)

if TYPE_CHECKING:  # the IR's verifier imports this module; the rules only read the nodes they are given
    from lea_compiler.ir import Node, Value

TypeRule: TypeAlias = "Callable[[Node], list[tuple[np.dtype[Any], Shape]]]"

ML_DOMAIN = "ai.onnx.ml"
LEAC_DOMAIN = "leac"
"""leac's own ops, made by the canonicalize pass; never read from or written to ONNX."""


@dataclass(frozen=True)
class OpSchema:
    """What leac knows about one op: where it lives and how its output types follow."""

    domain: str
    op_type: str
    infer: TypeRule
    min_inputs: int
    max_inputs: int
    max_outputs: int = 1

    @property
    def qualified(self) -> str:
        return f"{self.domain}.{self.op_type}" if self.domain else self.op_type


def onnx_dtype(elem_type: int) -> np.dtype[Any]:
    """The numpy dtype of an ONNX TensorProto element type (strings are object)."""
    import onnx  # here: importing onnx takes ~1 s, and only Cast nodes and the front end need it

    if elem_type == onnx.TensorProto.STRING:
        return np.dtype(object)
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


# ------------------------------------------------------------------- helpers
def _same(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    return [(x.dtype, x.shape)]


def _binary(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    a, b = _in(node, 0), _in(node, 1)
    if a.dtype != b.dtype:
        raise ShapeError(f"input types {a.dtype} and {b.dtype} differ")
    return [(a.dtype, broadcast(a.shape, b.shape))]


def _gemm(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    a, b = _in(node, 0), _in(node, 1)
    if a.shape is None or b.shape is None:
        return [(a.dtype, None)]
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise ShapeError(f"Gemm needs 2-D inputs, got {a.type_str()} and {b.type_str()}")
    m, ka = a.shape[::-1] if node.attr("transA", 0) else a.shape
    kb, n = b.shape[::-1] if node.attr("transB", 0) else b.shape
    try:
        merge_dim(ka, kb)
    except ShapeError:
        raise ShapeError(f"inner dimensions {ka} and {kb} differ") from None
    c = node.input(2)
    if c is not None and c.shape is not None:
        broadcast(c.shape, (m, n))
    return [(a.dtype, (m, n))]


def _matmul(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    a, b = _in(node, 0), _in(node, 1)
    if a.shape is None or b.shape is None:
        return [(a.dtype, None)]
    sa, sb = list(a.shape), list(b.shape)
    if not sa or not sb:
        raise ShapeError("MatMul inputs must have rank >= 1")
    squeeze_a, squeeze_b = len(sa) == 1, len(sb) == 1
    if squeeze_a:
        sa = [1, *sa]
    if squeeze_b:
        sb = [*sb, 1]
    try:
        merge_dim(sa[-1], sb[-2])
    except ShapeError:
        raise ShapeError(f"inner dimensions {sa[-1]} and {sb[-2]} differ") from None
    batch = broadcast(tuple(sa[:-2]), tuple(sb[:-2]))
    assert batch is not None
    out = [*batch, sa[-2], sb[-1]]
    if squeeze_a:
        out.pop(-2)
    if squeeze_b:
        out.pop(-1)
    return [(a.dtype, tuple(out))]


SATURATING_FLOAT8 = frozenset({17, 18, 19, 20})
"""Cast targets whose `saturate` attribute (default 1) clamps out-of-range values to the largest finite one:
`onnx.TensorProto` FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2 and FLOAT8E5M2FNUZ (numbers fixed by onnx.proto;
written out so that loading the op registry does not import onnx, which takes ~1 s)."""


def _cast(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    to = int(node.attr("to"))
    _check_cast_target(to)
    return [(onnx_dtype(to), _in(node, 0).shape)]


def _castlike(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    import onnx.helper  # here, not at the top: see `onnx_dtype`

    target = _in(node, 1).dtype
    if target != np.dtype(object):
        _check_cast_target(onnx.helper.np_dtype_to_tensor_dtype(target))
    return op_rules.castlike_rule(node)


def _check_cast_target(to: int) -> None:
    """Refuse the cast targets whose rounding leac does not implement."""
    import onnx  # here, not at the top: see `onnx_dtype`
    import onnx.numpy_helper

    if to == getattr(onnx.TensorProto, "FLOAT8E8M0", None):
        raise ShapeError("casting to FLOAT8E8M0 is not supported (leac does not implement its round_mode and "
                         "saturate rules)")
    if to in SATURATING_FLOAT8 and not hasattr(onnx.numpy_helper, "saturate_cast"):  # onnx < 1.19: no ml_dtypes
        raise ShapeError(f"casting to {onnx.TensorProto.DataType.Name(to)} needs onnx >= 1.19 "
                         f"(installed: {onnx.__version__})")


def _dropout(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    # Inference Dropout is the identity; training mode zeroes elements at random, which leac does not compile.
    mode = node.input(2)
    if mode is not None:
        flag = mode.const
        if flag is None and mode.producer is not None and mode.producer.op_type == "Constant":
            flag = constant_value(mode.producer)
        if flag is None:
            raise ShapeError(f"training_mode (input 2, %{mode.name}) is not a constant false; leac compiles for "
                             "inference only (export the model in eval mode)")
        if np.any(flag):
            raise ShapeError("training_mode=true is not supported: it zeroes elements at random, and leac compiles "
                             "for inference only (export the model in eval mode)")
    x = _in(node, 0)
    outs: list[tuple[np.dtype[Any], Shape]] = [(x.dtype, x.shape)]
    if len(node.outputs) > 1:
        outs.append((np.dtype(bool), x.shape))
    return outs


def _argmax(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    if x.shape is None:
        return [(np.dtype(np.int64), None)]
    axis = normalize_axis(int(node.attr("axis", 0)), len(x.shape))
    dims = list(x.shape)
    if node.attr("keepdims", 1):
        dims[axis] = 1
    else:
        dims.pop(axis)
    return [(np.dtype(np.int64), tuple(dims))]


def _flatten(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    if x.shape is None:
        return [(x.dtype, (None, None))]
    rank = len(x.shape)
    axis = int(node.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    axis = axis % rank if axis < 0 else axis
    return [(x.dtype, (product(x.shape[:axis]), product(x.shape[axis:])))]


def _reshape(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    target = _const_ints(node, 1)
    if target is None:
        s = _in(node, 1).shape
        rank = s[0] if s is not None and len(s) == 1 else None
        return [(x.dtype, None if not isinstance(rank, int) else (None,) * rank)]
    allowzero = bool(node.attr("allowzero", 0))
    out: list[Dim] = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if x.shape is None or i >= len(x.shape):
                raise ShapeError(f"shape entry {i} is 0 (copy) but the input has no dimension {i}")
            out.append(x.shape[i])
        elif d == -1:
            out.append(-1)
        elif d < -1:
            raise ShapeError(f"shape entry {i} is {d}")
        else:
            out.append(d)
    if out.count(-1) > 1:
        raise ShapeError("shape has more than one -1")
    if -1 in out:
        total = product(x.shape) if x.shape is not None else None
        rest = product([d for d in out if d != -1])
        fill: Dim = None
        if isinstance(total, int) and isinstance(rest, int):
            if rest == 0 or total % rest:
                raise ShapeError(f"cannot reshape {total} elements into {target}")
            fill = total // rest
        elif isinstance(total, str) and isinstance(rest, int) and rest == 1:
            fill = total
        elif x.shape is not None and isinstance(rest, int) and rest > 0:
            # e.g. [batch, 4, 2] -> [batch, -1]: the symbolic factor cancels
            remaining = list(x.shape)
            for dim in out:
                if dim != -1 and dim in remaining and not isinstance(dim, int):
                    remaining.remove(dim)
            known = product([d for d in remaining if isinstance(d, int)])
            sym = [d for d in remaining if not isinstance(d, int)]
            if not sym and isinstance(known, int):
                rest_int = product([d for d in out if d != -1 and isinstance(d, int)])
                if isinstance(rest_int, int) and rest_int and known % rest_int == 0:
                    fill = known // rest_int
        out[out.index(-1)] = fill
    elif x.shape is not None:
        total, new = product(x.shape), product(out)
        if isinstance(total, int) and isinstance(new, int) and total != new:
            raise ShapeError(f"cannot reshape {list(x.shape)} ({total} elements) into {target}")
    return [(x.dtype, tuple(out))]


def _axes(node: Node) -> list[int] | None:
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    return _const_ints(node, 1)


def _squeeze(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    if x.shape is None:
        return [(x.dtype, None)]
    axes = _axes(node)
    if axes is None:
        if node.input(1) is not None:
            return [(x.dtype, None)]
        if any(not isinstance(d, int) for d in x.shape):
            return [(x.dtype, None)]
        return [(x.dtype, tuple(d for d in x.shape if d != 1))]
    rank = len(x.shape)
    drop = {normalize_axis(a, rank) for a in axes}
    for a in drop:
        if isinstance(x.shape[a], int) and x.shape[a] != 1:
            raise ShapeError(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return [(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in drop))]


def _unsqueeze(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    axes = _axes(node)
    if x.shape is None or axes is None:
        return [(x.dtype, None)]
    rank = len(x.shape) + len(axes)
    put = sorted(normalize_axis(a, rank) for a in axes)
    if len(set(put)) != len(put):
        raise ShapeError(f"axes {axes} repeat")
    dims = list(x.shape)
    for a in put:
        dims.insert(a, 1)
    return [(x.dtype, tuple(dims))]


def _transpose(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    if x.shape is None:
        return [(x.dtype, None)]
    perm = node.attr("perm")
    rank = len(x.shape)
    perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"perm {perm} is not a permutation of {rank} axes")
    return [(x.dtype, tuple(x.shape[p] for p in perm))]


def _concat(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    parts = [v for v in node.inputs if v is not None]
    if not parts:
        raise ShapeError("Concat has no inputs")
    dtype = parts[0].dtype
    if any(p.dtype != dtype for p in parts):
        raise ShapeError("Concat inputs have different types")
    if any(p.shape is None for p in parts):
        return [(dtype, None)]
    rank = len(parts[0].shape)  # type: ignore[arg-type]
    if any(len(p.shape) != rank for p in parts):  # type: ignore[arg-type]
        raise ShapeError("Concat inputs have different ranks")
    axis = normalize_axis(int(node.attr("axis")), rank)
    out: list[Dim] = []
    for i in range(rank):
        dims = [p.shape[i] for p in parts]  # type: ignore[index]
        if i == axis:
            out.append(sum_dims(dims))
        else:
            merged: Dim = None
            for d in dims:
                merged = merge_dim(merged, d)
            out.append(merged)
    return [(dtype, tuple(out))]


CONV_RANKS = (3, 4)
"""Input ranks of the Conv and pooling nodes leac maps: 1-D (N, C, L) and 2-D (N, C, H, W)."""


def _spatial_rank(x: Value, op: str, other: Value | None = None) -> None:
    """Refuse a window op over other than 1 or 2 spatial axes (3-D: leac maps 1-D and 2-D windows only)."""
    for v in (x, other):
        if v is not None and v.shape is not None and len(v.shape) not in CONV_RANKS:
            what = f"input {x.type_str()}" + (f", weight {other.type_str()}" if other is not None else "")
            if len(v.shape) > 4:
                raise ShapeError(f"{len(v.shape) - 2}-D {op} is not supported ({what}): leac maps 1-D and 2-D "
                                 f"{op} only (rank-3 and rank-4 inputs)")
            raise ShapeError(f"{op} needs a rank-3 (1-D) or rank-4 (2-D) input and weight, got {what}")
    if other is not None and x.shape is not None and other.shape is not None and len(x.shape) != len(other.shape):
        raise ShapeError(f"input {x.type_str()} and weight {other.type_str()} have different ranks")


def _conv(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x, w = _in(node, 0), _in(node, 1)
    group = int(node.attr("group", 1))
    if group < 1:
        raise ShapeError(f"group={group} must be >= 1")
    _spatial_rank(x, "Conv", w)
    if x.shape is None or w.shape is None:
        return [(x.dtype, None)]
    out_channels, group_channels = w.shape[0], w.shape[1]
    if isinstance(group_channels, int):
        try:
            merge_dim(x.shape[1], group * group_channels)
        except ShapeError:
            raise ShapeError(f"the input's {x.shape[1]} channels are not group={group} x the weight's "
                             f"{group_channels} channels per group") from None
    if isinstance(out_channels, int) and out_channels % group:
        raise ShapeError(f"the weight's {out_channels} output channels do not divide into group={group} groups")
    b = node.input(2)
    if b is not None and b.shape is not None:
        if len(b.shape) != 1:
            raise ShapeError(f"the bias (input 2) must be a vector of the {w.shape[0]} output channels, "
                             f"got {b.type_str()}")
        merge_dim(b.shape[0], w.shape[0])
    kernel = node.attr("kernel_shape", w.shape[2:])
    if any(not isinstance(k, int) for k in kernel):
        return [(x.dtype, (x.shape[0], w.shape[0], *([None] * (len(x.shape) - 2))))]
    geometry = window_of(node, x.shape[2:], kernel)
    return [(x.dtype, (x.shape[0], w.shape[0], *window_output(x.shape[2:], geometry)))]


def _pool(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    _spatial_rank(x, node.op_type)
    if x.shape is None:
        return [(x.dtype, None)]
    if node.attr("storage_order", 0):
        raise ShapeError("storage_order=1 is not supported")
    geometry = window_of(node, x.shape[2:], [int(k) for k in node.attr("kernel_shape", [])])
    return [(x.dtype, (x.shape[0], x.shape[1], *window_output(x.shape[2:], geometry)))]


def _global_pool(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    if x.shape is None:
        return [(x.dtype, None)]
    if len(x.shape) < 3:
        raise ShapeError(f"GlobalAveragePool needs rank >= 3, got {x.type_str()}")
    return [(x.dtype, (x.shape[0], x.shape[1], *([1] * (len(x.shape) - 2))))]


def _batchnorm(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    if node.attr("training_mode", 0) or len(node.outputs) > 1:
        raise ShapeError("training_mode=1 is not supported (export the model in eval mode)")
    x = _in(node, 0)
    if x.shape is not None and len(x.shape) >= 2:
        for i in range(1, 5):
            p = _in(node, i)
            if p.shape is not None and len(p.shape) == 1:
                merge_dim(x.shape[1], p.shape[0])
    return [(x.dtype, x.shape)]


def constant_value(node: Node) -> np.ndarray[Any, Any]:
    """The tensor a Constant node produces, from whichever value attribute it has."""
    a = node.attrs
    if "value" in a:
        return np.asarray(a["value"])
    if "value_float" in a:
        return np.asarray(a["value_float"], dtype=np.float32)
    if "value_floats" in a:
        return np.asarray(a["value_floats"], dtype=np.float32)
    if "value_int" in a:
        return np.asarray(a["value_int"], dtype=np.int64)
    if "value_ints" in a:
        return np.asarray(a["value_ints"], dtype=np.int64)
    if "value_string" in a:
        return np.asarray(a["value_string"], dtype=object)
    if "value_strings" in a:
        return np.asarray(a["value_strings"], dtype=object)
    raise ShapeError("Constant has no value attribute (sparse_value is not supported)")


def _constant(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    value = constant_value(node)
    return [(value.dtype, tuple(value.shape))]


def _array_feature_extractor(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x, idx = _in(node, 0), _in(node, 1)
    if idx.dtype != np.int64:
        raise ShapeError(f"indices must be int64, got {idx.dtype}")
    count = product(idx.shape) if idx.shape is not None else None
    if x.shape is None:
        return [(x.dtype, None)]
    if len(x.shape) == 1:
        return [(x.dtype, (1, count))]
    return [(x.dtype, (*x.shape[:-1], count))]


def _shape_op(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    if x.shape is None:
        return [(np.dtype(np.int64), (None,))]
    start, end = shape_slice(node, len(x.shape))
    return [(np.dtype(np.int64), (max(end - start, 0),))]


def shape_slice(node: Node, rank: int) -> tuple[int, int]:
    """The [start, end) axes a Shape node reports (opset 15 start/end, clamped like ONNX)."""
    start = int(node.attr("start", 0))
    end = int(node.attr("end", rank))
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, end


def _gather(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    data, indices = _in(node, 0), _in(node, 1)
    if indices.dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
        raise ShapeError(f"indices must be int32 or int64, got {indices.dtype}")
    if data.shape is None or indices.shape is None:
        return [(data.dtype, None)]
    axis = normalize_axis(int(node.attr("axis", 0)), len(data.shape))
    return [(data.dtype, (*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :]))]


def _mvm(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x, w = _in(node, 0), _in(node, 1)
    if w.const is None or w.const.ndim != 2:
        raise ShapeError("the crossbar matrix (input 1) must be a constant 2-D tensor")
    rows, cols = w.const.shape
    b = node.input(2)
    if b is not None and (b.const is None or b.const.shape != (cols,)):
        raise ShapeError(f"the bias (input 2) must be a constant vector of {cols}")
    groups = int(node.attr("groups", 1))
    if groups < 1 or cols % groups:
        raise ShapeError(f"groups={groups} does not divide the matrix's {cols} columns")
    if x.shape is None:
        return [(x.dtype, None)]
    if len(x.shape) < (2 if groups > 1 else 1):
        raise ShapeError(f"the input must have rank >= {2 if groups > 1 else 1}")
    merge_dim(x.shape[-1], rows)
    if groups == 1:
        return [(x.dtype, (*x.shape[:-1], cols))]
    try:
        merge_dim(x.shape[-2], groups)
    except ShapeError:
        raise ShapeError(f"the input's axis -2 ({x.shape[-2]}) must hold the groups={groups} vectors") from None
    return [(x.dtype, (*x.shape[:-2], cols))]


def _patches(node: Node) -> list[tuple[np.dtype[Any], Shape]]:
    x = _in(node, 0)
    if x.shape is None:
        return [(x.dtype, None)]
    if len(x.shape) not in CONV_RANKS:
        raise ShapeError(f"Patches needs an NCL or NCHW input, got {x.type_str()}")
    kernel = [int(k) for k in node.attr("kernel_shape", [])]
    geometry = window_of(node, x.shape[2:], kernel)
    groups = int(node.attr("groups", 1))
    channels = x.shape[1]
    if groups < 1 or (isinstance(channels, int) and channels % groups):
        raise ShapeError(f"groups={groups} does not divide the input's {channels} channels")
    pixels = window_output(x.shape[2:], geometry)
    if groups == 1:
        return [(x.dtype, (x.shape[0], *pixels, product([channels, *kernel])))]
    per_group = product([channels // groups if isinstance(channels, int) else None, *kernel])
    return [(x.dtype, (x.shape[0], *pixels, groups, per_group))]


def _schema(
    op: str, rule: TypeRule, lo: int, hi: int, domain: str = "", outs: int = 1
) -> tuple[tuple[str, str], OpSchema]:
    return (domain, op), OpSchema(domain, op, rule, lo, hi, outs)


OPS: dict[tuple[str, str], OpSchema] = dict(
    [
        _schema("Gemm", _gemm, 2, 3),
        _schema("MatMul", _matmul, 2, 2),
        _schema("Add", _binary, 2, 2),
        _schema("Sub", _binary, 2, 2),
        _schema("Mul", _binary, 2, 2),
        _schema("Div", _binary, 2, 2),
        _schema("Relu", _same, 1, 1),
        _schema("LeakyRelu", _same, 1, 1),
        _schema("Tanh", _same, 1, 1),
        _schema("Sigmoid", _same, 1, 1),
        _schema("Clip", _same, 1, 3),
        _schema("HardSigmoid", _same, 1, 1),
        _schema("Softmax", _same, 1, 1),
        _schema("LogSoftmax", _same, 1, 1),
        _schema("Flatten", _flatten, 1, 1),
        _schema("Reshape", _reshape, 2, 2),
        _schema("Squeeze", _squeeze, 1, 2),
        _schema("Unsqueeze", _unsqueeze, 1, 2),
        _schema("Transpose", _transpose, 1, 1),
        _schema("Concat", _concat, 1, 1 << 30),
        _schema("Identity", _same, 1, 1),
        _schema("Dropout", _dropout, 1, 3, outs=2),
        _schema("Cast", _cast, 1, 1),
        _schema("ArgMax", _argmax, 1, 1),
        _schema("Conv", _conv, 2, 3),
        _schema("BatchNormalization", _batchnorm, 5, 5, outs=3),
        _schema("MaxPool", _pool, 1, 1),
        _schema("AveragePool", _pool, 1, 1),
        _schema("GlobalAveragePool", _global_pool, 1, 1),
        _schema("ReduceMean", reduce_rule, 1, 2),
        _schema("Constant", _constant, 0, 0),
        _schema("Shape", _shape_op, 1, 1),
        _schema("Gather", _gather, 2, 2),
        _schema("Erf", _same, 1, 1),
        _schema("Gelu", op_rules.gelu_rule, 1, 1),
        _schema("Elu", _same, 1, 1),
        _schema("Selu", _same, 1, 1),
        _schema("Celu", _same, 1, 1),
        _schema("Softplus", _same, 1, 1),
        _schema("Softsign", _same, 1, 1),
        _schema("HardSwish", _same, 1, 1),
        _schema("Mish", _same, 1, 1),
        _schema("ThresholdedRelu", _same, 1, 1),
        _schema("Exp", _same, 1, 1),
        _schema("Log", _same, 1, 1),
        _schema("Sqrt", _same, 1, 1),
        _schema("Reciprocal", _same, 1, 1),
        _schema("Abs", _same, 1, 1),
        _schema("Neg", _same, 1, 1),
        _schema("Sign", _same, 1, 1),
        _schema("Floor", _same, 1, 1),
        _schema("Ceil", _same, 1, 1),
        _schema("Round", _same, 1, 1),
        _schema("Not", _same, 1, 1),
        _schema("PRelu", op_rules.prelu_rule, 2, 2),
        _schema("Pow", op_rules.pow_rule, 2, 2),
        _schema("Min", op_rules.variadic_rule, 1, 1 << 30),
        _schema("Max", op_rules.variadic_rule, 1, 1 << 30),
        _schema("Sum", op_rules.variadic_rule, 1, 1 << 30),
        _schema("Mean", op_rules.variadic_rule, 1, 1 << 30),
        _schema("Equal", op_rules.compare_rule, 2, 2),
        _schema("Less", op_rules.compare_rule, 2, 2),
        _schema("LessOrEqual", op_rules.compare_rule, 2, 2),
        _schema("Greater", op_rules.compare_rule, 2, 2),
        _schema("GreaterOrEqual", op_rules.compare_rule, 2, 2),
        _schema("And", op_rules.compare_rule, 2, 2),
        _schema("Or", op_rules.compare_rule, 2, 2),
        _schema("Where", op_rules.where_rule, 3, 3),
        _schema("CastLike", _castlike, 2, 2),
        _schema("ReduceSum", reduce_rule, 1, 2),
        _schema("ReduceProd", reduce_rule, 1, 2),
        _schema("ReduceMax", reduce_rule, 1, 2),
        _schema("ReduceMin", reduce_rule, 1, 2),
        _schema("ReduceSumSquare", reduce_rule, 1, 2),
        _schema("ReduceL1", reduce_rule, 1, 2),
        _schema("ReduceL2", reduce_rule, 1, 2),
        _schema("ReduceLogSum", reduce_rule, 1, 2),
        _schema("ReduceLogSumExp", reduce_rule, 1, 2),
        _schema("Pad", op_rules.pad_rule, 2, 4),
        _schema("Slice", op_rules.slice_rule, 3, 5),
        _schema("Split", op_rules.split_rule, 1, 2, outs=1 << 30),
        _schema("Expand", op_rules.expand_rule, 2, 2),
        _schema("Tile", op_rules.tile_rule, 2, 2),
        _schema("LayerNormalization", op_rules.layer_norm_rule, 2, 3, outs=3),
        _schema("ConstantOfShape", op_rules.constant_of_shape_rule, 1, 1),
        _schema("Range", op_rules.range_rule, 3, 3),
        _schema("Size", op_rules.size_rule, 1, 1),
        _schema("ArrayFeatureExtractor", _array_feature_extractor, 2, 2, domain=ML_DOMAIN),
        _schema("MVM", _mvm, 2, 3, domain=LEAC_DOMAIN),
        _schema("Patches", _patches, 1, 1, domain=LEAC_DOMAIN),
    ]
)


def schema_of(node: Node) -> OpSchema | None:
    return OPS.get((node.domain, node.op_type))


def infer_node(node: Node, *, check: bool) -> list[str]:
    """Derive a node's output types from its inputs.

    With `check`, compare them with the recorded ones and return the
    disagreements as messages; otherwise overwrite the recorded dtypes and
    shapes (keeping recorded dimensions the rule could not derive) and
    return any error the rule raised.
    """
    schema = schema_of(node)
    if schema is None:
        return [f"{node.describe()}: no schema for this op"]
    present = len(node.inputs)
    if not schema.min_inputs <= present <= schema.max_inputs:
        return [f"{node.describe()}: takes {schema.min_inputs}..{schema.max_inputs} inputs, has {present}"]
    if not 1 <= len(node.outputs) <= schema.max_outputs:
        return [f"{node.describe()}: may have 1..{schema.max_outputs} outputs, has {len(node.outputs)}"]
    try:
        inferred = schema.infer(node)
    except ShapeError as exc:
        return [f"{node.describe()}: {exc}"]
    problems: list[str] = []
    for out, (dtype, shape) in zip(node.outputs, inferred, strict=True):
        if check:
            if out.dtype != dtype:
                problems.append(f"{node.describe()}: output %{out.name} is {out.dtype}, inputs give {dtype}")
            if not shapes_agree(out.shape, shape):
                problems.append(
                    f"{node.describe()}: output %{out.name} has shape {out.type_str()}, "
                    f"inputs give {_shape_text(shape)}"
                )
        else:
            out.dtype = dtype
            out.shape = combine_shapes(out.shape, shape)
    return problems


def shapes_agree(a: Shape, b: Shape) -> bool:
    """False only where both shapes know something and it differs."""
    if a is None or b is None:
        return True
    if len(a) != len(b):
        return False
    return all(not (isinstance(x, int) and isinstance(y, int) and x != y) for x, y in zip(a, b, strict=True))


def combine_shapes(recorded: Shape, derived: Shape) -> Shape:
    """`derived`, with recorded dimensions filling what the rule left unknown."""
    if derived is None:
        return recorded
    if recorded is None or len(recorded) != len(derived):
        return derived
    return tuple(r if d is None else d for r, d in zip(recorded, derived, strict=True))


def _shape_text(shape: Shape) -> str:
    if shape is None:
        return "[?]"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def supported_ops_text() -> str:
    """The ONNX ops leac imports, sorted, domain-qualified outside ai.onnx."""
    return ", ".join(sorted(s.qualified for s in OPS.values() if s.domain != LEAC_DOMAIN))
