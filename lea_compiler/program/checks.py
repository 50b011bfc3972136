"""Whether a Program is consistent: every way it contradicts itself, its chip or its graph.

`Program.save` runs it before writing (a failure is a bug in leac) and
`Program.load` after reading (a failure is a damaged or hand-edited file), and
the board backend runs it before emitting anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.chip_limits import MAX_CONDUCTANCE_uS
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.geometry import Occupancy
from lea_compiler.layer_sizes import canonical
from lea_compiler.ops import LEAC_DOMAIN
from lea_compiler.problems import collected
from lea_compiler.program.types import BlockCopy, CopyHalf, Layer, ProgramBlock

if TYPE_CHECKING:  # core.py imports this module (and the schedule imports it); the types are for annotations only
    from lea_compiler.program.core import Program
    from lea_compiler.schedule.halves import Halves

MAX_PROBLEMS = 50
"""Most problems of a damaged Program listed in one error; the rest are counted."""
MAX_READS = 64
"""Most reads of one region per inference (`leac compile --reads`): averaging N reads divides the read noise's
variance by about N, so 64 reads take its standard deviation down 8 times, below any ADC step worth the time
(64 times the analog time and ADC energy of one read)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_finite_number(value: Any) -> bool:
    """A finite int or float (JSON gives ints of any size: one past float's range is not a number leac uses)."""
    if not isinstance(value, int | float | np.integer | np.floating) or isinstance(value, bool | np.bool_):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _not_matrix(value: Any, shape: tuple[int, int], kinds: str, what: str) -> str | None:
    """Why `value` is not a numpy matrix of `shape` with a dtype of `kinds` (`what`: "an integer"), or None."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds or value.shape != shape:
        kind = f"{value.dtype}{list(value.shape)}" if isinstance(value, np.ndarray) else type(value).__name__
        return f"is {kind}, not {what} {shape[0]} x {shape[1]} matrix"
    return None


def _int_matrices(values: list[Any], shape: tuple[int, int], low: int, high: int,
                  ranged: bool = False) -> list[str | None]:
    """Why each of `values` is not an integer matrix of `shape` with entries in low..high (None: it is). The
    entries of all of them are compared at once (not at all if `ranged`: known to be in range); each one's on
    its own only when one is outside."""
    whys = [_not_matrix(value, shape, "iu", "an integer") for value in values]
    if not ranged and not _within([value for value, why in zip(values, whys, strict=True) if why is None], low, high):
        whys = [f"has a level index outside {low}..{high}" if why is None and not _within([value], low, high)
                else why for value, why in zip(values, whys, strict=True)]
    return whys


def _within(values: list[np.ndarray], low: int, high: int) -> bool:
    """Whether every entry of the integer arrays `values` lies in low..high."""
    flat = np.concatenate([value.ravel() for value in values]) if values else np.zeros(0)
    return not flat.size or (int(flat.min()) >= low and int(flat.max()) <= high)


def _float_vector(value: Any, size: int, *, positive: bool) -> bool:
    return (isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.shape == (size,)
            and bool(np.all(np.isfinite(value))) and (not positive or bool(np.all(value > 0))))


def reads_problem(value: Any) -> str | None:
    """The problem with a count of reads per inference (an integer from 1 to `MAX_READS`), if any."""
    if not _is_int(value) or not 1 <= value <= MAX_READS:
        return f"must be an integer from 1 to {MAX_READS}, got {value!r}"
    return None


def is_finite_json(value: Any) -> bool:
    """Whether every number in a JSON value is finite (a board file, like strict JSON, has no NaN)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return False
    return True


def _partition(bounds: list[tuple[int, int]], total: int) -> bool:
    """Whether the sorted distinct [start, stop) ranges cut 0..total into consecutive pieces."""
    end = 0
    for start, stop in bounds:
        if start != end:
            return False
        end = stop
    return end == total


