"""Lowering: a Program as the schedule a chip runs, the one place where the crossbar layer's arithmetic is fixed.

The programming section says, per device a copy half occupies, which level is written or that it is skipped
(stuck when compiled); the inference schedule says what the periphery does per input vector, node by node:
a crossbar layer's reads, conversions, combinations, partial sums, scale and bias (docs/board-format.md).
Every read reads its region `Program.reads` times (`leac compile --reads`), its digitised currents averaged.
The board writer serialises these records; the simulator executes them (`lea_compiler.schedule.execute`), so
what is simulated is what the board runs.

Input and ADC ranges, the same for both: a Program calibrated at compile time (`leac compile --calibrate`)
carries one input full scale per layer and one ADC range per block, and the records carry them. Without
calibration, each input vector is scaled by its own largest magnitude (`scale.x_fs` null: the per-vector rule,
which the periphery computes for every vector), and each block's ADC range is `worst_case_full_scale_uA`: the
largest current any of its columns can carry for an input within the DAC's range, so nothing clips on the
chip compiled for (a stuck-high device of another chip, or write noise, may still push a column past it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lea_compiler.errors import InvalidInputError
from lea_compiler.geometry import Occupancy, Region
from lea_compiler.ir import Node, Value
from lea_compiler.ops import LEAC_DOMAIN
from lea_compiler.problems import collected
from lea_compiler.program import Layer, Program
from lea_compiler.program.checks import program_problems
from lea_compiler.schedule.records import (
    MAX_PROBLEMS,
    STATES,
    Accumulate,
    Bias,
    Combine,
    Convert,
    Digital,
    LayerStart,
    Read,
    Record,
    Scale,
    SelectArray,
    Skip,
    Write,
)

UNUSED = -2
"""`ArrayProgram.level` of a device no copy half occupies."""
SKIPPED = -1
"""`ArrayProgram.level` of a device left unprogrammed because it was stuck when compiled."""


@dataclass(frozen=True, eq=False)
class ArrayProgram:
    """One array as the programming section leaves it: per device the level written (>= 0), `SKIPPED` or
    `UNUSED`; for every skipped device its conductance on the chip compiled for and the level it should have
    had (0 elsewhere)."""

    array: int
    level: np.ndarray  # (rows, cols) int64
    stuck_uS: np.ndarray  # (rows, cols) float64
    target: np.ndarray  # (rows, cols) int64
    programmed_uS: np.ndarray | None = None  # as-programmed Program: (rows, cols) what each device holds, NaN unused
    _whole: dict[tuple[bytes, bool], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def conductance(self, read: Read, levels_uS: np.ndarray, *, stuck: bool = True) -> np.ndarray:
        """The conductances a read's region holds without noise: levels where written, and where skipped the
        stuck values (what the Program represents, `program.represented_matrix`), or with `stuck=False` the
        levels the skipped devices should have had. A fresh array; the whole array's is computed once (lowering,
        the cost model and the simulator each ask for every region)."""
        return self.conductances(levels_uS, stuck=stuck)[region_window(read)].copy()

    def conductances(self, levels_uS: np.ndarray, *, stuck: bool = True) -> np.ndarray:
        """The whole array's conductances as `conductance` gives a region's: computed once, read only."""
        key = (np.asarray(levels_uS).tobytes(), stuck)
        if key not in self._whole:
            skipped = self.stuck_uS if stuck else levels_uS[self.target]
            whole = np.where(self.level >= 0, levels_uS[np.maximum(self.level, 0)], skipped)
            whole.setflags(write=False)
            self._whole[key] = whole
        return self._whole[key]


def region_window(read: Read) -> tuple[slice, slice]:
    """The (rows, cols) slices of a read's region in its array."""
    return slice(read.row, read.row + read.rows), slice(read.col, read.col + read.cols)


def worst_case_full_scale_uA(conductances: Sequence[np.ndarray], v_read_V: float) -> float:
    """The ADC range of a block without calibration data: v_read x the largest column sum of conductance
    over the block's copy halves, the most a column can carry with every input at the DAC's full scale."""
    return float(v_read_V * max(float(np.max(np.sum(g, axis=0))) for g in conductances))


