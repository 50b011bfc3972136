"""compensate: a per-column digital gain (and offset) that cancels the coherent part of the known stuck devices' error.

After `select`, the compiler knows what every output column will compute on
this chip, noise aside: the mean over its selected copies of the programmed
differences G+ - G-, with every stuck device at its stuck conductance. Call
that column's effective weights u_j = D_eff[:, j] / s_j and its intended
(quantized) weights t_j = D_t[:, j] / s_j, with s_j the column's scale.

Stuck devices do not only add noise-like error. Their error is correlated
with the weights: the placer minimises sum |G_stuck - G_target|, so a
stuck-high device (500 uS against targets of 133..233 uS) lands preferably on
the device that is "on" (a smaller error), where it inflates |w|; a stuck-low
one on the "off" partner, where it inflates |w| too. What is left is a column
gain, plus, for inputs that are not zero-mean (pixels, tanh outputs), an
offset. Averaging copies cannot remove either, as every copy shares it;
a per-column affine correction in the digital periphery can, for two
operations per column:

    y_j = a_j * (x . u_j) + b_j    fitted so that y_j ~ x . t_j

(a_j, b_j) is the least-squares fit of x . t_j by x . u_j over the layer's
inputs x on the calibration data (`leac compile --calibrate DATA.npz`; from
the digital reference run of the graph, at most `MAX_SAMPLES` input vectors
per layer, seeded subsample). The pass needs that data: a fit on the weights
alone (the gain that is optimal for zero-mean white inputs) was tried and
helped as often as it hurt on the digits MLP (greedy placement, 10% and 20%
stuck devices, k = 1, 3, 6), while the fit on data gained 2 to 35 points
there; so without `--calibrate` the pipeline does not run this pass.

A column whose selected copies hold no stuck device keeps a_j = 1, b_j = 0
exactly; a layer with none gets no correction at all (its Program is
unchanged).

IR drop (a chip whose `periphery.lines` have resistance): the wires attenuate
every column's current, more for regions far from the drivers and sense
amplifiers, and the attenuation is known at compile time from the placement
and the programmed levels (`lea_compiler.irdrop`). Then u_j is the column of
the matrices the copies' halves are read with (M+ - M-, the exact linear map
of the resistive network), and every column is fitted: the gain takes out the
column's mean attenuation, the offset the part a G+ and a G- region at
different places leave of the common conductance. What the fit cannot take
out is the attenuation's variation along a column (rows far from the sense
amplifier lose more than near ones). With `--bias row`, only the gain is fitted (the offset has no
digital bias step to ride on).

The correction is for the chip compiled for: `leac simulate --ideal` ignores
it (ideal devices have no stuck error), a simulation on another chip file
applies it as the board would. The board folds a_j into the column's scale
and b_j into its digital bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lea_compiler import interpreter
from lea_compiler.chip import Chip
from lea_compiler.errors import BadDataError, CompileError
from lea_compiler.grouping import grouped_matmul, vector_runs
from lea_compiler.ir import Graph, Node
from lea_compiler.irdrop import region_map
from lea_compiler.passes.encode import Encoded, EncodedCopy
from lea_compiler.passes.place import Placed
from lea_compiler.passes.quantize import QuantizedLayer
from lea_compiler.passes.select import Selection
from lea_compiler.passes.tile import Tiling

MAX_SAMPLES = 8192
"""Calibration samples run, and input vectors per layer used for the fit (seeded subsamples beyond)."""

COMPENSATE_MODES = ("columns", "none")


@dataclass(frozen=True, eq=False)
class Compensation:
    """Fact on an MVM: y_j = gain[j] * (crossbar result)_j + offset[j], before the digital bias."""

    gain: np.ndarray  # (cols,)
    offset: np.ndarray  # (cols,), zeros with a bias row
    columns: int  # columns with a stuck device among their selected copies

    def describe(self) -> str:
        return (f"compensated {self.columns} columns; gain {float(self.gain.min()):.3g}.."
                f"{float(self.gain.max()):.3g}, offset {float(self.offset.min()):.3g}..{float(self.offset.max()):.3g}")


def effective_differences(node: Node, chip: Chip | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(D_eff, D_t, stuck) over the whole layer, uS: the mean selected programmed difference of every
    weight with stuck values included, the target difference, and whether a selected copy is stuck there.
    With a `chip` whose lines have resistance, a copy's difference is that of the matrices its G+ and G-
    regions are read with (`irdrop.region_map` at their places): the IR drop is then part of D_eff."""
    quantized, tiling = node.fact(QuantizedLayer), node.fact(Tiling)
    encoded, selection = node.fact(Encoded), node.fact(Selection)
    if quantized is None or tiling is None or encoded is None or selection is None:
        raise CompileError(f"compensate needs selected layers; run select first ({node.describe()})")
    placed = node.fact(Placed) if chip is not None and not chip.periphery.lines.is_default else None
    target = quantized.target_difference_uS()  # joint: the unquantized W s
    effective = target.copy()
    stuck = np.zeros(target.shape, dtype=bool)
    for block in tiling.blocks:
        rows = slice(block.row_start, block.row_stop)
        cols = slice(block.col_start, block.col_stop)
        mask = selection.masks[block.index]  # (alpha, cols)
        copies = [encoded.get(block.index, c) for c in range(mask.shape[0])]
        if placed is not None:
            assert chip is not None
            diffs = np.stack([_read_difference(c, placed, chip) for c in copies])
        else:
            diffs = np.stack([c.difference_uS for c in copies])  # (alpha, rows, cols)
        effective[rows, cols] = (diffs * mask[:, None, :]).sum(axis=0) / mask.sum(axis=0)
        for c, copy in enumerate(copies):
            hit = (copy.pos_levels < 0) | (copy.neg_levels < 0)
            stuck[rows, cols] |= hit & mask[c][None, :]
    return effective, target, stuck


