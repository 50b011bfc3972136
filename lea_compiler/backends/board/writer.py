"""The board writer: a Program as a `leac-board` file (`emit_board`) or as records in memory (`board_stream`).

It checks the Program against its chip, then lays out the programming section (write-verify or skip for every
device a copy half occupies) and the inference schedule (the records of each graph node, a crossbar layer's
reads, conversions, combinations, partial sums, scale and bias). The records and their encoding are in
`records`; the bytes written are deterministic.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lea_compiler import __version__
from lea_compiler.backends.board.records import (
    _PERIPHERY_KEYS,
    FORMAT,
    MAX_PROBLEMS,
    RECORD_TYPES,
    STATES,
    VERSION,
    Accumulate,
    Bias,
    BoardArray,
    BoardHeader,
    BoardStream,
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
    _dumps,
    record_line,
)
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.fileio import atomic_write_text
from lea_compiler.ir import Node, Value
from lea_compiler.ops import LEAC_DOMAIN
from lea_compiler.program import Layer, Program
from lea_compiler.program_checks import program_problems

logger = logging.getLogger("lea_compiler.backends.board")  # the package's name, as before the split

DEFAULT_MAX_PULSES = 50
"""Write-verify pulses allowed per device unless the caller says otherwise."""
TOLERANCE_DEFAULT_RULE = "default: a quarter of the smallest gap between adjacent levels"
TOLERANCE_GIVEN_RULE = "given"


@dataclass(frozen=True)
class BoardSummary:
    """What `emit_board` wrote: record counts, the file size and the write-verify settings."""

    writes: int
    skips: int
    arrays: int
    reads: int
    records: int
    bytes: int
    tolerance_uS: float
    max_pulses: int


# --------------------------------------------------------------------------
# Emitting


def default_tolerance_uS(levels_uS: Sequence[float]) -> float:
    """A quarter of the smallest gap between adjacent levels.

    Why a quarter: the verify windows of two neighbouring levels are then at
    least half a gap apart, so a device accepted for one level can never read
    as its neighbour, with margin for read noise.
    """
    levels = np.asarray(levels_uS, dtype=np.float64)
    return float(np.min(np.diff(levels))) / 4.0


def emit_board(
    program: Program,
    path: str | os.PathLike[str],
    *,
    tolerance_uS: float | None = None,
    max_pulses: int = DEFAULT_MAX_PULSES,
) -> BoardSummary:
    """Write the Program as a `leac-board` instruction stream, atomically.

    Args:
        program: The compiled Program.
        path: The file to write (replaced atomically; never half-written).
        tolerance_uS: Write-verify acceptance half-width in uS; None takes
            `default_tolerance_uS` of the chip's levels.
        max_pulses: Programming pulses allowed per device.

    Returns:
        The counts of what was written and the file size.

    Raises:
        UsageError: tolerance or max_pulses out of range.
        InvalidInputError: the Program contradicts its own chip (a damaged or
            hand-edited Program); every problem is listed.
    """
    header, lines = _emit_lines(program, tolerance_uS, max_pulses)
    text = "\n".join([_dumps(header.to_json()), *lines]) + "\n"
    data_bytes = len(text.encode("ascii"))
    atomic_write_text(path, text)
    counts = header.counts
    summary = BoardSummary(
        writes=counts["write"],
        skips=counts["skip"],
        arrays=counts["select_array"],
        reads=counts["read"],
        records=header.records,
        bytes=data_bytes,
        tolerance_uS=header.tolerance_uS,
        max_pulses=header.max_pulses,
    )
    logger.info("wrote %s: %s", os.fspath(path), summary)
    return summary


def board_stream(
    program: Program, *, tolerance_uS: float | None = None, max_pulses: int = DEFAULT_MAX_PULSES
) -> BoardStream:
    """The stream `emit_board` would write, as records in memory (for tools and tests)."""
    tolerance, rule = _tolerance(program, tolerance_uS, max_pulses)
    records = tuple(_records(program, tolerance, max_pulses))
    counts = Counter(r.op for r in records)
    skipped = Counter(r.state for r in records if isinstance(r, Skip))
    return BoardStream(_header(program, tolerance, rule, max_pulses, counts, skipped), records)


def _emit_lines(
    program: Program, tolerance_uS: float | None, max_pulses: int
) -> tuple[BoardHeader, list[str]]:
    tolerance, rule = _tolerance(program, tolerance_uS, max_pulses)
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    lines = []
    for record in _records(program, tolerance, max_pulses):
        counts[record.op] += 1
        if isinstance(record, Skip):
            skipped[record.state] += 1
        lines.append(record_line(record))
    return _header(program, tolerance, rule, max_pulses, counts, skipped), lines


def _tolerance(program: Program, tolerance_uS: float | None, max_pulses: int) -> tuple[float, str]:
    problems = []
    if (
        isinstance(max_pulses, bool)
        or not isinstance(max_pulses, (int, np.integer))
        or max_pulses < 1
    ):
        problems.append(f"max_pulses must be an integer >= 1, got {max_pulses!r}")
    levels = program.chip.device.levels_uS
    if tolerance_uS is None:
        tolerance, rule = default_tolerance_uS(levels), TOLERANCE_DEFAULT_RULE
    else:
        tolerance, rule = tolerance_uS, TOLERANCE_GIVEN_RULE
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, (int, float))
            or not (math.isfinite(tolerance) and tolerance > 0)
        ):
            problems.append(f"tolerance_uS must be a positive number, got {tolerance_uS!r}")
    if problems:
        raise UsageError("; ".join(problems))
    half_gap = 2 * default_tolerance_uS(levels)
    if tolerance >= half_gap:
        logger.warning(
            "tolerance %g uS is at least half the smallest level gap (%g uS): neighbouring levels' "
            "verify windows overlap",
            tolerance,
            half_gap,
        )
    return float(tolerance), rule


def _header(
    program: Program,
    tolerance: float,
    rule: str,
    max_pulses: int,
    counts: Mapping[str, int],
    skipped: Mapping[str, int],
) -> BoardHeader:
    chip = program.chip
    arrays = tuple(
        BoardArray(a, chip.array(a).rows, chip.array(a).cols) for a in program.arrays_used
    )
    periphery = {key: getattr(chip.periphery, key) for key in _PERIPHERY_KEYS}
    model = program.model
    return BoardHeader(
        format=FORMAT,
        version=VERSION,
        leac_version=__version__,
        model={"name": model.get("name"), "file": model.get("file"), "sha256": model.get("sha256")},
        program_leac_version=program.leac_version,
        compile_options=dict(program.options),
        chip={"name": chip.display_name, "fingerprint": program.chip_fingerprint},
        arrays=arrays,
        levels_uS=tuple(chip.device.levels_uS),
        periphery=periphery,
        tolerance_uS=tolerance,
        tolerance_rule=rule,
        max_pulses=int(max_pulses),
        inputs=tuple(_value_info(v) for v in program.graph.inputs),
        outputs=tuple(_value_info(v) for v in program.graph.outputs),
        counts={op: int(counts.get(op, 0)) for op in RECORD_TYPES},
        records=int(sum(counts.values())),
        skipped={state: int(skipped.get(state, 0)) for state in STATES},
    )


def _value_info(value: Value) -> dict[str, Any]:
    return {
        "name": value.name,
        "dtype": _dtype_name(value.dtype),
        "shape": None if value.shape is None else tuple(value.shape),
    }


def _dtype_name(dtype: np.dtype[Any]) -> str:
    return "string" if dtype == np.dtype(object) else str(dtype)


def _records(program: Program, tolerance: float, max_pulses: int) -> Iterator[Record]:
    """Every record after the header: programming first, then the inference schedule.

    The Program is checked against its chip before the first record comes out.
    """
    halves = _halves(program)
    owners = _check_program(program, halves)
    yield from _programming(program, halves, owners, tolerance, max_pulses)
    yield from _schedule(program)


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


def _halves(program: Program) -> list[_Half]:
    halves = []
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for polarity, half, target in (
                    ("pos", copy.pos, block.target_pos),
                    ("neg", copy.neg, block.target_neg),
                ):
                    region = half.region
                    halves.append(
                        _Half(
                            layer.name,
                            block.index,
                            copy.copy,
                            polarity,
                            region.array,
                            region.row,
                            region.col,
                            np.asarray(half.levels),
                            np.asarray(target),
                        )
                    )
    return halves


def _check_program(program: Program, halves: Sequence[_Half]) -> dict[int, np.ndarray]:
    """Check that the Program agrees with itself, its chip and its graph; return each used array's owner map.

    The owner map of an array holds, per device, the index in `halves` of the
    copy half occupying it (-1: unused). A Program written by `leac compile`
    always passes; a damaged or hand-edited one gets every problem listed
    (`lea_compiler.program.program_problems`, which `Program.load` runs too).

    Raises:
        InvalidInputError: the Program contradicts itself, its chip or its graph.
    """
    problems = program_problems(program)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        lines = "\n".join(f"  {p}" for p in shown) + (f"\n  ... and {more} more" if more else "")
        raise InvalidInputError(f"the Program does not agree with its chip or graph:\n{lines}")
    owners: dict[int, np.ndarray] = {}
    for index, half in enumerate(halves):
        if half.array not in owners:
            arr = program.chip.array(half.array)
            owners[half.array] = np.full((arr.rows, arr.cols), -1, dtype=np.int64)
        rows, cols = half.levels.shape
        owners[half.array][half.row:half.row + rows, half.col:half.col + cols] = index
    return owners


def _is_crossbar(node: Node) -> bool:
    return node.op_type == "MVM" and node.domain == LEAC_DOMAIN


def _programming(
    program: Program,
    halves: Sequence[_Half],
    owners: Mapping[int, np.ndarray],
    tolerance: float,
    max_pulses: int,
) -> Iterator[Record]:
    """select_array, then write/skip for each of its devices by row then column; arrays by id."""
    chip = program.chip
    levels = tuple(chip.device.levels_uS)
    for array_id in sorted(owners):
        owner = owners[array_id]
        level_map = np.full(owner.shape, -2, dtype=np.int64)
        for index in np.unique(owner[owner >= 0]).tolist():
            half = halves[index]
            rows, cols = half.levels.shape
            level_map[half.row : half.row + rows, half.col : half.col + cols] = half.levels
        used = np.flatnonzero(owner.ravel() >= 0)  # row-major: by row, then column
        yield SelectArray(array_id, int(used.size))
        state, g_uS = chip.stuck_map(array_id)
        width = owner.shape[1]
        for flat, level in zip(used.tolist(), level_map.ravel()[used].tolist(), strict=True):
            row, col = divmod(flat, width)
            if level >= 0:
                yield Write(array_id, row, col, level, levels[level], tolerance, max_pulses)
                continue
            half = halves[int(owner[row, col])]
            yield Skip(
                array_id,
                row,
                col,
                STATES[0] if state[row, col] > 0 else STATES[1],
                float(g_uS[row, col]),
                half.layer,
                half.block,
                half.copy,
                half.polarity,
                int(half.targets[row - half.row, col - half.col]),
            )


def _schedule(program: Program) -> Iterator[Record]:
    """The inference schedule, in graph node order."""
    layers = {layer.name: layer for layer in program.layers}
    for node in program.graph.nodes:
        if _is_crossbar(node):
            yield from _layer_schedule(program, node, layers[node.name])
        else:
            yield _digital(node)


def _vectors_per_sample(value: Value | None) -> int | None:
    """Vectors the layer multiplies per sample: the dimensions between the batch and the last."""
    if value is None or value.shape is None:
        return None
    dims = value.shape[1:-1]
    if not all(isinstance(d, int) for d in dims):
        return None
    count = int(np.prod([int(d) for d in dims], dtype=np.int64)) if dims else 1  # type: ignore[arg-type]
    return count if count >= 1 else None


def _column_scale_and_bias(node: Node, layer: Layer) -> tuple[tuple[float, ...], np.ndarray | None]:
    """The scale the periphery divides by and the digital bias it adds, with the stuck-device
    compensation folded in: scale_j / gain_j, and bias_j + offset_j."""
    scale = np.ravel(np.asarray(layer.scale, dtype=np.float64))
    bias = node.input(2)
    values = None if layer.bias_row or bias is None else np.ravel(np.asarray(bias.const, dtype=np.float64))
    if layer.column_gain is not None:
        scale = scale / np.asarray(layer.column_gain, dtype=np.float64)
    if layer.column_offset is not None and np.any(np.asarray(layer.column_offset) != 0):
        values = (values if values is not None else 0.0) + np.asarray(layer.column_offset, dtype=np.float64)
    return tuple(float(v) for v in scale), values


def _layer_schedule(program: Program, node: Node, layer: Layer) -> Iterator[Record]:
    """layer, then per block read+convert per copy half and combine; accumulate, scale, bias."""
    x, bias = node.input(0), node.input(2)
    inputs = layer.rows - int(layer.bias_row)
    scale_uS, bias_values = _column_scale_and_bias(node, layer)
    mode = "row" if layer.bias_row else ("digital" if bias_values is not None else "none")
    adcs = program.chip.periphery.adcs_per_array
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
    )
    for block in layer.blocks:
        rows, cols = block.shape
        x_start, x_stop = min(block.row_start, inputs), min(block.row_stop, inputs)
        one_row = (
            layer.rows - 1 - block.row_start
            if layer.bias_row and block.row_stop == layer.rows
            else None
        )
        for copy in block.copies:
            for polarity, half in (("pos", copy.pos), ("neg", copy.neg)):
                region = half.region
                yield Read(
                    layer.name,
                    block.index,
                    copy.copy,
                    polarity,
                    region.array,
                    region.row,
                    region.col,
                    rows,
                    cols,
                    x_start,
                    x_stop,
                    one_row,
                )
                yield Convert(
                    layer.name,
                    block.index,
                    copy.copy,
                    polarity,
                    region.array,
                    region.col,
                    region.col + cols,
                    adcs,
                    -(-cols // adcs),
                    block.adc_full_scale_uA,
                )
        ids = [copy.copy for copy in block.copies]
        selection = np.asarray(block.selection, dtype=bool)
        chosen = tuple(
            tuple(ids[i] for i in np.flatnonzero(selection[:, j]).tolist()) for j in range(cols)
        )
        yield Combine(layer.name, block.index, block.col_start, block.col_stop, chosen, layer.beta)
    yield Accumulate(
        layer.name, layer.cols, tuple((b.index, b.col_start, b.col_stop) for b in layer.blocks)
    )
    yield Scale(
        layer.name,
        scale_uS,
        program.chip.periphery.v_read_V,
        1.0 if layer.bias_row else 0.0,
        layer.input_full_scale,
    )
    if mode == "digital":
        assert bias_values is not None
        dtype = bias.const.dtype if bias is not None and bias.const is not None else np.dtype(np.float32)
        yield Bias(layer.name, tuple(float(v) for v in bias_values.tolist()), _dtype_name(dtype))


def _digital(node: Node) -> Digital:
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
        raise InvalidInputError(
            f"{node.describe()}: {what} is a {array.dtype} tensor, which a board file cannot carry"
        )
    return {"dtype": _dtype_name(array.dtype), "shape": list(array.shape), "data": data}


def _json_safe(value: Any, node: Node, key: str) -> Any:
    """An attribute value as plain JSON (module docstring: tensors and non-finite floats)."""
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
    raise InvalidInputError(
        f"{node.describe()}: attribute {key!r} holds a {type(value).__name__}, which a "
        "board file cannot carry"
    )