# --------------------------------------------------------------------------
# The programming section


@dataclass(frozen=True, eq=False)
class _Half:
    """One copy half (G+ or G-) of one block as the programming section sees it."""

    layer: str
    block: int
    copy: int
    polarity: str
    array: int
    row: int
    col: int
    levels: np.ndarray  # (rows, cols) level index; -1: stuck, not programmed
    targets: np.ndarray  # (rows, cols) the block's target level index
    programmed_uS: np.ndarray | None = None  # as-programmed: what each device holds


@dataclass(frozen=True, eq=False)
class Lowered:
    """A checked Program ready to lower: its copy halves, who occupies each device, and each array's program."""

    program: Program
    halves: tuple[_Half, ...]
    owners: Mapping[int, np.ndarray]  # per used array: index in `halves` of each device's half, -1 unused
    arrays: Mapping[int, ArrayProgram]


def prepare(program: Program, *, check: bool = True) -> Lowered:
    """Check the Program against itself, its chip and its graph, and lay out its devices.

    A Program written by `leac compile` always passes; a damaged or hand-edited one gets every problem listed
    (`program.checks.program_problems`, which `Program.load` runs too). `check=False` skips the checks for a
    caller that has them done (the simulator: `Program.load` or the compiler made the Program).

    Raises:
        InvalidInputError: the Program contradicts itself, its chip or its graph.
    """
    if check:
        collected(program_problems(program), MAX_PROBLEMS).raise_if_any(
            "the Program does not agree with its chip or graph")
    halves = tuple(_halves(program))
    chip_arrays = {a.id: (a.rows, a.cols) for a in program.chip.arrays}
    occupancy = Occupancy({h.array: chip_arrays[h.array] for h in halves})
    levels: dict[int, np.ndarray] = {a: np.full(owner.shape, UNUSED, dtype=np.int64)
                                     for a, owner in occupancy.owner.items()}
    targets: dict[int, np.ndarray] = {a: np.zeros(owner.shape, dtype=np.int64) for a, owner in occupancy.owner.items()}
    programmed: dict[int, np.ndarray] | None = None
    if program.as_programmed:
        programmed = {a: np.full(owner.shape, np.nan) for a, owner in occupancy.owner.items()}
    for index, half in enumerate(halves):
        rows, cols = half.levels.shape
        occupancy.take(index, Region(half.array, half.row, half.col), (rows, cols))  # checked not to overlap
        window = (slice(half.row, half.row + rows), slice(half.col, half.col + cols))
        levels[half.array][window] = half.levels
        targets[half.array][window] = half.targets
        if programmed is not None:
            programmed[half.array][window] = half.programmed_uS
    owners = occupancy.owner
    arrays = {}
    skips = {array_id: level == SKIPPED for array_id, level in levels.items()}
    maps = program.chip.stuck_maps(array_id for array_id in sorted(levels) if skips[array_id].any())
    for array_id in sorted(levels):
        level = levels[array_id]
        skipped = skips[array_id]
        if array_id in maps:
            g_uS = maps[array_id][1]
            arrays[array_id] = ArrayProgram(array_id, level, np.where(skipped & ~np.isnan(g_uS), g_uS, 0.0),
                                            np.where(skipped, targets[array_id], 0),
                                            None if programmed is None else programmed[array_id])
        else:
            arrays[array_id] = ArrayProgram(array_id, level, np.zeros(level.shape), np.zeros(level.shape, np.int64),
                                            None if programmed is None else programmed[array_id])
    return Lowered(program, halves, owners, arrays)


def _halves(program: Program) -> Iterator[_Half]:
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                pairs = (("pos", copy.pos, block.target_pos), ("neg", copy.neg, block.target_neg))
                for polarity, half, target in pairs:
                    region = half.region
                    yield _Half(layer.name, block.index, copy.copy, polarity, region.array, region.row, region.col,
                                np.asarray(half.levels), np.asarray(target), half.programmed_uS)