def program_problems(program: Program) -> list[str]:
    """Every way the Program contradicts itself, its chip or its graph; empty for one `leac compile` wrote.

    The backends index arrays by these facts, so `Program.load` and
    `emit_board` refuse a Program with any problem. Checked: the fields'
    types; every layer against its `leac.MVM` node (matrix size, bias); the
    blocks cut the matrix into a grid; target and programmed levels are
    integer matrices of the block's shape with indices in range; alpha
    copies per block and a selection of beta of them per column; every copy
    half lies inside a chip array, overlaps no other, and is marked stuck
    (-1) exactly where the chip's device is stuck; the levels are the chip's;
    scales, ranges and compensations are finite and positive where they must be; the placement solver's
    record and `-k auto`'s (`extra.allocation`) have the types and ranges the summaries read.
    """
    return checked_halves(program)[0]


def checked_halves(program: Program) -> tuple[list[str], Halves | None]:
    """`program_problems`, and when there are none, the Program's copy halves as the placement checks laid them
    out (`schedule.halves.lay_out_halves`, its stuck devices found), for lowering to go on from; None where the
    placement was not looked at or had a problem."""
    problems: list[str] = []
    for name in ("model", "options", "placement", "extra"):
        if not isinstance(getattr(program, name), dict):
            problems.append(f"{name} is not a JSON object")
    if isinstance(program.model, dict) and not (isinstance(program.model.get("name"), str) and all(
            program.model.get(key) is None or isinstance(program.model.get(key), str) for key in ("file", "sha256"))):
        problems.append("model.name must be a string, and model.file and model.sha256 strings or null")
    for name in ("model", "options", "placement", "extra"):
        if not is_finite_json(getattr(program, name)):
            problems.append(f"{name} holds a number that is not finite")
    if isinstance(program.options, dict) and "reads" in program.options \
            and (problem := reads_problem(program.options["reads"])) is not None:
        problems.append(f"options.reads {problem}")
    if isinstance(program.options, dict):  # the copies, which reports quote: what `leac compile -k` takes
        for name in ("k", "beta"):
            if program.options.get(name) is not None:
                try:
                    canonical(program.options[name], name)
                except UsageError as exc:
                    problems.append(f"options.{exc}")
    if isinstance(program.extra, dict) and not isinstance(program.extra.get("calibration", ""), str):
        problems.append("extra.calibration must be a string")
    if isinstance(program.extra, dict) and "programming" in program.extra:
        problems.extend(_programming_problems(program.extra["programming"]))
    if isinstance(program.placement, dict):
        problems.extend(_placement_problems(program.placement))
    if isinstance(program.extra, dict) and "allocation" in program.extra:
        layer_names = {layer.name for layer in program.layers if isinstance(layer.name, str)}
        problems.extend(_allocation_problems(program.extra["allocation"], layer_names))
    if not isinstance(program.leac_version, str):
        problems.append("leac_version is not a string")
    graph = program.graph
    names = [graph.name, *(v.name for v in graph.values())]
    names += [text for node in graph.nodes for text in (node.name, node.op_type, node.domain)]
    if not all(isinstance(text, str) for text in names) or not all(node.name for node in graph.nodes):
        problems.append("graph: a name, op or domain is not a string (or a node name is empty)")
    if not isinstance(graph.metadata, dict) or not isinstance(graph.opset, dict):
        problems.append("graph: metadata and opset must be JSON objects")
    chip = program.chip
    levels = tuple(chip.device.levels_uS)
    mvms = {n.name: n for n in program.graph.nodes if n.op_type == "MVM" and n.domain == LEAC_DOMAIN}
    seen: set[Any] = set()
    for layer in program.layers:
        if not isinstance(layer.name, str) or layer.name in seen:
            problems.append(f"layer name {layer.name!r} is not a string or is used twice")
            continue
        seen.add(layer.name)
        problems.extend(_layer_problems(layer, mvms.get(layer.name), levels))
    for name in sorted(set(mvms) - seen):
        problems.append(f"{mvms[name].describe()} has no mapped layer in the Program")
    programmed = {half.programmed_uS is not None for layer in program.layers for block in layer.blocks
                  for copy in block.copies for half in (copy.pos, copy.neg)}
    if len(programmed) > 1:
        problems.append("some copy halves have programmed conductances and others not: an as-programmed Program "
                        "has them for every half")
    if problems:
        return problems, None  # the placement checks below index by the facts just checked
    laid_out = _halves_fit(chip, program.layers)
    if laid_out is not None:
        return problems, laid_out
    halves = [(layer, block, copy, polarity, half) for layer in program.layers for block in layer.blocks
              for copy in block.copies for polarity, half in (("pos", copy.pos), ("neg", copy.neg))]
    return _half_problems(chip, halves), None


