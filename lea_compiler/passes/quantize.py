"""quantize: every MVM's matrix becomes target conductance levels on differential pairs.

A weight w in column j is stored as two devices, G+ and G-, each programmed to
one of the chip's levels l_0 < ... < l_{L-1} (`device.levels_uS`); the column
current is proportional to sum_i x_i (G+_ij - G-_ij), so the crossbar computes
x @ W with W_ij ~ (G+_ij - G-_ij) / s_j, where s_j is the column's scale (uS of
conductance difference per weight unit). The digital periphery divides by
s_j after the ADC.

Encodings (which level pair represents a difference):

- `simple`: one device of the pair stays at the lowest level, the other
  carries the magnitude: d in {+-(l_i - l_0)}; zero is (l_0, l_0). This is the
  seed paper's simple encoding (ternary weights use the extreme states).
- `rme` (reduced mapping error): any pair (l_p, l_n); for each reachable
  difference the pair with the smallest G+ + G- is used (less read current).
  With evenly spaced levels the reachable differences are the same as
  `simple`'s; with uneven levels there are more. After placement, when the
  defect map is known, `rme` also re-chooses the healthy partner of a stuck
  device (see the `encode` pass), which is what the paper's RME does.

The scale s_j is chosen per column (or one per layer with
`scale="per-layer"`) to minimise the squared error in weight units,
sum_i (W_ij - Q(W_ij s_j) / s_j)^2, where Q rounds to the nearest reachable
difference; candidates are s = d_max / (t max_i |W_ij|) for t on a grid in
[0.2, 1] (t < 1 lets the largest weights clip so the rest get finer steps).
A ternary matrix {-a, 0, a} gets s = d_max / a and no error.

Bias: `bias="row"` puts b as one more crossbar row driven by a constant
full-scale input (the matrix is [W; b]); `bias="digital"` (the default) adds b
exactly in the digital periphery after averaging, which costs one addition
per output and no devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lea_compiler.errors import CompileError, InvalidModelError
from lea_compiler.ir import Graph, Node

ENCODINGS = ("simple", "rme")
SCALE_MODES = ("per-column", "per-layer")
BIAS_MODES = ("digital", "row")

_CLIP_GRID = np.linspace(0.2, 1.0, 81)


@dataclass(frozen=True, eq=False)
class PairCode:
    """The reachable conductance differences of one encoding and the level pair for each."""

    levels_uS: tuple[float, ...]
    encoding: str
    diffs_uS: np.ndarray  # ascending differences G+ - G-
    pos: np.ndarray  # level index of G+ for each difference
    neg: np.ndarray  # level index of G- for each difference

    @staticmethod
    def build(levels_uS: tuple[float, ...], encoding: str) -> PairCode:
        levels = np.asarray(levels_uS, dtype=np.float64)
        count = len(levels)
        if encoding == "simple":
            i = np.arange(count)
            pos = np.concatenate([np.zeros(count - 1, int), i])
            neg = np.concatenate([i[:0:-1], np.zeros(count, int)])
        elif encoding == "rme":
            pos, neg = (a.ravel() for a in np.meshgrid(np.arange(count), np.arange(count), indexing="ij"))
        else:
            raise CompileError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
        diff = levels[pos] - levels[neg]
        total = levels[pos] + levels[neg]
        order = np.lexsort((total, np.round(diff, 9)))  # by difference, then least total conductance
        diff, pos, neg = diff[order], pos[order], neg[order]
        first = np.concatenate([[True], np.diff(np.round(diff, 9)) > 0])
        return PairCode(tuple(levels_uS), encoding, diff[first], pos[first].astype(np.int8), neg[first].astype(np.int8))

    def nearest(self, target_uS: np.ndarray) -> np.ndarray:
        """Index into `diffs_uS` of the reachable difference nearest to each target."""
        d = self.diffs_uS
        hi = np.clip(np.searchsorted(d, target_uS), 1, len(d) - 1)
        lo = hi - 1
        return np.where(np.abs(target_uS - d[lo]) <= np.abs(d[hi] - target_uS), lo, hi)


@dataclass(frozen=True, eq=False)
class QuantizedLayer:
    """Fact on an MVM: target levels of every differential pair of its crossbar matrix."""

    levels_uS: tuple[float, ...]
    encoding: str
    bias_row: bool  # the last matrix row is the bias, driven by a constant input
    scale: np.ndarray  # (cols,) uS of conductance difference per weight unit
    pos: np.ndarray  # (rows, cols) int8 level index of G+
    neg: np.ndarray  # (rows, cols) int8 level index of G-
    rms_error: float  # weight units, over the whole matrix
    max_error: float
    relative_rms_error: float  # rms error / rms weight

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pos.shape[0]), int(self.pos.shape[1]))

    def target_uS(self) -> tuple[np.ndarray, np.ndarray]:
        """Target conductances (G+, G-) in uS."""
        levels = np.asarray(self.levels_uS)
        return levels[self.pos], levels[self.neg]

    def dequantized(self) -> np.ndarray:
        """The matrix the targets represent, in weight units."""
        g_pos, g_neg = self.target_uS()
        return (g_pos - g_neg) / self.scale

    def describe(self) -> str:
        rows, cols = self.shape
        return (
            f"{rows} x {cols} pairs, {self.encoding}, {len(self.levels_uS)} levels"
            f"{', bias row' if self.bias_row else ''}; rms error {self.rms_error:.4g} "
            f"({100 * self.relative_rms_error:.2f}% of rms weight), max {self.max_error:.4g}"
        )


def crossbar_matrix(node: Node, bias_row: bool) -> np.ndarray:
    """The matrix an MVM puts on crossbars: W, or [W; b] with a bias row (float64)."""
    w = node.input(1)
    assert w is not None and w.const is not None
    matrix = np.asarray(w.const, dtype=np.float64)
    b = node.input(2)
    if bias_row and b is not None:
        assert b.const is not None
        matrix = np.vstack([matrix, np.asarray(b.const, dtype=np.float64)[None, :]])
    return matrix


def choose_scale(matrix: np.ndarray, code: PairCode, per_layer: bool) -> np.ndarray:
    """Per-column scales (uS per weight unit) minimising the squared quantization error."""
    d_max = float(np.max(np.abs(code.diffs_uS)))
    amax = np.max(np.abs(matrix), axis=0) if not per_layer else np.full(matrix.shape[1], np.max(np.abs(matrix)))
    amax = np.where(amax > 0, amax, 1.0)

    def error(scale: np.ndarray) -> np.ndarray:
        q = code.diffs_uS[code.nearest(matrix * scale)] / scale
        err = np.sum((matrix - q) ** 2, axis=0)
        return np.full_like(err, err.sum()) if per_layer else err

    # from no clipping (t = 1) down; a later t must be strictly better, so ties keep less clipping
    best_scale = d_max / amax
    best_err = error(best_scale)
    for t in _CLIP_GRID[-2::-1]:
        scale = d_max / (t * amax)
        err = error(scale)
        better = err < best_err * (1 - 1e-9) - 1e-15
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
    return best_scale


def quantize_matrix(
    matrix: np.ndarray, levels_uS: tuple[float, ...], encoding: str, per_layer: bool, bias_row: bool
) -> QuantizedLayer:
    """Quantize one crossbar matrix (rows = inputs, cols = outputs) to level pairs."""
    code = PairCode.build(levels_uS, encoding)
    scale = choose_scale(matrix, code, per_layer)
    index = code.nearest(matrix * scale)
    pos, neg = code.pos[index], code.neg[index]
    levels = np.asarray(levels_uS)
    error = matrix - (levels[pos] - levels[neg]) / scale
    rms_w = float(np.sqrt(np.mean(matrix**2))) if matrix.size else 0.0
    rms = float(np.sqrt(np.mean(error**2))) if matrix.size else 0.0
    return QuantizedLayer(
        levels_uS=tuple(levels_uS),
        encoding=encoding,
        bias_row=bias_row,
        scale=scale,
        pos=pos,
        neg=neg,
        rms_error=rms,
        max_error=float(np.max(np.abs(error))) if matrix.size else 0.0,
        relative_rms_error=rms / rms_w if rms_w > 0 else 0.0,
    )


@dataclass(frozen=True)
class Quantize:
    """The quantize pass (see the module docstring)."""

    levels_uS: tuple[float, ...]
    encoding: str = "simple"
    scale: str = "per-column"
    bias: str = "digital"
    name: str = "quantize"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise CompileError(f"unknown encoding {self.encoding!r}; choose one of {', '.join(ENCODINGS)}")
        if self.scale not in SCALE_MODES:
            raise CompileError(f"unknown scale mode {self.scale!r}; choose one of {', '.join(SCALE_MODES)}")
        if self.bias not in BIAS_MODES:
            raise CompileError(f"unknown bias mode {self.bias!r}; choose one of {', '.join(BIAS_MODES)}")
        if len(self.levels_uS) < 2:
            raise CompileError("the device needs at least 2 conductance levels")

    def run(self, graph: Graph) -> Graph:
        mvms = graph.nodes_of("MVM")
        if not mvms:
            raise CompileError("quantize needs leac.MVM nodes; run canonicalize first (or the model has no "
                               "matrix product with constant weights)")
        done: dict[tuple[int, int | None], QuantizedLayer] = {}  # layers sharing weights (replicas) share levels
        for node in mvms:
            bias_row = self.bias == "row" and node.input(2) is not None
            key = (id(node.input(1)), id(node.input(2)) if bias_row else None)
            if key not in done:
                matrix = crossbar_matrix(node, bias_row)
                bias = node.input(2)
                if not np.all(np.isfinite(matrix)) or (bias is not None and bias.const is not None
                                                        and not np.all(np.isfinite(bias.const))):
                    raise InvalidModelError(  # bad numbers in the model: invalid input (3), not a compile error
                        f"{node.describe()}: the weights or the bias contain NaN or infinity (after folding its "
                        "attributes, such as Gemm's alpha and beta, and any BatchNormalization into them)")
                done[key] = quantize_matrix(matrix, self.levels_uS, self.encoding, self.scale == "per-layer", bias_row)
            node.set_fact(done[key])
        return graph
