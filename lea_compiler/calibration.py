"""Calibration: the DAC and ADC full-scale ranges of every crossbar layer, set from data.

Used by `leac compile --calibrate DATA.npz` (ranges stored in the Program, so
the board and the simulator use the same numbers) and by the simulator when
the Program carries none (it then calibrates on the data it simulates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lea_compiler import interpreter
from lea_compiler.chip import Chip
from lea_compiler.datasets import Dataset
from lea_compiler.program import Program

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
    conductances carry for those inputs (both halves, any copy)."""
    nodes = {node.name: node for node in program.graph.nodes_of("MVM")}
    inputs = {name: node.input(0).name for name, node in nodes.items()}  # type: ignore[union-attr]
    feed = program.graph.inputs[0].name
    kept: dict[str, list[np.ndarray]] = {name: [] for name in nodes}
    for data in datasets:
        for start in range(0, len(data.x), 4096):
            out = interpreter.run(program.graph, {feed: data.x[start:start + 4096]}, keep=list(inputs.values()))
            for name, value in inputs.items():
                kept[name].append(out[value].reshape(-1, out[value].shape[-1]).astype(np.float64))
    x_fs: dict[str, float] = {}
    i_fs: dict[str, list[float]] = {}
    v_read = chip.periphery.v_read_V
    dac = (1 << (chip.periphery.dac_bits - 1)) - 1
    for layer in program.layers:
        x = np.concatenate(kept[layer.name]) if kept[layer.name] else np.zeros((0, layer.rows))
        if layer.bias_row:
            x = np.hstack([x, np.ones((len(x), 1))])
        top = float(np.max(np.abs(x))) if x.size else 0.0
        x_fs[layer.name] = max(top, 1.0 if layer.bias_row else 0.0) or 1.0
        v = v_read * np.round(np.clip(x / x_fs[layer.name], -1, 1) * dac) / dac
        levels = np.asarray(layer.levels_uS)
        ranges = []
        for block in layer.blocks:
            vb = v[:, block.row_start:block.row_stop]
            peak = 0.0
            for target in (block.target_pos, block.target_neg):
                if len(vb):
                    peak = max(peak, float(np.max(np.abs(vb @ levels[target]))))
            fallback = v_read * block.shape[0] * levels[-1]
            ranges.append(ADC_HEADROOM * peak if peak > 0 else fallback)
        i_fs[layer.name] = ranges
    return Calibration(x_fs, i_fs)