_Half = tuple[Layer, ProgramBlock, BlockCopy, str, CopyHalf]
"""A copy half with where it is: its layer, block, copy and polarity."""


def _halves_fit(chip: Chip, layers: Sequence[Layer]) -> Halves | None:
    """The copy halves of `layers` laid out (`schedule.halves.lay_out_halves`) if every one lies inside a chip
    array, overlaps no other and is marked stuck (-1) exactly where the chip's device is stuck: what
    `_half_problems` finds nothing wrong with, found for all halves at once with numpy rather than half by half
    (a 25 x 25-array Program has thousands of halves); None if one does not.

    The halves laid out, their overlap and their stuck devices are lowering's (`schedule.halves`,
    `schedule.layout.regions_overlap`, `stuck_in_regions`: the one definition of each, which looks at the
    halves' rectangles and the chip's defect entries, not a map of the arrays' every device). Needs the checks
    before it (integer levels of their block's shape, non-negative integer regions)."""
    # here, not at the top: the schedule's records import this module
    from lea_compiler.schedule.halves import lay_out_halves

    try:
        laid_out = lay_out_halves(chip, layers)
    except InvalidInputError:  # a region off the chip or outside its array
        return None
    return laid_out if not laid_out.overlap() and laid_out.stuck_marked() else None


def _half_problems(chip: Chip, halves: list[_Half]) -> list[str]:
    """Every copy half that lies outside its chip array, overlaps another or is marked stuck (-1) where the
    chip's device is not (or the other way round), half by half."""
    problems: list[str] = []
    stuck: dict[int, np.ndarray] = {}
    placed: list[tuple[str, int, np.ndarray, CopyHalf]] = []  # (where, array id, stuck-or-not per device, half)
    for layer, block, copy, polarity, half in halves:
        where = f"layer {layer.name!r} block {block.index} copy {copy.copy} {polarity}"
        region = half.region
        if region.array not in stuck:
            try:
                chip.array(region.array)
            except UsageError:
                problems.append(f"{where}: array {region.array} is not on the chip")
                continue
            stuck[region.array] = chip.stuck_map(region.array)[0] != 0
        placed.append((where, region.array, stuck[region.array], half))
    occupancy = Occupancy({array: state.shape for array, state in stuck.items()})
    for index, (where, array, state, half) in enumerate(placed):
        region = half.region
        rows, cols = half.levels.shape
        if not occupancy.inside(region, (rows, cols)):
            problems.append(f"{where}: region (row {region.row}, col {region.col}) + {rows} x {cols} is outside "
                            f"array {array} ({state.shape[0]} x {state.shape[1]})")
            continue
        other = occupancy.take(index, region, (rows, cols))
        if other is not None:
            problems.append(f"{where}: its region on array {array} overlaps {placed[other][0]}")
            continue
        window = (slice(region.row, region.row + rows), slice(region.col, region.col + cols))
        mismatch = (half.levels == -1) != state[window]
        if np.any(mismatch):
            r, c = (int(i) for i in np.argwhere(mismatch)[0])
            problems.append(
                f"{where}: device (array {array}, row {region.row + r}, col {region.col + c}) is "
                + ("stuck on the chip but the Program programs it" if state[window][r, c]
                   else "marked stuck (-1) in the Program but healthy on the chip"))
    return problems


def _programming_problems(value: Any) -> list[str]:
    """What is wrong with an as-programmed Program's `extra.programming` where leac reads it (docs/programming.md):
    the programmed chip's fingerprint, and the cost's counts and figures."""
    chip = value.get("chip") if isinstance(value, dict) else None
    cost = value.get("cost") if isinstance(value, dict) else None
    if not (isinstance(chip, dict) and isinstance(chip.get("fingerprint"), str) and isinstance(cost, dict)):
        return ["extra.programming must hold chip.fingerprint (a string) and cost (an object)"]
    counts: list[Any] = [cost.get(key) for key in ("pulses", "failed")]
    figures: list[Any] = [cost.get(key) for key in ("time_s", "energy_uJ")]
    if not (all(_is_int(v) and v >= 0 for v in counts) and all(is_finite_number(v) and v >= 0 for v in figures)):
        return ["extra.programming.cost must hold pulses and failed (integers >= 0), time_s and energy_uJ "
                "(numbers >= 0)"]
    return []


