"""Type rules of the digital ops beyond the core set, and the index arithmetic they share with their kernels.

The ops here run in the digital periphery only: elementwise maths (Erf, Gelu, Elu, Pow, ...), variadic and
comparison ops, reductions, and the tensor slicing ops Pad, Slice and Split. `lea_compiler.ops` registers
them in `OPS`; `lea_compiler.digital_kernels` holds their numpy kernels. Where a shape follows from
index arithmetic (which elements a Slice keeps, the pieces of a Split, the widths of a Pad, the axes of a
reduction), the one definition of that arithmetic lives here and both the rule and the kernel call it.

Semantics are ONNX's (opset 13 and later); an attribute value leac does not implement is refused by the
rule with a message that names it, so the front end reports it before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lea_compiler.shapes import Dim, Shape, ShapeError, broadcast, normalize_axis

if TYPE_CHECKING:  # the IR's verifier imports the registry; the rules only read the nodes they are given
    from lea_compiler.ir import Node, Value

Types = list[tuple[np.dtype[Any], Shape]]

MAX_COMPUTED_ELEMENTS = 2**26
"""Most elements a tensor whose size is only known at run time may get (Expand, Tile, ConstantOfShape, Range
and Pad with computed parameters): 256 MiB of float32, four times what one chunk of samples may hold in all
(`chunks.CHUNK_BYTES`); more is a broken or hostile model, refused before anything is allocated. Sizes known
when the model is read are bounded by the front end (`onnx_frontend.MAX_TENSOR_ELEMENTS` per sample)."""

GELU_APPROXIMATIONS = ("none", "tanh")
PAD_MODES = ("constant", "reflect", "edge", "wrap")


# ------------------------------------------------------------------ helpers
def check_computed_size(shape: Sequence[int], what: str) -> None:
    """Refuse a run-time result of `shape` over `MAX_COMPUTED_ELEMENTS` (see there)."""
    elements = math.prod(int(d) for d in shape)
    if elements > MAX_COMPUTED_ELEMENTS:
        raise ShapeError(f"{what} would hold {elements} elements ({list(shape)}), more than leac computes "
                         f"({MAX_COMPUTED_ELEMENTS})")


def input_of(node: Node, index: int) -> Value:
    """Input `index` of `node`, which must be present."""
    value = node.input(index)
    if value is None:
        raise ShapeError(f"input {index} is missing")
    return value


def const_ints(node: Node, index: int) -> list[int] | None:
    """Input `index` as a list of ints when it is a constant, else None (absent or computed at run time)."""
    value = node.input(index)
    if value is None or value.const is None:
        return None
    return [int(v) for v in np.asarray(value.const).reshape(-1)]


def _unknown_dims(shape: Shape) -> Shape:
    return None if shape is None else (None,) * len(shape)


# ------------------------------------------------------------- elementwise
def gelu_rule(node: Node) -> Types:
    approximate = node.attr("approximate", "none")
    if approximate not in GELU_APPROXIMATIONS:
        raise ShapeError(f"approximate={approximate!r} is not supported (only 'none' and 'tanh')")
    x = input_of(node, 0)
    return [(x.dtype, x.shape)]


def prelu_rule(node: Node) -> Types:
    """PRelu: the slope broadcasts to X one way, so the output is X's type."""
    x, slope = input_of(node, 0), input_of(node, 1)
    if x.dtype != slope.dtype:
        raise ShapeError(f"input types {x.dtype} and {slope.dtype} differ")
    if x.shape is not None and slope.shape is not None:
        if len(slope.shape) > len(x.shape):
            raise ShapeError(f"the slope {slope.type_str()} has a higher rank than the input {x.type_str()}")
        try:
            out = broadcast(x.shape, slope.shape)
        except ShapeError:
            out = None
        if out is None or any(isinstance(got, int) and isinstance(want, int) and got != want
                              for got, want in zip(out, x.shape, strict=True)):
            raise ShapeError(f"the slope {slope.type_str()} does not broadcast to the input {x.type_str()} "
                             "(ONNX aligns it with the last axes: a slope per channel of NCHW is [C, 1, 1])")
    return [(x.dtype, x.shape)]


def pow_rule(node: Node) -> Types:
    """Pow: the base's type, the base and exponent broadcast (their types may differ)."""
    a, b = input_of(node, 0), input_of(node, 1)
    return [(a.dtype, broadcast(a.shape, b.shape))]


