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
  device (see the `encode` pass), which is what the paper's RME does. Its
  pairs are enumerated for up to 1024 levels (`RME_MAX_PAIRS`); more levels
  must be evenly spaced (their pairs are then `simple`'s) or are refused.
- `joint`: the pairs of `simple`, but the averaged copies of a column are
  encoded together, as a sigma-delta across copies, so that their mean (not
  each copy) approaches W s (see the `encode` pass for the maths). Here the
  targets `pos`/`neg` are one copy's nearest pair (what placement costs
  against); `exact_uS` keeps the unquantized W s the copies aim at; and the
  scale and the reported errors are those of the mean of `copies` (beta)
  jointly encoded copies on ideal devices. It uses `simple`'s pairs, not
  `rme`'s: with uneven levels `rme` reaches a few more differences through
  pairs with both devices above the lowest level, but with 20% stuck devices
  those pairs cost accuracy (float digits MLP, k = 1, 6 chip seeds: rme
  9.8 points below simple, joint with simple's pairs 4.4 above;
  benchmarks/bench_encoding.py), and the mean of the copies needs no finer
  code.

The scale s_j is chosen per column (or one per layer with
`scale="per-layer"`) to minimise the squared error in weight units,
sum_i (W_ij - Q(W_ij s_j) / s_j)^2, where Q rounds to the nearest reachable
difference; candidates are s = d_max / (t max_i |W_ij|) for t on a grid in
[0.2, 1] (t < 1 lets the largest weights clip so the rest get finer steps).
A ternary matrix {-a, 0, a} gets s = d_max / a and no error. With `joint`
the error minimised is that of the mean of the beta copies (`joint_mean`), so
the scale is the one for the mean, not for one copy.

Noise (`noise_uS2`, `leac compile --scale-noise chip`): the devices' write
and read noise add to every pair's difference a random error of variance
v = 2 sigma_w^2 + 2 r^2 / 3 (uS^2; sigma_w the write noise, r the half-width
of the uniform read noise, whose term is divided by N when every region is
read N times and averaged, `leac compile --reads N`; `pair_noise_variance`),
v / beta for the mean of
beta copies, whatever the weight. In weight units that is v / (beta s^2), so
a larger s (clipping more of the largest weights) makes the noise smaller.
With `noise_uS2 = v` the scale minimises the expected squared error of the
averaged weights, quantization plus noise:
sum_i (W_ij - Q(W_ij s_j) / s_j)^2 + rows v / (beta s_j^2).

Bias: `bias="row"` puts b as one more crossbar row driven by a constant
full-scale input (the matrix is [W; b]); `bias="digital"` (the default) adds b
exactly in the digital periphery after averaging, which costs one addition
per output and no devices.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from lea_compiler.chip import level_index_dtype
from lea_compiler.errors import CompileError, InvalidModelError, UsageError
from lea_compiler.ir import Graph, Node
from lea_compiler.layer_sizes import CountSpec, ensemble_counts
from lea_compiler.passes.canonicalize import require_mvm

ENCODINGS = ("simple", "rme", "joint")
SCALE_MODES = ("per-column", "per-layer")
BIAS_MODES = ("digital", "row")

_CLIP_GRID = np.linspace(0.2, 1.0, 81)
RME_MAX_PAIRS = 1024**2
"""Most level pairs `rme` enumerates (1024 levels: ~1 s, ~100 MB). More levels must be evenly spaced, and
their pairs are then simple's; unevenly spaced ones have up to L^2 distinct differences (4096 levels: 16.8 M,
24 s and 1.4 GB to sort), so rme refuses them and joint or simple, whose pairs are 2 L - 1, take over."""
_PAIRS_PER_BAND = 2**20
"""Level pairs `rme` sorts at once while building its code (~50 MB of scratch)."""


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
        if encoding not in ENCODINGS:
            raise CompileError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
        return _build_code(tuple(float(v) for v in levels_uS), encoding)

    def nearest(self, target_uS: np.ndarray) -> np.ndarray:
        """Index into `diffs_uS` of the reachable difference nearest to each target."""
        d = self.diffs_uS
        hi = np.clip(np.searchsorted(d, target_uS), 1, len(d) - 1)
        lo = hi - 1
        return np.where(np.abs(target_uS - d[lo]) <= np.abs(d[hi] - target_uS), lo, hi)