def _shown(value: Any, limit: int = 40) -> str:
    """A value from a file for an error message: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_PLACEMENT_TEXTS = ("placer", "status", "method", "objective")
_PLACEMENT_NUMBERS = ("objective_uS", "bound_uS", "analog_ns", "analog_bound_ns")


def _placement_problems(placement: dict[str, Any]) -> list[str]:
    """What is wrong with the placement solver's record (`placement`, passes/lower.py) where leac reads it
    (`leac compile`'s and `leac report`'s summary): placer, status and method strings, objective_uS and bound_uS
    finite numbers, gap a finite number >= 0 (a fraction of the objective), copies an integer >= 0; with a
    latency-aware objective, objective a string, analog_ns and analog_bound_ns finite numbers and analog_gap a
    finite number >= 0; each may be absent or null (a Program placed by no solver records none)."""
    problems = [f"placement.{key} must be a string, got {_shown(placement[key])}" for key in _PLACEMENT_TEXTS
                if placement.get(key) is not None and not isinstance(placement[key], str)]
    problems += [f"placement.{key} must be a finite number, got {_shown(placement[key])}"
                 for key in _PLACEMENT_NUMBERS
                 if placement.get(key) is not None and not is_finite_number(placement[key])]
    for key in ("gap", "analog_gap"):
        gap = placement.get(key)
        if gap is not None and not (is_finite_number(gap) and gap >= 0):
            problems.append(f"placement.{key} must be a finite number >= 0, got {_shown(gap)}")
    limited = placement.get("wall_clock_limited")
    if limited is not None and not (isinstance(limited, list) and all(isinstance(x, str) for x in limited)):
        problems.append(f"placement.wall_clock_limited must be a list of strings, got {_shown(limited)}")
    copies = placement.get("copies")
    if copies is not None and not (_is_int(copies) and copies >= 0):
        problems.append(f"placement.copies must be an integer >= 0, got {_shown(copies)}")
    return problems


_ALLOCATION_COUNTS = {"devices": True, "budget": True, "baseline": False}
"""`extra.allocation`'s integers >= 0, and whether each must be there (baseline: not in older Programs)."""
_ALLOCATION_FIGURES = {"predicted_error": True, "margin": False}
"""Its numbers >= 0, likewise (margin: not in older Programs)."""
_ALLOCATION_SERIES = ("error", "disagreement")


def _allocation_problems(value: Any, layer_names: set[str]) -> list[str]:
    """What is wrong with `-k auto`'s record (`extra.allocation`, `allocate.Allocation.to_json`), which the
    compile and report summaries show: counts a non-empty object of the Program's layer names -> integers >= 1;
    devices and budget (and baseline, where recorded) integers >= 0; predicted_error (and margin) numbers >= 0;
    predicted_agreement a fraction in 0..1; status a string; error and disagreement objects of layer names ->
    lists of finite numbers. Keys it does not name are left alone (a newer leac may add some)."""
    where = "extra.allocation"
    if not isinstance(value, dict):
        return [f"{where} must be a JSON object, got {type(value).__name__}"]
    problems = []
    counts = value.get("counts")
    if not (isinstance(counts, dict) and counts):
        problems.append(f"{where}.counts must be a non-empty object of layer names and copy counts")
    else:
        for name, count in counts.items():
            if name not in layer_names:
                problems.append(f"{where}.counts names {_shown(name)}, not a crossbar layer of the Program")
            elif not (_is_int(count) and count >= 1):
                problems.append(f"{where}.counts[{_shown(name)}] must be an integer >= 1, got {_shown(count)}")
    for key, required in _ALLOCATION_COUNTS.items():
        if (required or key in value) and not (_is_int(value.get(key)) and value[key] >= 0):
            problems.append(f"{where}.{key} must be an integer >= 0, got {_shown(value.get(key))}")
    for key, required in _ALLOCATION_FIGURES.items():
        if (required or key in value) and not (is_finite_number(value.get(key)) and value[key] >= 0):
            problems.append(f"{where}.{key} must be a finite number >= 0, got {_shown(value.get(key))}")
    agreement: Any = value.get("predicted_agreement")
    if not (is_finite_number(agreement) and 0 <= agreement <= 1):
        problems.append(f"{where}.predicted_agreement must be a number in 0..1, got {_shown(agreement)}")
    if not isinstance(value.get("status"), str):
        problems.append(f"{where}.status must be a string, got {_shown(value.get('status'))}")
    for key in _ALLOCATION_SERIES:
        series = value.get(key)
        if not (isinstance(series, dict) and all(
                name in layer_names and isinstance(values, list) and all(is_finite_number(v) for v in values)
                for name, values in series.items())):
            problems.append(f"{where}.{key} must be an object of the Program's layer names -> lists of finite "
                            "numbers")
    return problems


