"""Calibration: the DAC and ADC full-scale ranges of every crossbar layer, set from data.

Used by `leac compile --calibrate DATA.npz`: the ranges are stored in the
Program, and the board and the simulator use the same numbers. A Program
without them runs with the per-vector input rule and worst-case ADC ranges
(`lea_compiler.schedule.lower`); nothing fits ranges on the data it scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lea_compiler import interpreter
from lea_compiler.chip import Chip
from lea_compiler.chunks import samples_per_chunk
from lea_compiler.datasets import Dataset
from lea_compiler.errors import BadDataError
from lea_compiler.grouping import grouped_matmul, vector_runs
from lea_compiler.program import Layer, Program

CHUNK_SAMPLES = 4096
"""Most samples per digital reference run (fewer when `chunks.CHUNK_BYTES` says so)."""

ADC_HEADROOM = 1.25
"""ADC full scale = this x the largest ideal column current seen in calibration."""


@dataclass(frozen=True)
class Calibration:
    """Full-scale ranges set from the data: DAC input per layer, ADC current per layer block."""

    input_full_scale: dict[str, float]
    adc_full_scale_uA: dict[str, list[float]]


def calibrate(program: Program, datasets: Sequence[Dataset], chip: Chip) -> Calibration:
    """Set each layer's DAC range to max |x| of its input over the data (digital reference run),
    and each block's ADC range to ADC_HEADROOM x the largest column current its target
    conductances carry for those inputs (both halves, any copy; in a grouped layer, a column's current
    for its own group's vectors, the only ones that convert it).

    Raises:
        BadDataError: the data overflows float32 on the way to a layer (no finite range).
    """
    nodes = {node.name: node for node in program.graph.nodes_of("MVM")}
    inputs = {name: node.input(0).name for name, node in nodes.items()}  # type: ignore[union-attr]
    feed = program.graph.inputs[0].name
    per_chunk = samples_per_chunk(program.graph, CHUNK_SAMPLES)
    spans = [(data, lo) for data in datasets for lo in range(0, len(data.x), per_chunk)]

    def layer_inputs(data: Dataset, lo: int) -> dict[str, np.ndarray]:
        out = interpreter.run(program.graph, {feed: data.x[lo:lo + per_chunk]}, keep=list(inputs.values()))
        return {name: out[value].reshape(-1, out[value].shape[-1]).astype(np.float64)
                for name, value in inputs.items()}

    # two passes over the data, a chunk at a time (memory bounded by a chunk, not by the data set): the DAC
    # ranges first, then the ADC ranges, which depend on them; one chunk in all is run once
    top = {name: 0.0 for name in nodes}
    overflow: set[str] = set()
    kept = layer_inputs(*spans[0]) if len(spans) == 1 else None
    for data, lo in spans:
        chunk = kept if kept is not None else layer_inputs(data, lo)
        for layer in program.layers:
            x = chunk[layer.name]
            peak = float(np.max(np.abs(x))) if x.size else 0.0
            if not math.isfinite(peak):
                overflow.add(layer.name)
            top[layer.name] = max(top[layer.name], peak, 1.0 if layer.bias_row and len(x) else 0.0)
    x_fs: dict[str, float] = {}
    for layer in program.layers:
        if layer.name in overflow:
            raise BadDataError(f"layer {layer.name!r}: the data drives its input to infinity or NaN (float32 "
                               f"overflow), so no DAC range fits; scale the data down")
        x_fs[layer.name] = max(top[layer.name], 1.0 if layer.bias_row else 0.0) or 1.0
    v_read = chip.periphery.v_read_V
    dac = (1 << (chip.periphery.dac_bits - 1)) - 1
    peaks = {layer.name: np.zeros(len(layer.blocks)) for layer in program.layers}
    for data, lo in spans:
        chunk = kept if kept is not None else layer_inputs(data, lo)
        for layer in program.layers:
            x = chunk[layer.name]
            if layer.bias_row:
                x = np.hstack([x, np.ones((len(x), 1))])
            v = (v_read * np.round(np.clip(x / x_fs[layer.name], -1, 1) * dac) / dac).astype(np.float32)
            levels = np.asarray(layer.levels_uS, dtype=np.float32)
            groups = int(nodes[layer.name].attr("groups", 1))
            for r0, r1 in layer.row_bounds:
                band = [i for i, b in enumerate(layer.blocks) if b.row_start == r0]
                if groups > 1:
                    _grouped_band_peaks(peaks[layer.name], layer, band, levels, vector_runs(v[:, r0:r1], groups))
                    continue
                # every block of the row band, both halves, in one product
                g = np.hstack([levels[t] for i in band
                               for t in (layer.blocks[i].target_pos, layer.blocks[i].target_neg)])
                currents = np.abs(v[:, r0:r1] @ g)
                column_peak = currents.max(axis=0) if len(v) else np.zeros(g.shape[1], np.float32)
                bounds = np.cumsum([0] + [2 * layer.blocks[i].shape[1] for i in band])
                for i, b0, b1 in zip(band, bounds[:-1], bounds[1:], strict=True):
                    peaks[layer.name][i] = max(peaks[layer.name][i], float(column_peak[b0:b1].max()))
    i_fs: dict[str, list[float]] = {}
    for layer in program.layers:
        levels = np.asarray(layer.levels_uS, dtype=np.float32)
        i_fs[layer.name] = [ADC_HEADROOM * float(peak) if peak > 0 else v_read * block.shape[0] * float(levels[-1])
                            for block, peak in zip(layer.blocks, peaks[layer.name], strict=True)]
    return Calibration(x_fs, i_fs)


def _grouped_band_peaks(peaks: np.ndarray, layer: Layer, band: list[int], levels: np.ndarray,
                        runs: np.ndarray) -> None:
    """Raise `peaks[i]` of each block i of a grouped layer's row band to the largest |current| of its columns
    over `runs` (n, G, band rows) of DAC voltages: each column's current from its own group's vector only (the
    only one that converts it), one half at a time laid out at the layer's columns (lea_compiler.grouping)."""
    for polarity in (0, 1):
        g = np.zeros((runs.shape[-1], layer.cols), np.float32)
        for i in band:
            block = layer.blocks[i]
            g[:, block.col_start:block.col_stop] = levels[(block.target_pos, block.target_neg)[polarity]]
        currents = np.abs(grouped_matmul(runs, g))  # (n, cols)
        for i in band:
            block = layer.blocks[i]
            if len(runs):
                peaks[i] = max(peaks[i], float(currents[:, block.col_start:block.col_stop].max()))