def variadic_rule(node: Node) -> Types:
    """Min, Max, Sum, Mean: one or more inputs of one type, broadcast together."""
    parts = [v for v in node.inputs if v is not None]
    if not parts:
        raise ShapeError("no inputs")
    if any(p.dtype != parts[0].dtype for p in parts):
        raise ShapeError(f"input types {sorted({str(p.dtype) for p in parts})} differ")
    return [(parts[0].dtype, broadcast(*(p.shape for p in parts)))]


def compare_rule(node: Node) -> Types:
    """Equal, Less, Greater, ... and And, Or: bool, the two inputs (of one type) broadcast."""
    a, b = input_of(node, 0), input_of(node, 1)
    if a.dtype != b.dtype:
        raise ShapeError(f"input types {a.dtype} and {b.dtype} differ")
    return [(np.dtype(bool), broadcast(a.shape, b.shape))]


def where_rule(node: Node) -> Types:
    cond, x, y = input_of(node, 0), input_of(node, 1), input_of(node, 2)
    if cond.dtype != np.dtype(bool):
        raise ShapeError(f"the condition must be bool, got {cond.dtype}")
    if x.dtype != y.dtype:
        raise ShapeError(f"input types {x.dtype} and {y.dtype} differ")
    return [(x.dtype, broadcast(cond.shape, x.shape, y.shape))]


def castlike_rule(node: Node) -> Types:
    """CastLike: the first input's shape in the second input's type."""
    return [(input_of(node, 1).dtype, input_of(node, 0).shape)]


# ------------------------------------------------------------------ shapes
def expand_rule(node: Node) -> Types:
    x = input_of(node, 0)
    target = const_ints(node, 1)
    if target is None:
        s = input_of(node, 1).shape
        rank = s[0] if s is not None and len(s) == 1 else None
        if x.shape is None or not isinstance(rank, int):
            return [(x.dtype, None)]
        return [(x.dtype, (None,) * max(rank, len(x.shape)))]
    return [(x.dtype, broadcast(x.shape, tuple(target)))]


def tile_rule(node: Node) -> Types:
    x = input_of(node, 0)
    repeats = const_ints(node, 1)
    if x.shape is None or repeats is None:
        return [(x.dtype, _unknown_dims(x.shape))]
    if len(repeats) != len(x.shape):
        raise ShapeError(f"{len(repeats)} repeats for an input of rank {len(x.shape)}")
    if any(r < 0 for r in repeats):
        raise ShapeError(f"repeats {repeats} are negative")
    return [(x.dtype, tuple(d * r if isinstance(d, int) else (d if r == 1 else None)
                            for d, r in zip(x.shape, repeats, strict=True)))]


def reduce_axes(node: Node, axes_input: list[int] | None, rank: int) -> tuple[int, ...] | None:
    """The axes a Reduce* op reduces (attribute before opset 18, input after): all when none are given,
    and None when none are given and `noop_with_empty_axes` is set (no axis reduced)."""
    axes = [int(a) for a in node.attrs["axes"]] if "axes" in node.attrs else axes_input
    if not axes:
        return None if node.attr("noop_with_empty_axes", 0) else tuple(range(rank))
    normalized = [normalize_axis(a, rank) for a in axes]
    if len(set(normalized)) != len(normalized):
        raise ShapeError(f"axes {axes} repeat")
    return tuple(sorted(normalized))


def reduce_rule(node: Node) -> Types:
    """Every Reduce* op: the input's type, the reduced axes kept as 1 (keepdims) or dropped."""
    x = input_of(node, 0)
    axes_input = const_ints(node, 1)
    if x.shape is None or (node.input(1) is not None and axes_input is None):
        return [(x.dtype, None)]
    axes = reduce_axes(node, axes_input, len(x.shape))
    if axes is None:
        return [(x.dtype, x.shape)]
    keep = bool(node.attr("keepdims", 1))
    dims = [1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes]
    return [(x.dtype, tuple(dims))]


def pad_widths(rank: int, pads: Sequence[int], axes: Sequence[int] | None) -> list[tuple[int, int]]:
    """Per axis (begin, end) of a Pad: `pads` is all begins then all ends, over `axes` (default: every axis).
    Negative widths remove elements."""
    axes = list(range(rank)) if axes is None else [normalize_axis(a, rank) for a in axes]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"axes {list(axes)} repeat")
    if len(pads) != 2 * len(axes):
        raise ShapeError(f"{len(pads)} pads for {len(axes)} axes (it takes 2 per axis)")
    widths = [(0, 0)] * rank
    for i, axis in enumerate(axes):
        widths[axis] = (int(pads[i]), int(pads[i + len(axes)]))
    return widths