def listing(problems: list[str]) -> str:
    """`problems` as indented lines for an error message, at most `MAX_PROBLEMS` of them (the rest counted)."""
    return collected(problems, MAX_PROBLEMS).listing()


def _layer_problems(layer: Layer, node: Any, levels: tuple[float, ...]) -> list[str]:
    where = f"layer {layer.name!r}"
    sizes = {"rows": layer.rows, "cols": layer.cols, "alpha": layer.alpha, "beta": layer.beta}
    bad = [key for key, value in sizes.items() if not _is_int(value) or value < 1]
    if bad or not isinstance(layer.bias_row, bool):
        return [f"{where}: {', '.join(bad) or 'bias_row'} is not a positive integer (bias_row: a boolean)"]
    problems = []
    if node is None:
        problems.append(f"{where} has no leac.MVM node of that name in the graph")
    else:
        matrix, bias = node.input(1), node.input(2)
        shape = None if matrix is None or matrix.const is None else tuple(np.shape(matrix.const))
        if shape != (layer.rows - layer.bias_row, layer.cols):
            problems.append(f"{where}: {layer.rows} x {layer.cols} (bias row: {layer.bias_row}) does not match "
                            f"its node's matrix {shape}")
        if bias is not None and (bias.const is None or np.shape(bias.const) != (layer.cols,)
                                 or bias.const.dtype.kind != "f" or not np.all(np.isfinite(bias.const))):
            problems.append(f"{node.describe()}: the bias is not a constant vector of {layer.cols} finite numbers")
        if layer.bias_row and bias is None:
            problems.append(f"{where}: a bias row without a bias")
    if layer.beta > layer.alpha:
        problems.append(f"{where}: beta {layer.beta} is more than alpha {layer.alpha}")
    if not isinstance(layer.encoding, str):
        problems.append(f"{where}: encoding is not a string")
    if tuple(layer.levels_uS) != levels:
        problems.append(f"{where}: levels {list(layer.levels_uS)} are not the chip's {list(levels)}")
    if not isinstance(layer.quantization, dict):
        problems.append(f"{where}: quantization is not a JSON object")
    if not _float_vector(layer.scale, layer.cols, positive=True):
        problems.append(f"{where}: the scale is not {layer.cols} positive numbers")
    if layer.input_full_scale is not None and not (is_finite_number(layer.input_full_scale)
                                                   and layer.input_full_scale > 0):
        problems.append(f"{where}: input_full_scale {layer.input_full_scale!r} is not a positive number")
    if (layer.column_gain is None) != (layer.column_offset is None):
        problems.append(f"{where}: a compensation needs both a gain and an offset per column")
    elif layer.column_gain is not None and layer.column_offset is not None:
        if not _float_vector(layer.column_gain, layer.cols, positive=True):
            problems.append(f"{where}: the compensation gain is not {layer.cols} positive numbers")
        if not _float_vector(layer.column_offset, layer.cols, positive=False):
            problems.append(f"{where}: the compensation offset is not {layer.cols} finite numbers")
        elif layer.bias_row and np.any(layer.column_offset != 0):
            problems.append(f"{where}: a compensation offset needs a digital bias, not a bias row")
    if not isinstance(layer.blocks, tuple) or not layer.blocks:
        return [*problems, f"{where}: no blocks"]
    indices: set[int] = set()
    cells: set[tuple[tuple[int, int], tuple[int, int]]] = set()
    ranged = _levels_within(layer, len(levels) - 1)
    for position, block in enumerate(layer.blocks):
        block_problems = _block_problems(layer, block, len(levels) - 1, ranged)
        problems.extend(f"{where} block {block.index}: {p}" for p in block_problems)
        if block_problems:
            continue
        if block.index in indices:
            problems.append(f"{where}: block index {block.index} is used twice")
        elif block.index != position:  # the backends name and count blocks by their index
            problems.append(f"{where}: block {position} has index {block.index}; blocks are numbered in order "
                            "from 0")
        indices.add(block.index)
        cells.add(((block.row_start, block.row_stop), (block.col_start, block.col_stop)))
    if len(cells) == len(layer.blocks):
        row_bounds, col_bounds = sorted({c[0] for c in cells}), sorted({c[1] for c in cells})
        if not (_partition(row_bounds, layer.rows) and _partition(col_bounds, layer.cols)
                and len(cells) == len(row_bounds) * len(col_bounds)):
            problems.append(f"{where}: the blocks do not cut the {layer.rows} x {layer.cols} matrix into a grid")
    elif not problems:
        problems.append(f"{where}: two blocks cover the same part of the matrix")
    return problems