def programming_records(lowered: Lowered, tolerance: float, max_pulses: int) -> Iterator[Record]:
    """select_array, then write/skip for each of its devices by row then column; arrays by id."""
    chip = lowered.program.chip
    levels = tuple(chip.device.levels_uS)
    for array_id, program in lowered.arrays.items():
        owner = lowered.owners[array_id]
        used = np.flatnonzero(owner.ravel() >= 0)  # row-major: by row, then column
        yield SelectArray(array_id, int(used.size))
        state, g_uS = chip.stuck_map(array_id)
        width = owner.shape[1]
        for flat, level in zip(used.tolist(), program.level.ravel()[used].tolist(), strict=True):
            row, col = divmod(flat, width)
            if level >= 0:
                yield Write(array_id, row, col, level, levels[level], tolerance, max_pulses)
                continue
            half = lowered.halves[int(owner[row, col])]
            yield Skip(array_id, row, col, STATES[0] if state[row, col] > 0 else STATES[1], float(g_uS[row, col]),
                       half.layer, half.block, half.copy, half.polarity,
                       int(half.targets[row - half.row, col - half.col]))


# --------------------------------------------------------------------------
# The inference schedule


def inference_records(lowered: Lowered) -> Iterator[Record]:
    """The inference schedule, in graph node order."""
    program = lowered.program
    layers = {layer.name: layer for layer in program.layers}
    for node in program.graph.nodes:
        if is_crossbar(node):
            yield from _layer_schedule(lowered, node, layers[node.name])
        else:
            yield digital_record(node)


def is_crossbar(node: Node) -> bool:
    """Whether a graph node runs on the crossbars (a `leac.MVM`); every other node runs in the periphery."""
    return node.op_type == "MVM" and node.domain == LEAC_DOMAIN


def _vectors_per_sample(value: Value | None) -> int | None:
    """Vectors the layer multiplies per sample: the dimensions between the batch and the last."""
    if value is None or value.shape is None:
        return None
    dims = value.shape[1:-1]
    if not all(isinstance(d, int) for d in dims):
        return None
    count = int(np.prod([int(d) for d in dims], dtype=np.int64)) if dims else 1  # type: ignore[arg-type]
    return count if count >= 1 else None


def column_scale_and_bias(node: Node, layer: Layer, *, compensated: bool = True
                          ) -> tuple[tuple[float, ...], np.ndarray | None]:
    """The scale the periphery divides by and the digital bias it adds, with the stuck-device
    compensation folded in: scale_j / gain_j, and bias_j + offset_j (`compensated=False`: without it)."""
    scale = np.ravel(np.asarray(layer.scale, dtype=np.float64))
    bias = node.input(2)
    values = None if layer.bias_row or bias is None else np.ravel(np.asarray(bias.const, dtype=np.float64))
    if compensated and layer.column_gain is not None:
        scale = scale / np.asarray(layer.column_gain, dtype=np.float64)
    if compensated and layer.column_offset is not None and np.any(np.asarray(layer.column_offset) != 0):
        values = (values if values is not None else 0.0) + np.asarray(layer.column_offset, dtype=np.float64)
    return tuple(float(v) for v in scale), values