def pad_rule(node: Node) -> Types:
    mode = node.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise ShapeError(f"mode={mode!r} is not supported (only {', '.join(PAD_MODES)})")
    x = input_of(node, 0)
    value = node.input(2)
    if value is not None and value.dtype != x.dtype:
        raise ShapeError(f"the constant value is {value.dtype}, the input {x.dtype}")
    pads = const_ints(node, 1)
    axes = const_ints(node, 3)
    if x.shape is None or pads is None or (node.input(3) is not None and axes is None):
        return [(x.dtype, _unknown_dims(x.shape))]
    widths = pad_widths(len(x.shape), pads, axes)
    out: list[Dim] = []
    for d, (begin, end) in zip(x.shape, widths, strict=True):
        if isinstance(d, int):
            check_pad(mode, d, begin, end)
            out.append(d + begin + end)
        else:
            out.append(d if begin == end == 0 else None)
    return [(x.dtype, tuple(out))]


def check_pad(mode: str, dim: int, begin: int, end: int) -> None:
    """Refuse pads of an axis of `dim` elements that ONNX leaves undefined: an output of negative size; with
    the modes that copy elements (which, as onnxruntime, first remove the negative pads' elements), removing
    more than the axis holds, padding an empty axis, or reflecting further than the axis reaches (`reflect`
    mirrors at most dim - 1 elements, as onnxruntime and torch)."""
    if dim + begin + end < 0:
        raise ShapeError(f"pads ({begin}, {end}) remove more than the {dim} elements of an axis")
    kept = dim + min(begin, 0) + min(end, 0)
    if mode != "constant" and kept < 0:
        raise ShapeError(f"mode={mode!r}: pads ({begin}, {end}) remove more than the {dim} elements of an axis")
    grow = max(begin, 0), max(end, 0)
    if mode != "constant" and kept == 0 and any(grow):
        raise ShapeError(f"mode={mode!r} cannot pad an empty axis")
    if mode == "reflect" and max(grow) > kept - 1:
        raise ShapeError(f"mode='reflect' pads ({begin}, {end}) reach beyond an axis of {kept} elements "
                         f"(at most {max(kept - 1, 0)})")


def slice_range(dim: int, start: int, end: int, step: int) -> range:
    """The indices a Slice keeps of an axis of `dim` elements: ONNX clamps start and end (negative counted
    from the end) to [0, dim] for a positive step and to [0, dim - 1] and [-1, dim - 1] for a negative one."""
    if step == 0:
        raise ShapeError("a step is 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return range(min(max(start, 0), dim), min(max(end, 0), dim), step)
    return range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step)


def slice_spec(node: Node, rank: int, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int] | None,
               steps: Sequence[int] | None) -> list[tuple[int, int, int, int]]:
    """(axis, start, end, step) of each sliced axis of a Slice, checked."""
    axes = list(range(len(starts))) if axes is None else [normalize_axis(a, rank) for a in axes]
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError(f"starts, ends, axes and steps have different lengths ({len(starts)}, {len(ends)}, "
                         f"{len(axes)}, {len(steps)})")
    if len(set(axes)) != len(axes):
        raise ShapeError(f"axes {axes} repeat")
    return list(zip(axes, starts, ends, steps, strict=True))


def slice_rule(node: Node) -> Types:
    x = input_of(node, 0)
    starts, ends = const_ints(node, 1), const_ints(node, 2)
    axes, steps = const_ints(node, 3), const_ints(node, 4)
    unknown = starts is None or ends is None or any(node.input(i) is not None and v is None
                                                    for i, v in ((3, axes), (4, steps)))
    if x.shape is None or unknown:
        return [(x.dtype, _unknown_dims(x.shape))]
    assert starts is not None and ends is not None
    out = list(x.shape)
    for axis, start, end, step in slice_spec(node, len(x.shape), starts, ends, axes, steps):
        d = x.shape[axis]
        out[axis] = len(slice_range(d, start, end, step)) if isinstance(d, int) else None
    return [(x.dtype, tuple(out))]