def _first_per_difference(levels: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the pairs (pos, neg), the one with the least total conductance for each difference (to 1e-9 uS),
    ascending by difference. Ties keep the earliest pair, so reducing consecutive chunks and then their
    concatenation picks what one call on all the pairs would."""
    diff = np.round(levels[pos] - levels[neg], 9)
    order = np.lexsort((levels[pos] + levels[neg], diff))  # stable: by difference, then least total
    first = np.concatenate([[True], np.diff(diff[order]) > 0])
    return pos[order][first], neg[order][first]


def _rme_pairs(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rme's pairs: every (p, n), reduced to one per difference. Built a band of p at a time, so memory
    is that of the distinct differences (2 L - 1 for evenly spaced levels), not of all L^2 pairs.

    Beyond `RME_MAX_PAIRS`, levels evenly spaced to 1% of their gap get simple's pairs: every difference
    of evenly spaced levels is a multiple of the gap, and simple's pair for it has the least total; the
    real levels' extra differences are within 4% of a gap of those. Uneven levels are refused."""
    count = len(levels)
    if count * count > RME_MAX_PAIRS:
        line = np.linspace(levels[0], levels[-1], count)
        if np.max(np.abs(levels - line)) > 0.01 * (levels[-1] - levels[0]) / (count - 1):
            raise UsageError(
                f"--encoding rme enumerates every pair of levels, and the device's {count} unevenly spaced "
                f"levels make {count * count:,} pairs, more than leac's {RME_MAX_PAIRS:,} "
                f"({math.isqrt(RME_MAX_PAIRS)} levels); use --encoding joint or simple")
        return _simple_pairs(count)
    band = max(1, _PAIRS_PER_BAND // count)
    kept = []
    for start in range(0, count, band):
        p, n = np.meshgrid(np.arange(start, min(start + band, count)), np.arange(count), indexing="ij")
        kept.append(_first_per_difference(levels, p.ravel(), n.ravel()))
    return _first_per_difference(levels, np.concatenate([k[0] for k in kept]), np.concatenate([k[1] for k in kept]))


def _simple_pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    """simple's pairs: (0, i) for the negative differences, (i, 0) for zero and the positive ones."""
    i = np.arange(count)
    return np.concatenate([np.zeros(count - 1, int), i]), np.concatenate([i[:0:-1], np.zeros(count, int)])


@functools.lru_cache(maxsize=8)
def _build_code(levels_uS: tuple[float, ...], encoding: str) -> PairCode:
    """`PairCode.build`, computed once per level set and encoding (its arrays are read-only)."""
    levels = np.asarray(levels_uS, dtype=np.float64)
    pos, neg = _rme_pairs(levels) if encoding == "rme" else _simple_pairs(len(levels))
    pos, neg = _first_per_difference(levels, pos, neg)
    dtype = level_index_dtype(len(levels))
    code = PairCode(levels_uS, encoding, levels[pos] - levels[neg], pos.astype(dtype), neg.astype(dtype))
    for array in (code.diffs_uS, code.pos, code.neg):
        array.flags.writeable = False
    return code


@dataclass(frozen=True, eq=False)
class QuantizedLayer:
    """Fact on an MVM: target levels of every differential pair of its crossbar matrix."""

    levels_uS: tuple[float, ...]
    encoding: str
    bias_row: bool  # the last matrix row is the bias, driven by a constant input
    scale: np.ndarray  # (cols,) uS of conductance difference per weight unit
    pos: np.ndarray  # (rows, cols) level index of G+ (`level_index_dtype`)
    neg: np.ndarray  # (rows, cols) level index of G-
    rms_error: float  # weight units, over the whole matrix
    max_error: float
    relative_rms_error: float  # rms error / rms weight
    copies: int = 1  # joint: the copies averaged per column (beta) the scale and errors are for
    exact_uS: np.ndarray | None = None  # joint: (rows, cols) the unquantized W s that the copies' mean aims at

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pos.shape[0]), int(self.pos.shape[1]))

    def target_uS(self) -> tuple[np.ndarray, np.ndarray]:
        """Target conductances (G+, G-) in uS."""
        levels = np.asarray(self.levels_uS)
        return levels[self.pos], levels[self.neg]

    def target_difference_uS(self) -> np.ndarray:
        """What the averaged copies of each pair aim at (uS): the target difference T+ - T-, or for
        `joint` the unquantized W s."""
        if self.exact_uS is not None:
            return self.exact_uS
        g_pos, g_neg = self.target_uS()
        return g_pos - g_neg

    def dequantized(self) -> np.ndarray:
        """The matrix the targets represent, in weight units (`joint`: the mean of `copies` jointly encoded
        copies on ideal devices)."""
        if self.exact_uS is not None:
            code = PairCode.build(self.levels_uS, self.encoding)
            return joint_mean(self.exact_uS, code, self.copies) / self.scale
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


def joint_mean(target_uS: np.ndarray, code: PairCode, copies: int) -> np.ndarray:
    """The mean difference of `copies` copies encoded jointly (sigma-delta) on ideal devices: copy n
    (1-based) holds Q(n t - S_{n-1}), where S is the running sum of the copies before it."""
    total = np.zeros_like(target_uS, dtype=np.float64)
    for n in range(1, copies + 1):
        total = total + code.diffs_uS[code.nearest(n * target_uS - total)]
    single = code.diffs_uS[code.nearest(target_uS)]
    mean = total / copies
    # a pair whose joint mean is further off than one copy keeps identical copies (the encode pass does too)
    return np.where(np.abs(mean - target_uS) > np.abs(single - target_uS), single, mean)


def pair_noise_variance(write_noise_uS: float, read_noise_uS: float, reads: int = 1) -> float:
    """Variance (uS^2) of one pair's conductance difference from the device noise: two devices, each with
    Gaussian write noise (standard deviation `write_noise_uS`) and uniform read noise (+-`read_noise_uS`)
    averaged over `reads` reads (`leac compile --reads`: the read noise's variance divided by the reads)."""
    return 2.0 * write_noise_uS**2 + 2.0 * read_noise_uS**2 / (3.0 * reads)


