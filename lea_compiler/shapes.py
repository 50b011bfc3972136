"""Shape arithmetic shared by the op type rules (`lea_compiler.ops`), the interpreter and the passes:
symbolic dimensions (an int is known, a string is named, None is unknown), broadcasting, axes, and the
sliding-window geometry of convolutions and pooling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the IR imports the op registry, which imports this module
    from lea_compiler.ir import Node

Dim = int | str | None
"""One dimension: an int when known, a symbolic name (e.g. "batch"), or None when unknown."""

Shape = tuple[Dim, ...] | None
"""A tensor shape; None when even the rank is unknown."""


class ShapeError(Exception):
    """A node's inputs do not fit together (message without the node's name)."""


# ------------------------------------------------------------------ dimensions
def merge_dim(a: Dim, b: Dim) -> Dim:
    """The dimension known from two sources that must agree."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, int) and isinstance(b, int) and a != b:
        raise ShapeError(f"dimensions {a} and {b} differ")
    return a if isinstance(a, int) else b


def broadcast(*shapes: Shape) -> Shape:
    """Numpy/ONNX multidirectional broadcasting over symbolic shapes."""
    if any(s is None for s in shapes):
        return None
    known = [s for s in shapes if s is not None]
    rank = max(len(s) for s in known)
    out: list[Dim] = []
    for axis in range(rank):
        dims = [s[len(s) - rank + axis] for s in known if len(s) - rank + axis >= 0]
        rest = [d for d in dims if d != 1]
        ints = {d for d in rest if isinstance(d, int)}
        if len(ints) > 1:
            raise ShapeError(f"shapes {[list(s) for s in known]} cannot broadcast")
        if ints:
            out.append(ints.pop())
        elif not rest:
            out.append(1)
        elif all(isinstance(d, str) and d == rest[0] for d in rest):
            out.append(rest[0])
        else:
            out.append(None)
    return tuple(out)


def product(dims: Sequence[Dim]) -> Dim:
    """The product of dimensions: an int if all are known, the symbol if it is the only factor."""
    ints = [d for d in dims if isinstance(d, int)]
    if len(ints) == len(dims):
        return int(math.prod(ints))
    unknown = [d for d in dims if not (isinstance(d, int) and d == 1)]
    if len(unknown) == 1 and isinstance(unknown[0], str):
        return unknown[0]
    return None


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def sum_dims(dims: list[Dim]) -> Dim:
    """The sum of dimensions when all are known, else None."""
    ints = [d for d in dims if isinstance(d, int)]
    return sum(ints) if len(ints) == len(dims) else None


def spatial_output(
    size: Dim, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int, ceil_mode: bool
) -> Dim:
    """Output length of a convolution or pooling window sliding over `size`."""
    if not isinstance(size, int):
        return None
    span = dilation * (kernel - 1) + 1
    room = size + pad_begin + pad_end - span
    if room < 0:
        raise ShapeError(f"window of {span} does not fit input of {size} with padding {pad_begin}+{pad_end}")
    out = (math.ceil(room / stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1  # the last window must start inside the input or its left padding
    return out


@dataclass(frozen=True)
class Window:
    """The resolved sliding-window geometry of a Conv or pooling node, always as 2-D.

    A 1-D window (a rank-3 input) is the 2-D window of unit height: kernel, stride and dilation 1 and no
    pads along the height; `rank` says how many spatial axes the node's own tensors have.
    """

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    ceil_mode: bool
    rank: int = 2

    def attributes(self) -> dict[str, list[int]]:
        """kernel_shape, strides, dilations and pads as the node's own rank writes them (1-D: the width's)."""
        if self.rank == 1:
            return {"kernel_shape": [self.kernel[1]], "strides": [self.strides[1]],
                    "dilations": [self.dilations[1]], "pads": [self.pads[1], self.pads[3]]}
        return {"kernel_shape": list(self.kernel), "strides": list(self.strides),
                "dilations": list(self.dilations), "pads": list(self.pads)}


def window_of(node: Node, spatial: Sequence[Dim], kernel: Sequence[int]) -> Window:
    """Resolve strides, dilations, pads and auto_pad of a 1-D or 2-D window op, as ONNX defines them.

    A 1-D window is lifted to the 2-D one of unit height (`Window`), so one geometry serves both.
    """
    rank = len(spatial)
    if rank not in (1, 2) or len(kernel) != rank:
        raise ShapeError(f"only 1-D and 2-D windows are supported, got kernel {list(kernel)} over {rank} "
                         "spatial axes")
    strides = [int(s) for s in node.attr("strides", [1] * rank)]
    dilations = [int(d) for d in node.attr("dilations", [1] * rank)]
    if len(strides) != rank or len(dilations) != rank or min(strides) < 1 or min(dilations) < 1:
        raise ShapeError(f"bad strides {list(strides)} or dilations {list(dilations)}")
    auto_pad = node.attr("auto_pad", "NOTSET")
    ceil_mode = bool(node.attr("ceil_mode", 0))
    declared = [int(p) for p in node.attr("pads", [0] * 2 * rank)] if auto_pad == "NOTSET" else [0] * 2 * rank
    if len(declared) != 2 * rank or min(declared) < 0:
        raise ShapeError(f"bad pads {list(declared)}")
    if rank == 1:  # unit height
        spatial, kernel = (1, spatial[0]), (1, int(kernel[0]))
        strides, dilations = [1, strides[0]], [1, dilations[0]]
        declared = [0, declared[0], 0, declared[1]]
    if auto_pad in ("NOTSET", "VALID"):
        pads = tuple(declared)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        computed: list[int] = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
            if not isinstance(size, int):
                raise ShapeError("auto_pad SAME needs known spatial dimensions")
            out = math.ceil(size / s)
            total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
            computed.append(total)
        small = [t // 2 for t in computed]
        large = [t - t // 2 for t in computed]
        begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        pads = (begin[0], begin[1], end[0], end[1])
        ceil_mode = False
    else:
        raise ShapeError(f"auto_pad {auto_pad!r} is not supported")
    return Window(
        kernel=(int(kernel[0]), int(kernel[1])),
        strides=(strides[0], strides[1]),
        dilations=(dilations[0], dilations[1]),
        pads=(pads[0], pads[1], pads[2], pads[3]),
        ceil_mode=ceil_mode,
        rank=rank,
    )


def window_output(spatial: Sequence[Dim], w: Window) -> tuple[Dim, ...]:
    """The output's spatial dimensions, as many as the window's rank."""
    full = (1, *spatial) if w.rank == 1 else tuple(spatial)
    out = (
        spatial_output(full[0], w.kernel[0], w.strides[0], w.pads[0], w.pads[2], w.dilations[0], w.ceil_mode),
        spatial_output(full[1], w.kernel[1], w.strides[1], w.pads[1], w.pads[3], w.dilations[1], w.ceil_mode),
    )
    return out[2 - w.rank:]