def _levels_within(layer: Layer, top: int) -> bool:
    """Whether every block's targets (0..top) and every copy half's levels (-1..top) of `layer` are integer
    arrays with entries in range: found in one pass over the layer, so that its blocks need not each look
    (False: not known; each block then checks its own)."""
    if not (isinstance(layer.blocks, tuple) and all(isinstance(block.copies, tuple) for block in layer.blocks)):
        return False
    targets = [target for block in layer.blocks for target in (block.target_pos, block.target_neg)]
    levels = [half.levels for block in layer.blocks for copy in block.copies for half in (copy.pos, copy.neg)]
    if not all(isinstance(value, np.ndarray) and value.dtype.kind in "iu" for value in (*targets, *levels)):
        return False
    # a loaded or compiled layer's levels are one buffer already, while its halves hold its views (`LevelsPack`)
    packed = None if layer.levels_pack is None else layer.levels_pack.values_of(levels)
    return _within(targets, 0, top) and _within(levels if packed is None else [packed], -1, top)


def _block_problems(layer: Layer, block: ProgramBlock, top: int, ranged: bool = False) -> list[str]:
    """What is wrong with one block of `layer` (messages without the block's name). `ranged`: its targets' and
    levels' entries are known to be in range (`_levels_within`); their types and shapes are still checked."""
    bounds = (block.index, block.row_block, block.col_block, block.row_start, block.row_stop, block.col_start,
              block.col_stop)
    if not all(_is_int(v) for v in bounds):
        return ["an index or bound is not an integer"]
    if not (0 <= block.row_start < block.row_stop <= layer.rows and 0 <= block.col_start < block.col_stop
            <= layer.cols):
        return [f"rows {block.row_start}..{block.row_stop} or cols {block.col_start}..{block.col_stop} are outside "
                f"the {layer.rows} x {layer.cols} matrix"]
    shape = block.shape
    problems = []
    targets = _int_matrices([block.target_pos, block.target_neg], shape, 0, top, ranged)
    problems += [f"{name} {why}" for name, why in zip(("target_pos", "target_neg"), targets, strict=True) if why]
    selection = block.selection
    if not (isinstance(selection, np.ndarray) and selection.dtype == np.bool_
            and selection.shape == (layer.alpha, shape[1]) and np.all(selection.sum(axis=0) == layer.beta)):
        problems.append(f"the selection does not pick beta = {layer.beta} of the alpha = {layer.alpha} copies "
                        "for every column")
    if block.adc_full_scale_uA is not None and not (is_finite_number(block.adc_full_scale_uA)
                                                    and block.adc_full_scale_uA > 0):
        problems.append(f"adc_full_scale_uA {block.adc_full_scale_uA!r} is not a positive number")
    if not isinstance(block.copies, tuple) or len(block.copies) != layer.alpha:
        return [*problems, f"has {len(block.copies)} copies, not alpha = {layer.alpha}"]
    halves = [half for copy in block.copies for half in (copy.pos, copy.neg)]
    levels = _int_matrices([half.levels for half in halves], shape, -1, top, ranged)
    programmed = _conductance_matrices([half.programmed_uS for half in halves], shape)
    if not any(levels) and not any(programmed) and _halves_fine(block.copies, halves):
        return problems
    return [*problems, *_copy_problems(block.copies, iter(levels), iter(programmed))]