def choose_scale(matrix: np.ndarray, code: PairCode, per_layer: bool, copies: int = 1,
                 noise_uS2: float = 0.0) -> np.ndarray:
    """Per-column scales (uS per weight unit) minimising the squared quantization error (of the mean of
    `copies` jointly encoded copies for `joint`), plus the device noise's (`noise_uS2`: one pair's variance)."""
    d_max = float(np.max(np.abs(code.diffs_uS)))
    amax = np.max(np.abs(matrix), axis=0) if not per_layer else np.full(matrix.shape[1], np.max(np.abs(matrix)))
    # a column of zeros, or of weights so small that d_max / amax overflows, is all zeros to the levels
    amax = np.where(amax > d_max / np.finfo(np.float64).max * 16, amax, 1.0)

    def error(scale: np.ndarray) -> np.ndarray:
        if code.encoding == "joint":
            q = joint_mean(matrix * scale, code, copies) / scale
        else:
            q = code.diffs_uS[code.nearest(matrix * scale)] / scale
        err = np.sum((matrix - q) ** 2, axis=0)
        if noise_uS2 > 0:
            err = err + matrix.shape[0] * noise_uS2 / (copies * scale**2)
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
    matrix: np.ndarray, levels_uS: tuple[float, ...], encoding: str, per_layer: bool, bias_row: bool,
    copies: int = 1, noise_uS2: float = 0.0,
) -> QuantizedLayer:
    """Quantize one crossbar matrix (rows = inputs, cols = outputs) to level pairs (`copies`: the copies
    averaged per column, which `joint` encodes together; `noise_uS2`: one pair's noise variance, which the
    scale then accounts for)."""
    code = PairCode.build(levels_uS, encoding)
    joint = encoding == "joint"
    scale = choose_scale(matrix, code, per_layer, copies, noise_uS2)
    index = code.nearest(matrix * scale)
    pos, neg = code.pos[index], code.neg[index]
    levels = np.asarray(levels_uS)
    held = joint_mean(matrix * scale, code, copies) if joint else levels[pos] - levels[neg]
    error = matrix - held / scale
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
        copies=copies if joint else 1,
        exact_uS=matrix * scale if joint else None,
    )


@dataclass(frozen=True)
class Quantize:
    """The quantize pass (see the module docstring)."""

    levels_uS: tuple[float, ...]
    encoding: str = "simple"
    scale: str = "per-column"
    bias: str = "digital"
    copies: CountSpec = 1  # copies averaged per column (beta, per layer): `joint` chooses its scale for their mean
    noise_uS2: float = 0.0  # one pair's noise variance (uS^2) the scale accounts for (`pair_noise_variance`)
    alpha: CountSpec | None = None  # copies programmed (k), which a layer `copies` does not name averages
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
        if isinstance(self.copies, int) and (isinstance(self.copies, bool) or self.copies < 1):
            raise CompileError(f"copies averaged per column must be at least 1, got {self.copies}")
        if not (self.noise_uS2 >= 0 and np.isfinite(self.noise_uS2)):
            raise CompileError(f"the noise variance must be finite and non-negative, got {self.noise_uS2}")

    def run(self, graph: Graph) -> Graph:
        require_mvm(graph, self.name)
        mvms = graph.nodes_of("MVM")
        k, beta = (self.copies, None) if self.alpha is None else (self.alpha, self.copies)
        averaged = ensemble_counts(k, beta, [node.name for node in mvms])[1]
        done: dict[tuple[int, int | None, int], QuantizedLayer] = {}  # replicas sharing weights share levels
        for node in mvms:
            bias_row = self.bias == "row" and node.input(2) is not None
            copies = averaged[node.name]
            key = (id(node.input(1)), id(node.input(2)) if bias_row else None, copies)
            if key not in done:
                weight = node.input(1)
                assert weight is not None and weight.const is not None
                if weight.const.size == 0:  # a layer with no inputs or no outputs: nothing to put on crossbars
                    rows, cols = weight.const.shape
                    raise InvalidModelError(
                        f"{node.describe()}: its weight matrix is {rows} x {cols} (no "
                        f"{'inputs' if rows == 0 else 'outputs'}); leac maps only layers with at least one input "
                        "and one output")
                matrix = crossbar_matrix(node, bias_row)
                bias = node.input(2)
                if not np.all(np.isfinite(matrix)) or (bias is not None and bias.const is not None
                                                        and not np.all(np.isfinite(bias.const))):
                    raise InvalidModelError(  # bad numbers in the model: invalid input (3), not a compile error
                        f"{node.describe()}: the weights or the bias contain NaN or infinity (after folding its "
                        "attributes, such as Gemm's alpha and beta, and any BatchNormalization into them)")
                done[key] = quantize_matrix(matrix, self.levels_uS, self.encoding, self.scale == "per-layer", bias_row,
                                            copies, self.noise_uS2)
            node.set_fact(done[key])
        return graph