def _layer_schedule(lowered: Lowered, node: Node, layer: Layer) -> Iterator[Record]:
    """layer, then per block read+convert per copy half and combine; accumulate, scale, bias."""
    program = lowered.program
    x, bias = node.input(0), node.input(2)
    inputs = layer.rows - int(layer.bias_row)
    scale_uS, bias_values = column_scale_and_bias(node, layer)
    mode = "row" if layer.bias_row else ("digital" if bias_values is not None else "none")
    periphery = program.chip.periphery
    adcs = periphery.adcs_per_array
    levels = np.asarray(program.chip.device.levels_uS, dtype=np.float64)
    yield LayerStart(
        name=layer.name,
        input=x.name if x is not None else "",
        output=node.outputs[0].name,
        rows=layer.rows,
        cols=layer.cols,
        inputs=inputs,
        bias_row=layer.bias_row,
        bias=mode,
        alpha=layer.alpha,
        beta=layer.beta,
        encoding=layer.encoding,
        scale_uS=scale_uS,
        blocks=len(layer.blocks),
        row_blocks=tuple(layer.row_bounds),
        col_blocks=tuple(layer.col_bounds),
        vectors_per_sample=_vectors_per_sample(x),
        groups=int(node.attr("groups", 1)),
    )
    for block in layer.blocks:
        rows, cols = block.shape
        x_start, x_stop = min(block.row_start, inputs), min(block.row_stop, inputs)
        one_row = layer.rows - 1 - block.row_start if layer.bias_row and block.row_stop == layer.rows else None
        reads = [Read(layer.name, block.index, copy.copy, polarity, half.region.array, half.region.row,
                      half.region.col, rows, cols, x_start, x_stop, one_row, program.reads)
                 for copy in block.copies for polarity, half in (("pos", copy.pos), ("neg", copy.neg))]
        full_scale = block.adc_full_scale_uA
        if full_scale is None:
            full_scale = worst_case_full_scale_uA(
                [lowered.arrays[r.array].conductance(r, levels) for r in reads], periphery.v_read_V)
        for read in reads:
            yield read
            yield Convert(layer.name, block.index, read.copy, read.polarity, read.array, read.col, read.col + cols,
                          adcs, -(-cols // adcs), full_scale)
        ids = [copy.copy for copy in block.copies]
        selection = np.asarray(block.selection, dtype=bool)
        chosen = tuple(tuple(copy for copy, used in zip(ids, column, strict=True) if used)
                       for column in selection.T.tolist())  # per column, the copies it averages
        yield Combine(layer.name, block.index, block.col_start, block.col_stop, chosen, layer.beta)
    yield Accumulate(layer.name, layer.cols, tuple((b.index, b.col_start, b.col_stop) for b in layer.blocks))
    yield Scale(layer.name, scale_uS, periphery.v_read_V, 1.0 if layer.bias_row else 0.0, layer.input_full_scale)
    if mode == "digital":
        assert bias_values is not None
        dtype = bias.const.dtype if bias is not None and bias.const is not None else np.dtype(np.float32)
        yield Bias(layer.name, tuple(float(v) for v in bias_values.tolist()), dtype_name(dtype))


# --------------------------------------------------------------------------
# Digital nodes


def dtype_name(dtype: np.dtype[Any]) -> str:
    """A dtype's name in a board file ("string" for numpy's object strings)."""
    return "string" if dtype == np.dtype(object) else str(dtype)


def digital_record(node: Node) -> Digital:
    """A non-crossbar node as its `digital` record: attributes and constant inputs as plain JSON."""
    constants = {}
    for value in node.inputs:
        if value is not None and value.const is not None and value.name not in constants:
            constants[value.name] = _tensor_json(value.const, node, value.name)
    attrs = {key: _json_safe(node.attrs[key], node, key) for key in sorted(node.attrs)}
    return Digital(
        node=node.name,
        op_type=node.op_type,
        domain=node.domain,
        inputs=tuple(None if v is None else v.name for v in node.inputs),
        outputs=tuple(v.name for v in node.outputs),
        attrs=attrs,
        constants=constants,
    )


def _float_json(value: float) -> float | dict[str, str]:
    if math.isfinite(value):
        return value
    return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _tensor_json(array: np.ndarray, node: Node, what: str) -> dict[str, Any]:
    """{dtype, shape, data}: `data` flat in C order (strings for a string tensor)."""
    array = np.asarray(array)
    if array.dtype == np.dtype(object) or array.dtype.kind in "US":
        data: list[Any] = [
            v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)
            for v in array.ravel().tolist()
        ]
    elif array.dtype.kind in "biu":
        data = array.ravel().tolist()
    elif array.dtype.kind == "f":
        data = [_float_json(v) for v in array.ravel().tolist()]
    else:
        raise InvalidInputError(f"{node.describe()}: {what} is a {array.dtype} tensor, which a board file cannot carry")
    return {"dtype": dtype_name(array.dtype), "shape": list(array.shape), "data": data}


def _json_safe(value: Any, node: Node, key: str) -> Any:
    """An attribute value as plain JSON (tensors and non-finite floats: docs/board-format.md)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _float_json(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, np.ndarray):
        return {"tensor": _tensor_json(value, node, f"attribute {key!r}")}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, node, key) for v in value]
    raise InvalidInputError(f"{node.describe()}: attribute {key!r} holds a {type(value).__name__}, which a "
                            "board file cannot carry")