def _halves_fine(copies: tuple[BlockCopy, ...], halves: list[CopyHalf]) -> bool:
    """Whether a block's copies are numbered 0, 1, ... and its halves' regions are non-negative ints and their
    costs finite floats: what `_copy_problems` finds nothing wrong with in them, looked at over all of them at
    once (a 25 x 25-array Program has thousands of halves). False: not known."""
    numbers = [copy.copy for copy in copies]
    places = [value for half in halves for value in (half.region.array, half.region.row, half.region.col)]
    costs = [half.cost_uS for half in halves]
    return (numbers == list(range(len(copies))) and set(map(type, numbers)) <= _INTS
            and bool(places) and set(map(type, places)) <= _INTS and min(places) >= 0
            and set(map(type, costs)) <= _FLOATS and all(map(math.isfinite, costs)))


_INTS = {int, np.int64}
"""The integer types `_halves_fine` takes as they are (others, bool above all, go through `_is_int`)."""
_FLOATS = {float, np.float64}
"""The float types `_halves_fine` takes as they are (others go through the per-half check of the cost)."""


def _copy_problems(copies: tuple[BlockCopy, ...], levels: Iterator[str | None],
                   programmed: Iterator[str | None]) -> list[str]:
    """What is wrong with a block's copies, half by half (`levels`, `programmed`: why each half's levels and
    conductances are wrong, in the order of the halves)."""
    problems = []
    for number, copy in enumerate(copies):
        if copy.copy != number or not _is_int(copy.copy):
            problems.append(f"copy {number} is numbered {copy.copy!r}")
        for polarity, half in (("pos", copy.pos), ("neg", copy.neg)):
            region = half.region
            if not all(_is_int(v) and v >= 0 for v in (region.array, region.row, region.col)):
                problems.append(f"copy {number} {polarity}: region {[region.array, region.row, region.col]} is "
                                "not three non-negative integers")
            why = next(levels)
            if why:
                problems.append(f"copy {number} {polarity}: the levels {why}")
            if not is_finite_number(half.cost_uS):
                problems.append(f"copy {number} {polarity}: cost_uS {half.cost_uS!r} is not a number")
            why = next(programmed)
            if why:
                problems.append(f"copy {number} {polarity}: programmed_uS {why}")
    return problems


def _conductance_matrices(values: list[Any], shape: tuple[int, int]) -> list[str | None]:
    """Why each as-programmed half's conductances of `values` are not a float matrix of `shape` in
    0..MAX_CONDUCTANCE_uS (None: fine, or not programmed). The entries of all of them are checked at once; each
    one's on its own only when one is not fine."""
    whys = [None if value is None else _not_matrix(value, shape, "f", "a float") for value in values]
    if not _conductances([value for value, why in zip(values, whys, strict=True) if value is not None and why is None]):
        whys = [f"holds a conductance that is not a finite number in 0..{MAX_CONDUCTANCE_uS:g} uS"
                if value is not None and why is None and not _conductances([value]) else why
                for value, why in zip(values, whys, strict=True)]
    return whys


def _conductances(values: list[np.ndarray]) -> bool:
    """Whether every entry of the float arrays `values` is a finite number in 0..MAX_CONDUCTANCE_uS."""
    flat = np.concatenate([value.ravel() for value in values]) if values else np.zeros(0)
    return not flat.size or bool(np.all(np.isfinite(flat)) and flat.min() >= 0 and flat.max() <= MAX_CONDUCTANCE_uS)