def split_sizes(dim: int, split: Sequence[int] | None, num_outputs: int | None, outputs: int) -> list[int]:
    """The sizes of a Split's pieces along its axis of `dim` elements: `split` as given, or `num_outputs`
    pieces of ceil(dim / num_outputs) with a smaller last one (opset 18), or `outputs` equal pieces."""
    if split is not None:
        if len(split) != outputs:
            raise ShapeError(f"split {list(split)} has {len(split)} parts for {outputs} outputs")
        if any(s < 0 for s in split) or sum(split) != dim:
            raise ShapeError(f"split {list(split)} does not add up to the axis' {dim} elements")
        return list(split)
    if num_outputs is not None:
        if num_outputs != outputs:
            raise ShapeError(f"num_outputs={num_outputs} but the node has {outputs} outputs")
        size = -(-dim // num_outputs)
        if dim % num_outputs and size * (num_outputs - 1) >= dim:
            raise ShapeError(f"cannot split {dim} elements into {num_outputs} pieces of {size} with a smaller "
                             "last one")
        return [size] * (num_outputs - 1) + [dim - size * (num_outputs - 1)]
    if dim % outputs:
        raise ShapeError(f"cannot split {dim} elements into {outputs} equal pieces")
    return [dim // outputs] * outputs


def split_rule(node: Node) -> Types:
    x = input_of(node, 0)
    outputs = len(node.outputs)
    split = const_ints(node, 1) if node.input(1) is not None else node.attr("split")
    num = node.attr("num_outputs")
    if x.shape is None or (node.input(1) is not None and split is None):
        return [(x.dtype, _unknown_dims(x.shape))] * outputs
    axis = normalize_axis(int(node.attr("axis", 0)), len(x.shape))
    d = x.shape[axis]
    if not isinstance(d, int):
        return [(x.dtype, x.shape[:axis] + (None,) + x.shape[axis + 1:])] * outputs
    sizes = split_sizes(d, None if split is None else [int(s) for s in split], num, outputs)
    return [(x.dtype, x.shape[:axis] + (s,) + x.shape[axis + 1:]) for s in sizes]


# ------------------------------------------------------ normalization, shapes
def layer_norm_rule(node: Node) -> Types:
    """LayerNormalization: Y like X; the optional Mean and InvStdDev in the stash type (float32), with X's
    leading axes (before `axis`) and 1 for the normalized ones."""
    if int(node.attr("stash_type", 1)) != 1:
        raise ShapeError(f"stash_type={node.attr('stash_type')} is not supported (only 1, float32)")
    x = input_of(node, 0)
    types: Types = [(x.dtype, x.shape)]
    stats: Shape = None
    if x.shape is not None:
        axis = normalize_axis(int(node.attr("axis", -1)), len(x.shape))
        stats = tuple(x.shape[:axis]) + (1,) * (len(x.shape) - axis)
    return types + [(np.dtype(np.float32), stats)] * (len(node.outputs) - 1)


def constant_of_shape_rule(node: Node) -> Types:
    value = node.attr("value")
    dtype = np.dtype(np.float32) if value is None else np.asarray(value).dtype
    if value is not None and np.asarray(value).size != 1:
        raise ShapeError(f"value must hold one element, it holds {np.asarray(value).size}")
    dims = const_ints(node, 0)
    if dims is None:
        s = input_of(node, 0).shape
        rank = s[0] if s is not None and len(s) == 1 else None
        return [(dtype, (None,) * rank if isinstance(rank, int) else None)]
    if any(d < 0 for d in dims):
        raise ShapeError(f"shape {dims} has a negative dimension")
    return [(dtype, tuple(dims))]


def range_count(start: Any, limit: Any, delta: Any) -> int:
    """How many elements Range(start, limit, delta) has: max(ceil((limit - start) / delta), 0), exactly for
    integers, in float64 for floats."""
    if delta == 0:
        raise ShapeError("delta is 0")
    if all(np.asarray(v).dtype.kind in "iu" for v in (start, limit, delta)):
        return max(-(-(int(limit) - int(start)) // int(delta)), 0)
    span = (float(limit) - float(start)) / float(delta)
    if not math.isfinite(span):
        raise ShapeError(f"Range({start}, {limit}, {delta}) has no finite number of elements")
    return max(math.ceil(span), 0)


def range_rule(node: Node) -> Types:
    parts = [input_of(node, i) for i in range(3)]
    if any(p.dtype != parts[0].dtype for p in parts):
        raise ShapeError(f"input types {sorted({str(p.dtype) for p in parts})} differ")
    if int(node.attr("stash_type", 1)) not in (0, 1):
        raise ShapeError(f"stash_type={node.attr('stash_type')} is not supported (only 1, float32, and 0, the type)")
    if any(p.const is None for p in parts):
        return [(parts[0].dtype, (None,))]
    start, limit, delta = (np.asarray(p.const).reshape(-1)[0] for p in parts)
    return [(parts[0].dtype, (range_count(start, limit, delta),))]


def size_rule(node: Node) -> Types:
    input_of(node, 0)
    return [(np.dtype(np.int64), ())]