def _read_difference(copy: EncodedCopy, placed: Placed, chip: Chip) -> np.ndarray:
    """M+ - M-: the matrices a copy's two halves are read with through the chip's lines, at their places."""
    halves = []
    for polarity, g in (("pos", copy.pos_uS), ("neg", copy.neg_uS)):
        region = placed.region(copy.block, polarity, copy.copy)
        halves.append(region_map(g, chip.periphery.lines, row=region.row, col=region.col,
                                 array_rows=chip.array(region.array).rows))
    return halves[0] - halves[1]


def layer_inputs(graph: Graph, data: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Every MVM's input vectors (n, rows) over `data`, from the digital reference run, subsampled (a grouped
    MVM's by whole runs of one vector per group, so vector i is of group i mod G)."""
    nodes = graph.nodes_of("MVM")
    keep = {node.name: node.input(0).name for node in nodes}  # type: ignore[union-attr]
    feed = graph.inputs[0].name
    rng = np.random.default_rng(seed)
    if len(data) > MAX_SAMPLES:  # bounds the reference run's memory (a conv layer has many vectors per sample)
        data = data[np.sort(rng.choice(len(data), MAX_SAMPLES, replace=False))]
    out = interpreter.run(graph, {feed: data}, keep=list(keep.values()))
    result = {}
    for node in nodes:
        value = out[keep[node.name]]
        groups = int(node.attr("groups", 1))  # a grouped layer's vectors stay in runs of one per group
        runs = vector_runs(value.reshape(-1, value.shape[-1]), groups).astype(np.float64)
        if len(runs) * groups > MAX_SAMPLES:
            runs = runs[np.sort(rng.choice(len(runs), max(MAX_SAMPLES // groups, 1), replace=False))]
        result[node.name] = runs.reshape(-1, value.shape[-1])
    return result


@dataclass(frozen=True, eq=False)
class Compensate:
    """The compensate pass (see the module docstring). `data`: calibration inputs of the model, batch first."""

    data: np.ndarray
    name: str = "compensate"
    chip: Chip | None = None  # with line resistance: every column is fitted, against its IR drop too

    def run(self, graph: Graph) -> Graph:
        inputs: dict[str, np.ndarray] | None = None
        ir_drop = self.chip is not None and not self.chip.periphery.lines.is_default
        for node in graph.nodes_of("MVM"):
            effective, target, stuck = effective_differences(node, self.chip)
            hit = np.ones(stuck.shape[1], dtype=bool) if ir_drop else stuck.any(axis=0)
            if not hit.any():
                continue
            quantized = node.fact(QuantizedLayer)
            assert quantized is not None
            scale = np.asarray(quantized.scale, dtype=np.float64)
            if inputs is None:
                inputs = layer_inputs(graph, self.data)
            x = inputs[node.name]
            if not np.all(np.isfinite(x)):
                raise BadDataError(f"{node.describe()}: the calibration data drives its input to infinity or NaN "
                                   "(float32 overflow); scale the data down")
            a, b = fit_columns(x, effective / scale, target / scale, quantized.bias_row, int(node.attr("groups", 1)))
            gain, offset = np.ones(len(a)), np.zeros(len(a))
            gain[hit], offset[hit] = a[hit], b[hit]
            if not np.all(np.isfinite(offset)):
                raise BadDataError(f"{node.describe()}: the calibration data is too large for a finite "
                                   "compensation offset; scale the data down")
            node.set_fact(Compensation(gain, offset, int(hit.sum())))
        return graph


def fit_columns(x: np.ndarray, effective: np.ndarray, target: np.ndarray, bias_row: bool, groups: int = 1
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per column (a_j, b_j), the least-squares fit of x . t_j by a_j (x . u_j) + b_j over the input vectors x
    (n, inputs), for the effective and target crossbar matrices u, t (rows, cols; weight units). With a bias
    row, x gets its constant 1 and only the gain is fitted (b = 0). In a grouped layer (`groups` = G > 1, x in
    runs of one vector per group) a column is fitted over its own group's vectors only, the ones it computes."""
    if bias_row:
        x = np.hstack([x, np.ones((len(x), 1))])
    if groups > 1:  # one value per column and run, from the column's own group's vector (lea_compiler.grouping)
        runs = vector_runs(x, groups)
        xu, xt = grouped_matmul(runs, effective), grouped_matmul(runs, target)
    else:
        xu, xt = x @ effective, x @ target
    if bias_row:
        a = _ratio((xu * xt).sum(axis=0), (xu * xu).sum(axis=0))
        return a, np.zeros_like(a)
    mu, mt = xu.mean(axis=0), xt.mean(axis=0)
    du, dt = xu - mu, xt - mt
    a = _ratio((du * dt).sum(axis=0), (du * du).sum(axis=0))
    return a, mt - a * mu


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 1 where den is 0 (a column that reads nothing keeps its gain) or the ratio is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return np.where(np.isfinite(r) & (r > 0), r, 1.0)
