"""The vectorised lowering and device programming (issue 19) against the per-region arithmetic they replace.

Lowering lays a Program's arrays end to end (`schedule.layout.Layout`) and gathers every copy half, every
read's region, every block's worst-case ADC range and every device's programmed conductance in a few numpy
passes instead of a Python step per region. Each test here keeps a small per-region reference (the code the
library ran before) and asks for the same numbers, exactly.
"""

from __future__ import annotations

import dataclasses
import pickle
import re

import numpy as np
import onnx
import pytest

from lea_compiler.backends import crossbar as crossbar_module
from lea_compiler.backends.cost import estimate_cost
from lea_compiler.backends.crossbar import CrossbarLayer, programmed_uS, write_noise, written_uS
from lea_compiler.backends.sim import Dataset, simulate
from lea_compiler.chip import synth_chip
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidInputError, UsageError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import Program, program_problems
from lea_compiler.program.types import BlockCopy, ProgramBlock
from lea_compiler.schedule import layout as layout_module
from lea_compiler.schedule.conductances import (
    byte_table,
    noiseless_conductances,
    pair_gathered,
    worst_case_full_scales_uA,
)
from lea_compiler.schedule.layout import Layout, regions_overlap, stuck_in_regions
from lea_compiler.schedule.lower import (
    SKIPPED,
    UNUSED,
    ArrayProgram,
    ArrayPrograms,
    FlatDevices,
    chosen_copies,
    prepare,
)
from lea_compiler.schedule.plan import Schedule, schedule_of
from lea_compiler.schedule.read_pairs import read_table
from lea_compiler.schedule.records import READ_FIELDS, RECORD_TYPES, Read, builder
from tests.helpers import mlp_model


def _regions(rng: np.random.Generator, shapes: dict[int, tuple[int, int]], count: int) -> list[Read]:
    """Random regions inside arrays of `shapes`, of a few sizes."""
    reads = []
    ids = list(shapes)
    for _ in range(count):
        array = ids[int(rng.integers(len(ids)))]
        rows, cols = shapes[array]
        height, width = int(rng.integers(1, rows + 1)), int(rng.integers(1, cols + 1))
        row, col = int(rng.integers(0, rows - height + 1)), int(rng.integers(0, cols - width + 1))
        reads.append(Read("fc", 0, 0, "pos", array, row, col, height, width, 0, height, None, 1))
    return reads


def _by_region(flat: np.ndarray, layout: Layout, reads: list[Read]) -> np.ndarray:
    """The reference: each region sliced out of its array, row by row, concatenated."""
    return np.concatenate([layout.view(flat, r.array)[r.row:r.row + r.rows, r.col:r.col + r.cols].ravel()
                           for r in reads])


def test_windows_are_the_regions_sliced_one_by_one() -> None:
    """Arrays of three shapes, regions of many shapes (each alone: scattered kind by kind), of one shape only, and
    in runs of one shape (written run by run): the flat indices pick the devices the per-region slices pick, in
    the same order; no regions, no indices."""
    rng = np.random.default_rng(0)
    shapes = {7: (5, 6), 2: (25, 25), 11: (3, 9), 4: (25, 25)}
    layout = Layout.of(shapes)
    assert layout.ids == (7, 2, 11, 4) and layout.size == 30 + 625 + 27 + 625
    flat = rng.permutation(layout.size)
    whole = [Read("fc", 0, 0, "neg", a, 0, 0, 25, 25, 0, 25, None, 1) for a in (4, 2, 4, 2) * 3]
    small = [Read("fc", 0, 0, "pos", 7, 1, 2, 4, 3, 0, 4, None, 1),
             Read("fc", 0, 0, "pos", 11, 0, 1, 3, 8, 0, 3, None, 1)]
    for reads in (_regions(rng, shapes, 200), whole[:3], whole + small + small[:1] + whole + small[1:]):
        np.testing.assert_array_equal(flat[layout.read_windows(reads)], _by_region(flat, layout, reads))
    assert layout.read_windows([]).size == 0


@pytest.mark.parametrize("pairs", [8, -1])  # rectangles tested pairwise; every device marked
def test_regions_overlap_when_a_device_is_in_two(monkeypatch, pairs: int) -> None:
    """`regions_overlap` against counting every region's devices: random regions (several on one array, apart,
    touching at an edge, or sharing devices), both ways it decides; one region or none never overlaps."""
    monkeypatch.setattr(layout_module, "OVERLAP_PAIRS", pairs)
    rng = np.random.default_rng(5)
    shapes = {7: (5, 6), 2: (9, 9), 11: (3, 9)}
    layout = Layout.of(shapes)
    seen = set()
    for count in [1, 2, 3, 5, 8] * 20:
        reads = _regions(rng, shapes, count)
        fields = np.array([(r.array, r.row, r.col, r.rows, r.cols) for r in reads], dtype=np.int64).reshape(-1, 5)
        devices = layout.read_windows(reads)
        want = np.unique(devices).size != devices.size
        assert regions_overlap(layout, *fields.T) == want
        seen.add(want)
    assert seen == {True, False}
    side = np.array([[7, 0, 0, 2, 3], [7, 0, 3, 2, 3], [7, 2, 0, 3, 6]], dtype=np.int64)  # edges touch only
    assert not regions_overlap(layout, *side.T)
    side[2, 1] = 1  # now on the first two's second row
    assert regions_overlap(layout, *side.T)


def test_devices_at_are_the_windows_at_those_devices() -> None:
    """`Layout.devices_at` of some devices of regions laid end to end is `windows(...)` at those devices."""
    rng = np.random.default_rng(6)
    shapes = {7: (5, 6), 2: (25, 25), 11: (3, 9)}
    layout = Layout.of(shapes)
    reads = _regions(rng, shapes, 30)
    fields = np.array([(r.array, r.row, r.col, r.rows, r.cols) for r in reads], dtype=np.int64).T
    devices = layout.windows(*fields)
    index = np.sort(rng.choice(devices.size, 200, replace=False))
    np.testing.assert_array_equal(layout.devices_at(*fields, index), devices[index])
    np.testing.assert_array_equal(layout.devices_at(*fields, [0, devices.size - 1]), devices[[0, -1]])


def test_array_positions_and_shapes_of_many_ids_at_once() -> None:
    """`Chip.array_positions` / `array_shapes` of many ids (any order, repeated) are each array's place in
    `arrays` and its (rows, cols); an unknown or non-integer id gets `Chip.array`'s UsageError."""
    chip = synth_chip(arrays=5, rows=6, cols=7, stuck_high=0.1, stuck_low=0.1, seed=1)
    ids = [4, 0, 2, 2]
    positions = chip.array_positions(ids)
    assert [chip.arrays[p].id for p in positions.tolist()] == ids
    np.testing.assert_array_equal(chip.array_shapes(ids), [(6, 7)] * 4)
    assert chip.array_positions([]).size == 0
    with pytest.raises(UsageError, match="no array 9"):
        chip.array_positions([0, 9])
    with pytest.raises(UsageError, match="no array 1.5"):
        chip.array_shapes([1.5])


def test_stuck_flat_is_every_arrays_stuck_map_end_to_end() -> None:
    """`Chip.stuck_flat` in the order asked, line defects and device defects, two array shapes; `stuck_maps`
    (views of it) still gives each array its `stuck_map`; an id twice or unknown is refused."""
    chip = synth_chip(arrays=12, rows=6, cols=7, stuck_high=0.15, stuck_low=0.1, dead_rows=0.1, dead_cols=0.1,
                      seed=4)
    ids = [5, 3, 11, *range(3), 7]
    state, g = chip.stuck_flat(ids)
    assert state.dtype == np.int8 and g.dtype == np.float64 and state.size == 42 * len(ids)
    np.testing.assert_array_equal(state, np.concatenate([chip.stuck_map(a)[0].ravel() for a in ids]))
    np.testing.assert_array_equal(g, np.concatenate([chip.stuck_map(a)[1].ravel() for a in ids]))  # NaNs too
    assert state.any() and np.isnan(g).any()
    assert chip.stuck_flat([])[0].size == 0
    with pytest.raises(UsageError, match="given twice"):
        chip.stuck_flat([1, 1])
    with pytest.raises(UsageError, match="no array 12"):
        chip.stuck_flat([0, 12])


def test_worst_case_ranges_are_the_per_block_column_sums() -> None:
    """The ranges of many blocks at once equal v_read x the largest column sum over each block's regions,
    region by region, exactly (the ADC ranges a report depends on)."""
    rng = np.random.default_rng(3)
    shapes = {0: (25, 25), 1: (9, 25), 2: (25, 13)}
    layout = Layout.of(shapes)
    g = rng.uniform(0, 200, layout.size)
    reads = _regions(rng, shapes, 60)
    blocks = [int(b) for b in np.sort(rng.integers(0, 12, len(reads)))]
    blocks = list(np.unique(blocks, return_inverse=True)[1].ravel())  # numbered 0, 1, ... with none left out
    sizes = np.array([r.rows * r.cols for r in reads])
    shapes = np.array([(r.rows, r.cols) for r in reads])
    end_to_end = worst_case_full_scales_uA(g[layout.read_windows(reads)], np.cumsum(sizes) - sizes, shapes, blocks,
                                           0.2)
    # the same regions, laid out anywhere else in a flat buffer (here: in reverse order, with gaps)
    starts = (np.cumsum(sizes[::-1]) - sizes[::-1] + 7 * np.arange(len(reads)))[::-1]
    scattered = np.full(int(starts.max() + sizes.max()) + 7, np.nan)
    for r, at, size in zip(reads, starts.tolist(), sizes.tolist(), strict=True):
        scattered[at:at + size] = layout.view(g, r.array)[r.row:r.row + r.rows, r.col:r.col + r.cols].ravel()
    anywhere = worst_case_full_scales_uA(scattered, starts, shapes, blocks, 0.2)
    one_shape = [r for r in reads if (r.rows, r.cols) == (reads[0].rows, reads[0].cols)]
    for b in range(max(blocks) + 1):
        regions = [layout.view(g, r.array)[r.row:r.row + r.rows, r.col:r.col + r.cols]
                   for r, n in zip(reads, blocks, strict=True) if n == b]
        want = float(0.2 * max(float(np.max(np.sum(region, axis=0))) for region in regions))
        assert end_to_end[b] == anywhere[b] == want
    same = worst_case_full_scales_uA(g[layout.read_windows(one_shape)], one_shape[0].rows * one_shape[0].cols
                                     * np.arange(len(one_shape)), [(r.rows, r.cols) for r in one_shape],
                                     [0] * len(one_shape), 0.2)
    assert same[0] == float(0.2 * max(float(np.max(np.sum(layout.view(g, r.array)[r.row:r.row + r.rows,
                                                                                   r.col:r.col + r.cols], axis=0)))
                                          for r in one_shape))


@pytest.mark.parametrize("part", [1, 100, 700, 1 << 17])
def test_worst_case_ranges_asked_for_part_by_part_are_the_ranges_of_the_whole(monkeypatch, part: int) -> None:
    """Given a function of device ranges instead of the buffer (`Lowered.half_conductances_of`), with runs of
    regions cut at `PART_DEVICES` anywhere (a region alone, or many of several shapes interleaved, some regions
    skipped), the ranges are those of the whole buffer, bit for bit, and each range asked for lies in order
    inside the regions' span; regions out of order are refused."""
    from lea_compiler.schedule import conductances

    monkeypatch.setattr(conductances, "PART_DEVICES", part)
    rng = np.random.default_rng(part)
    shapes = np.array([(25, 25), (9, 25), (25, 1), (13, 2), (1, 7)])[rng.integers(0, 5, 300)]
    sizes = shapes[:, 0] * shapes[:, 1]
    g = rng.uniform(0, 200, int(sizes.sum()))
    starts = np.cumsum(sizes) - sizes
    chosen = np.sort(rng.choice(300, 200, replace=False))  # the blocks without calibration: not every region
    blocks = np.unique(rng.integers(0, 40, 200), return_inverse=True)[1].ravel()
    asked: list[tuple[int, int]] = []

    def part_of(lo: int, hi: int) -> np.ndarray:
        asked.append((lo, hi))
        return g[lo:hi].copy()

    whole = worst_case_full_scales_uA(g, starts[chosen], shapes[chosen], blocks, 0.2)
    parts = worst_case_full_scales_uA(part_of, starts[chosen], shapes[chosen], blocks, 0.2)
    np.testing.assert_array_equal(parts, whole)
    for b in range(int(blocks.max()) + 1):  # and by hand, region by region
        want = max(float(np.max(np.sum(g[at:at + rows * cols].reshape(rows, cols), axis=0)))
                   for at, (rows, cols) in zip(starts[chosen][blocks == b], shapes[chosen][blocks == b].tolist(),
                                               strict=True))
        assert whole[b] == 0.2 * want
    assert asked[0][0] == starts[chosen[0]] and asked[-1][1] == starts[chosen[-1]] + sizes[chosen[-1]]
    assert all(hi <= lo for (_, hi), (lo, _) in zip(asked[:-1], asked[1:], strict=True))
    assert len(asked) > 1 if part < 1000 else len(asked) == 1
    with pytest.raises(ValueError, match="must come in order"):
        worst_case_full_scales_uA(part_of, starts[chosen][::-1], shapes[chosen][::-1], blocks, 0.2)


def test_half_conductances_of_a_range_are_the_wholes(stuck_program: Program) -> None:
    """`Lowered.half_conductances_of(lo, hi)` is `half_conductances[lo:hi]` for ranges that start and end
    anywhere (inside halves, around skipped devices), made whole or not, and for an unchecked Program's other
    negative levels (their own stuck conductance)."""
    from lea_compiler.schedule.lower import prepare

    lowered = prepare(stuck_program, check=False)
    size = lowered.values.size
    cuts = [(0, size), (0, 0), (size, size), (1, 2), *(sorted(pair) for pair in
                                                      np.random.default_rng(0).integers(0, size + 1, (20, 2)).tolist())]
    assert lowered.skipped.size
    parts = [lowered.half_conductances_of(lo, hi) for lo, hi in cuts]
    whole = lowered.half_conductances
    for (lo, hi), part in zip(cuts, parts, strict=True):
        np.testing.assert_array_equal(part, whole[lo:hi])
        np.testing.assert_array_equal(lowered.half_conductances_of(lo, hi), whole[lo:hi])
    layer = stuck_program.layers[0]
    block = layer.blocks[0]
    copy = block.copies[0]
    levels = np.array(copy.pos.levels)
    levels[0, 1] = -3
    moved = dataclasses.replace(copy, pos=dataclasses.replace(copy.pos, levels=levels))
    other = dataclasses.replace(stuck_program, layers=(dataclasses.replace(layer, blocks=(
        dataclasses.replace(block, copies=(moved, *block.copies[1:])), *layer.blocks[1:])), *stuck_program.layers[1:]))
    unchecked = prepare(other, check=False)
    parts = [unchecked.half_conductances_of(lo, hi) for lo, hi in cuts]
    for (lo, hi), part in zip(cuts, parts, strict=True):
        np.testing.assert_array_equal(part, unchecked.half_conductances[lo:hi])


@pytest.fixture(scope="module")
def stuck_program(tmp_path_factory: pytest.TempPathFactory) -> Program:
    """A three-layer MLP on 8 x 8 arrays of a chip with stuck devices and dead lines, k = 3, beta = 2 (columns
    that average different copies)."""
    model = tmp_path_factory.mktemp("model") / "mlp.onnx"
    onnx.save(mlp_model((12, 16, 10, 4), seed=1), model)
    chip = synth_chip(arrays=70, rows=8, cols=8, stuck_high=0.08, stuck_low=0.04, dead_rows=0.02, seed=2)
    return compile_model(model, chip, CompileOptions(k=3, beta=2, placer="greedy")).program


def test_prepare_lays_out_every_half_as_the_per_half_loop_did(stuck_program: Program) -> None:
    """Each array's levels, skipped devices' stuck conductances and target levels, and who owns each device,
    against the loop over copy halves that lowering ran before."""
    program = stuck_program
    lowered = prepare(program)
    chip = program.chip
    sizes = {a.id: (a.rows, a.cols) for a in chip.arrays}
    level, stuck, target, owner = {}, {}, {}, {}
    index = 0
    for layer in program.layers:
        for block in layer.blocks:
            for copy in block.copies:
                for half, want in ((copy.pos, block.target_pos), (copy.neg, block.target_neg)):
                    a, (rows, cols) = half.region.array, np.shape(half.levels)
                    for store, fill in ((level, UNUSED), (stuck, 0.0), (target, 0), (owner, -1)):
                        store.setdefault(a, np.full(sizes[a], fill))
                    window = (slice(half.region.row, half.region.row + rows),
                              slice(half.region.col, half.region.col + cols))
                    level[a][window] = half.levels
                    target[a][window] = want
                    owner[a][window] = index
                    index += 1
    assert sorted(level) == list(lowered.arrays)
    skipped_any = False
    for a, program_a in lowered.arrays.items():
        skipped = level[a] == SKIPPED
        skipped_any |= bool(skipped.any())
        g = chip.stuck_map(a)[1]
        np.testing.assert_array_equal(program_a.level, level[a])
        np.testing.assert_array_equal(program_a.stuck_uS, np.where(skipped & ~np.isnan(g), g, 0.0))
        np.testing.assert_array_equal(program_a.target, np.where(skipped, target[a], 0))
        np.testing.assert_array_equal(lowered.owners[a], owner[a])
    assert skipped_any
    assert len(lowered.halves) == index


def test_combine_lists_each_columns_copies(stuck_program: Program) -> None:
    """Each combine record names, per column, the copies its selection marks."""
    schedule = schedule_of(stuck_program)
    for layer in stuck_program.layers:
        combines = schedule.layers[layer.name].combines
        for block, combine in zip(layer.blocks, combines, strict=True):
            ids = [copy.copy for copy in block.copies]
            want = tuple(tuple(c for c, used in zip(ids, column, strict=True) if used)
                         for column in np.asarray(block.selection).T.tolist())
            assert combine.copies == want
            assert all(len(chosen) == 2 for chosen in combine.copies)


@pytest.mark.parametrize("ideal", [False, True], ids=["noisy", "ideal"])
def test_programming_all_regions_at_once_draws_what_region_by_region_draws(stuck_program: Program,
                                                                           ideal: bool) -> None:
    """A layer's devices programmed in one pass (write noise of one draw, the simulated chip's stuck devices,
    the layer's windows from lowering) are the regions programmed one by one with the same generator, exactly;
    with ideal devices, every region's conductances as the array's program gives them."""
    schedule = schedule_of(stuck_program)
    chip = synth_chip(arrays=70, rows=8, cols=8, stuck_high=0.05, stuck_low=0.05, seed=9)  # another chip
    for name, plan in schedule.layers.items():
        layer = CrossbarLayer(plan, schedule, chip, np.random.default_rng(5), ideal=ideal, exact_read_noise=False)
        got = layer._conductances(schedule, np.random.default_rng(7))
        rng = np.random.default_rng(7)
        reads = [read for read, _ in plan.reads]
        if ideal:
            want = [schedule.arrays[r.array].conductance(r, schedule.levels_uS, stuck=plan.start.encoding == "joint")
                    for r in reads]
        else:
            want = [layer._conductance(r, schedule, {}, rng) for r in reads]
        assert len(got) == len(want) == len(reads)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(schedule.read_windows(name), schedule.devices.layout.read_windows(reads))
        np.testing.assert_array_equal(schedule.read_levels(name),
                                      np.concatenate([schedule.arrays[r.array].level[r.row:r.row + r.rows,
                                                                                     r.col:r.col + r.cols].ravel()
                                                      for r in reads]))


def test_overlapping_halves_are_refused_even_unchecked(stuck_program: Program) -> None:
    """A Program whose two copy halves share devices (the checks refuse it) is refused by lowering without the
    checks too, rather than one half overwriting the other."""
    program = stuck_program
    layer = program.layers[0]
    block = layer.blocks[0]
    copy = block.copies[0]
    moved = dataclasses.replace(copy, neg=dataclasses.replace(copy.neg, region=copy.pos.region))
    blocks = (dataclasses.replace(block, copies=(moved, *block.copies[1:])), *layer.blocks[1:])
    broken = dataclasses.replace(program, layers=(dataclasses.replace(layer, blocks=blocks), *program.layers[1:]))
    with pytest.raises(InvalidInputError, match="copy halves overlap"):
        prepare(broken, check=False)
    with pytest.raises(InvalidInputError):
        prepare(broken)


def _stuck_by_read(chip, reads: list[Read]) -> tuple[np.ndarray, np.ndarray]:
    """The reference: each read's region of its array's `stuck_map`, row by row, laid end to end; where the state
    is not 0, and the conductance there."""
    state = np.concatenate([chip.stuck_map(r.array)[0][r.row:r.row + r.rows, r.col:r.col + r.cols].ravel()
                            for r in reads])
    g = np.concatenate([chip.stuck_map(r.array)[1][r.row:r.row + r.rows, r.col:r.col + r.cols].ravel()
                        for r in reads])
    at = np.flatnonzero(state != 0)
    return at, g[at]


def test_a_schedule_finds_each_chips_stuck_devices_once(stuck_program: Program) -> None:
    """`Schedule.read_stuck` is each layer's regions of the chip's stuck maps, read after read (the stuck devices'
    places and conductances), found once per chip and layer (lowering hands over the compiled chip's) and read
    only; another chip gets its own."""
    schedule = schedule_of(stuck_program)
    other = synth_chip(arrays=70, rows=8, cols=8, stuck_high=0.05, stuck_low=0.05, dead_cols=0.05, seed=9)
    for name, plan in schedule.layers.items():
        compiled = schedule.read_stuck(name, stuck_program.chip)
        assert schedule.read_stuck(name, stuck_program.chip) is compiled
        assert compiled[0].size  # the chip is bad enough
        for chip in (stuck_program.chip, other):
            at, g = schedule.read_stuck(name, chip)
            want_at, want_g = _stuck_by_read(chip, [read for read, _ in plan.reads])
            np.testing.assert_array_equal(at, want_at)
            np.testing.assert_array_equal(g, want_g)
            assert not at.flags.writeable and not g.flags.writeable
        assert not np.array_equal(schedule.read_stuck(name, other)[0], compiled[0])


@pytest.mark.parametrize("pairs", [8, 0])  # each stuck device against its array's regions; the whole map
def test_stuck_in_regions_are_the_regions_of_the_stuck_maps(monkeypatch, pairs: int) -> None:
    """`stuck_in_regions` of regions of many shapes, several on one array, some overlapping (a device in two
    regions is there twice), on arrays of two shapes with line and device defects: the stuck devices the
    per-region slices of the stuck maps find, in the same order, with their conductances, both ways it finds
    them; no regions, none."""
    monkeypatch.setattr(layout_module, "PAIRS_PER_DEVICE", pairs)
    chip = synth_chip(arrays=6, rows=9, cols=7, stuck_high=0.15, stuck_low=0.1, dead_rows=0.1, dead_cols=0.1,
                      seed=4)
    rng = np.random.default_rng(3)
    shapes = {a.id: (a.rows, a.cols) for a in chip.arrays}
    for reads in (_regions(rng, shapes, 40), _regions(rng, {2: shapes[2], 5: shapes[5]}, 3),
                  [Read("fc", 0, 0, "pos", 3, 0, 0, 9, 7, 0, 9, None, 1)] * 2):
        fields = np.array([(r.array, r.row, r.col, r.rows, r.cols) for r in reads], dtype=np.int64)
        at, g = stuck_in_regions(chip, *fields.T)
        want_at, want_g = _stuck_by_read(chip, reads)
        assert at.size and g.dtype == np.float64
        np.testing.assert_array_equal(at, want_at)
        np.testing.assert_array_equal(g, want_g)
    empty = np.zeros(0, dtype=np.int64)
    assert stuck_in_regions(chip, empty, empty, empty, empty, empty)[0].size == 0


def test_stuck_devices_are_the_stuck_maps_nonzero_entries() -> None:
    """`Chip.stuck_devices`: every device whose `stuck_map` state is not 0, array after array in the order asked,
    row by row within one, with its state and conductance (arrays with line defects among them)."""
    chip = synth_chip(arrays=12, rows=6, cols=7, stuck_high=0.15, stuck_low=0.1, dead_rows=0.1, dead_cols=0.1,
                      seed=4)
    ids = [5, 3, 11, *range(3), 7]
    got = chip.stuck_devices(ids)
    want = [(i, r, c, int(chip.stuck_map(a)[0][r, c]), float(chip.stuck_map(a)[1][r, c]))
            for i, a in enumerate(ids) for r, c in zip(*np.nonzero(chip.stuck_map(a)[0]), strict=True)]
    assert list(zip(*(part.tolist() for part in got), strict=True)) == want
    assert got[3].dtype == np.int8 and got[4].dtype == np.float64
    assert any(chip.stuck_map(a)[0].all(axis=1).any() or chip.stuck_map(a)[0].all(axis=0).any() for a in ids)


def test_read_conductances_are_the_whole_arrays_at_the_reads(stuck_program: Program) -> None:
    """`Schedule.read_conductances` (a lowered Program's: from its copy halves) is every array's conductances
    gathered at the layer's reads, with the skipped devices stuck or at their target, read only."""
    schedule = schedule_of(stuck_program)
    for stuck in (True, False):
        whole = schedule.devices.conductances(schedule.levels_uS, stuck=stuck)
        for name in schedule.layers:
            found = schedule.read_conductances(name, stuck=stuck)
            np.testing.assert_array_equal(found, whole[schedule.read_windows(name)])
            assert not found.flags.writeable
    skipped = schedule.devices.level[np.concatenate([schedule.read_windows(n) for n in schedule.layers])] < 0
    assert skipped.any()  # the two differ there
    plain = Schedule(schedule.levels_uS, schedule.arrays, schedule.layers, None)  # not lowered here: gathered
    for name in schedule.layers:
        np.testing.assert_array_equal(plain.read_conductances(name, stuck=False),
                                      schedule.read_conductances(name, stuck=False))


def test_programmed_conductance_of_int8_levels_is_the_clipped_take() -> None:
    """`programmed_uS` of int8 levels (a byte table) gives what `np.take(..., mode="clip")` gives of the same
    levels as int64, every level from -128 to the device's last, for devices of 2 to 128 levels; and so for
    every pair of neighbouring levels (int8 levels are gathered two at a time), in arrays of odd and even sizes,
    C-ordered and transposed."""
    for count in (2, 33, 128):
        levels = np.sort(np.random.default_rng(count).uniform(1.0, 200.0, count))
        level = np.arange(-128, count, dtype=np.int64)
        np.testing.assert_array_equal(programmed_uS(level.astype(np.int8), levels),
                                      np.take(levels, level, mode="clip"))
        pairs = np.stack(np.meshgrid(level, level), axis=-1).reshape(-1)  # every (first, second) neighbours
        table = pairs[:len(pairs) // 7 * 7].reshape(-1, 7)
        for shaped in (pairs, pairs[1:], table, table.T):
            got = programmed_uS(shaped.astype(np.int8), levels)
            assert got.shape == shaped.shape
            assert got.tobytes() == np.take(levels, shaped, mode="clip").tobytes()


def test_simulating_a_program_does_not_lay_out_its_whole_arrays(stuck_program: Program) -> None:
    """Lowering, programming every layer, the cost model and ideal devices work from the copy halves: the whole
    arrays' buffers (`Lowered.at`, `Lowered.devices`) are made only when something asks for them (a board file,
    one array's program), and then hold the halves' levels."""
    schedule = schedule_of(stuck_program)
    lowered = next(iter(schedule._lowered.values()))[0]
    for ideal in (False, True):
        for plan in schedule.layers.values():
            CrossbarLayer(plan, schedule, stuck_program.chip, np.random.default_rng(0), ideal=ideal,
                          exact_read_noise=False)
    estimate_cost(stuck_program, stuck_program.chip, schedule)
    assert not schedule.as_programmed and len(schedule.layout.ids) == len(schedule.arrays)
    assert "at" not in lowered.__dict__ and "devices" not in lowered.__dict__
    first = schedule.arrays[schedule.layout.ids[0]]
    assert "devices" in lowered.__dict__ and np.any(first.level != UNUSED)


def test_lowerings_read_table_is_the_records_fields(stuck_program: Program, tmp_path) -> None:
    """`LayerPlan.read_table` as lowering makes it from the copy halves and blocks equals the fields gathered read
    by read from the records (a bias row's one_row, both polarities, N reads); a plan replaced with other reads
    gathers its own."""
    from tests.test_reads import tiny

    onnx.save(mlp_model((12, 16, 10, 4), seed=1), tmp_path / "mlp.onnx")
    row_bias = compile_model(tmp_path / "mlp.onnx", stuck_program.chip,
                             CompileOptions(k=2, bias="row", placer="greedy")).program
    one_rows = []
    for program in (stuck_program, tiny(tmp_path, 3), row_bias):
        for plan in schedule_of(program).layers.values():
            assert not plan.pairs.made  # lowering gives the tables; the records are made when first asked for
            np.testing.assert_array_equal(plan.read_table, read_table([read for read, _ in plan.reads]))
            assert not plan.read_table.flags.writeable
            one_rows.append(plan.read_table[:, READ_FIELDS.index("one_row")])
    assert (np.concatenate(one_rows) >= 0).any() and (np.concatenate(one_rows) < 0).any()
    plan = next(iter(schedule_of(stuck_program).layers.values()))
    changed = dataclasses.replace(plan, reads=tuple((dataclasses.replace(r, reads=2), c) for r, c in plan.reads))
    assert changed.pairs.made and (changed.read_table[:, READ_FIELDS.index("reads")] == 2).all()


def test_program_pulses_count_every_written_device(stuck_program: Program) -> None:
    """The pulse count from lowering's copy halves is the count over every array's written devices, and a
    board file's schedule (no halves) counts the same."""
    schedule = schedule_of(stuck_program)
    want = sum(int(np.sum(a.level[a.level >= 0] + 1)) for a in schedule.arrays.values())
    assert schedule.program_pulses == want > 0
    assert Schedule(schedule.levels_uS, dict(schedule.arrays), {}, None).program_pulses == want



@pytest.mark.parametrize("dtype, levels", [(np.int8, 4), (np.int8, 128), (np.int16, 300), (np.int64, 16)])
def test_program_pulses_of_any_level_dtype(dtype, levels) -> None:
    """The count through the bytes of int8 levels (and by level otherwise) against level + 1 summed over the
    written devices by hand, with skipped and unused devices (which cost none) among them."""
    rng = np.random.default_rng(levels)
    arrays = {}
    for array in (2, 7):
        level = rng.integers(UNUSED, levels, (9, 11)).astype(dtype)
        level[0, :3] = (UNUSED, SKIPPED, levels - 1)
        arrays[array] = ArrayProgram(array, level, np.zeros(level.shape), np.zeros(level.shape, dtype))
    want = sum(int(lv) + 1 for a in arrays.values() for lv in a.level.ravel().tolist() if lv >= 0)
    devices = FlatDevices.of(arrays)
    devices = dataclasses.replace(devices, level=devices.level.astype(dtype))  # `of` widens them to int64
    schedule = Schedule(np.linspace(1, 2, levels), ArrayPrograms(devices.layout, lambda: devices), {}, None)
    assert schedule.devices.level.dtype == dtype and schedule.program_pulses == want

def test_a_region_outside_its_array_is_refused() -> None:
    """A region that overruns its array's rows or columns, or starts before it, is refused by name, not read into
    the next rows or arrays (an unchecked Program's, e.g. `simulate`'s lowering)."""
    layout = Layout.of({3: (8, 8), 5: (8, 8)})
    fits = Read("fc", 0, 0, "pos", 3, 2, 2, 6, 6, 0, 6, None, 1)
    assert layout.read_windows([fits]).size == 36
    for row, col, rows, cols in ((0, 3, 6, 8), (3, 0, 6, 8), (-1, 0, 2, 2), (0, -2, 2, 2), (0, 3, 6, 6),
                                 (3, 0, 6, 6)):  # the last two: one past the edge
        bad = Read("fc", 0, 0, "neg", 3, row, col, rows, cols, 0, rows, None, 1)
        with pytest.raises(InvalidInputError, match=f"a region of {rows} x {cols} devices at row {row}, column {col} "
                           "of array 3 does not lie inside that 8 x 8 array"):
            layout.read_windows([fits, bad])


def test_a_level_beyond_the_table_is_an_error() -> None:
    """`programmed_uS` refuses a level past the device's table (IndexError) instead of clipping it to the top."""
    with pytest.raises(IndexError):
        programmed_uS(np.array([0, 3, 4]), np.linspace(1.0, 4.0, 4))


def test_programmed_conductance_of_any_level_dtype() -> None:
    """`programmed_uS`: the level's conductance, the lowest level for a skipped (-1) or unused (-2) device,
    whatever the Program's level dtype (int8 holds level 127 of a 128-level device)."""
    levels = np.linspace(1.0, 200.0, 128)
    for dtype in (np.int8, np.int16, np.int64):
        level = np.array([[127, -1], [0, -2]], dtype=dtype)
        np.testing.assert_array_equal(programmed_uS(level, levels), [[200.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize("part", [1 << 14, 7], ids=["one part", "parts of 7 devices"])
def test_written_devices_are_the_write_noise_of_the_targets(part: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """`written_uS` (the simulator's programming with one write-noise sigma, drawn and finished part by part):
    the same bytes as `write_noise(programmed_uS(level))` from a generator in the same state, for int8 and int64
    levels with skipped (-1) devices and clipped (0 uS) ones, in one part or in parts of 7 devices; a level past
    the table is refused as `programmed_uS` refuses it, and a negative sigma as `gaussian_write` does."""
    monkeypatch.setattr(crossbar_module, "_WRITE_PART", part)
    levels = np.array([0.5, 10.0, 40.0, 80.0])
    level = np.random.default_rng(3).integers(-1, 4, (9, 11))
    for dtype in (np.int8, np.int64):
        got = written_uS(level.astype(dtype), levels, np.random.default_rng(6), 2.0)
        want = write_noise(programmed_uS(level, levels), np.random.default_rng(6), 2.0)
        assert got.shape == level.shape and got.tobytes() == want.tobytes() and (got == 0).any()
    with pytest.raises(IndexError, match="level 4 is beyond the Program's 4 levels"):
        written_uS(np.array([0, 4]), levels, np.random.default_rng(6), 2.0)
    with pytest.raises(ValueError, match="scale < 0"):
        written_uS(level, levels, np.random.default_rng(6), -1.0)


def test_a_simulated_chip_without_the_programs_arrays_is_refused(stuck_program: Program) -> None:
    """`simulate --chip` on a chip that lacks an array the Program uses, or has it in another size, is refused
    by name; a chip with every used array in its size runs (the Program's own chip is not looked at)."""
    program = stuck_program
    x = np.random.default_rng(0).uniform(-1, 1, (20, 12)).astype(np.float32)
    data = [Dataset("d", x, np.zeros(20, dtype=np.int64))]
    used = max(program.arrays_used)
    for chip in (synth_chip(arrays=used, rows=8, cols=8, seed=1), synth_chip(arrays=70, rows=9, cols=8, seed=1)):
        missing = used if len(chip.arrays) == used else min(program.arrays_used)
        with pytest.raises(InvalidInputError, match=f"the simulated chip has no array {missing} of 8 x 8, which "
                                                    "the Program uses"):
            simulate(program, data, chip=chip)
    other = synth_chip(arrays=70, rows=8, cols=8, stuck_high=0.05, seed=1)
    assert not simulate(program, data, chip=other).compiled_for_chip


def test_an_unchecked_programs_other_negative_levels_read_their_stuck_conductance(tmp_path) -> None:
    """Lowering without checks (the simulator's) keeps only the skipped devices' conductances (level -1, in half
    order); a Program built in Python with another negative level gets that device's own stuck conductance,
    0 on a defect-free chip, as before the skipped devices were kept sparse (it raised a shape mismatch)."""
    from lea_compiler.schedule.lower import prepare
    from tests.test_reads import tiny

    program = tiny(tmp_path, 1)
    half = program.layers[0].blocks[0].copies[0].pos
    levels = np.array(half.levels)
    levels[0, 0] = -3
    object.__setattr__(half, "levels", levels)
    conductances = prepare(program, check=False).half_conductances
    assert conductances[0] == 0.0 and conductances[1] == 100.0  # level 0 of (100, 250) uS
    # the same in wider levels, which are not read through the byte table (where a negative byte reads 0 anyway)
    object.__setattr__(half, "levels", levels.astype(np.int64))
    conductances = prepare(program, check=False).half_conductances
    assert conductances[0] == 0.0 and conductances[1] == 100.0


@pytest.mark.parametrize("kind", list(RECORD_TYPES.values()), ids=list(RECORD_TYPES))
def test_a_builder_makes_the_record_the_constructor_makes(kind: type) -> None:
    """`records.builder(kind)` (lowering's fast path) gives the object `kind(...)` gives: of that type, equal, with
    the same hash and repr, frozen, and pickled alike."""
    values = tuple(f"v{i}" if i % 2 else i for i in range(len(dataclasses.fields(kind))))
    made, want = builder(kind)(*values), kind(*values)
    assert type(made) is kind and made == want and hash(made) == hash(want) and repr(made) == repr(want)
    assert dataclasses.astuple(made) == values
    for field in dataclasses.fields(kind):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, field.name, "other")
    assert pickle.loads(pickle.dumps(made)) == want



def test_a_builder_refuses_a_record_kind_that_checks_its_fields() -> None:
    """The twin stores the fields without the kind's `__post_init__`: a kind with one is refused, not built
    unchecked."""
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    with pytest.raises(TypeError, match="Checked has a __post_init__, which builder\\(\\) would skip"):
        builder(Checked)

def _block(index: int, ids: list[int], selection: np.ndarray) -> ProgramBlock:
    """A block with copies numbered `ids` and `selection` (copies x columns); only what the combine reads."""
    cols = selection.shape[-1]
    empty = np.zeros((1, cols), dtype=np.int8)
    copies = tuple(BlockCopy(c, None, None) for c in ids)  # type: ignore[arg-type]
    return ProgramBlock(index, 0, index, 0, 1, 0, cols, empty, empty, copies, selection)


def test_chosen_copies_are_each_columns_selected_copies() -> None:
    """Per block and column, the copies the selection marks, in copy order, against the column-by-column loop:
    random selections (columns of every pattern, none and all copies included), copies numbered otherwise than
    0, 1, ..., blocks with different copies in one call, and 70 copies (more than an integer's bits)."""
    rng = np.random.default_rng(11)
    blocks = []
    for index in range(40):
        alpha = int(rng.choice([1, 2, 3, 6, 8, 70]))
        ids = sorted(rng.choice(100, alpha, replace=False).tolist()) if index % 3 else list(range(alpha))
        selection = rng.random((alpha, int(rng.integers(2, 30)))) < rng.random()
        selection[:, 0], selection[:, -1] = False, True  # a column of none, one of all
        blocks.append(_block(index, ids, selection))
    got = chosen_copies(blocks)
    assert len(got) == len(blocks)
    for block, chosen in zip(blocks, got, strict=True):
        ids = [copy.copy for copy in block.copies]
        want = tuple(tuple(c for c, used in zip(ids, column, strict=True) if used) for column in block.selection.T)
        assert chosen == want
        assert chosen[0] == () and chosen[-1] == tuple(ids)
    assert chosen_copies([]) == []
    # 70 copies, columns that differ only in copies past an integer's 62 bits
    ids = list(range(70))
    crafted = np.zeros((70, 7), dtype=bool)
    for column, marked in enumerate(([], [0], [63], [64], list(range(64, 70)), [0, 64], [62, 69])):
        crafted[marked, column] = True
    assert chosen_copies([_block(0, ids, crafted)]) == [((), (0,), (63,), (64,), tuple(range(64, 70)), (0, 64),
                                                        (62, 69))]
    for selection in (np.ones((2, 6), dtype=bool), np.ones(6, dtype=bool)):  # a row per copy of 3, or none
        shape = re.escape(str(selection.shape))
        with pytest.raises(InvalidInputError, match=f"block 7: its selection of shape {shape} is not one row per "
                                                    "copy of its 3"):
            chosen_copies([_block(7, [0, 1, 2], np.ones((3, 6), dtype=bool)), _block(7, [0, 1, 2], selection)])


@pytest.mark.parametrize("count", [4, 128, 200])
def test_noiseless_conductances_of_int8_levels_are_the_clipped_look_up(count: int) -> None:
    """int8 levels (read through a byte table) give the conductances the clip-and-take of wider levels gives, the
    negative ones what the caller says, whether it lists them or not; a level past the device's table is an
    IndexError either way."""
    rng = np.random.default_rng(count)
    levels_uS = np.sort(rng.uniform(1, 200, count))
    level = rng.integers(-2, min(count, 128), (40, 30)).astype(np.int8)
    stuck = rng.uniform(0, 300, level.size)
    want = noiseless_conductances(level.astype(np.int16), levels_uS, lambda i: stuck[i])
    np.testing.assert_array_equal(want, np.where(level >= 0, levels_uS[np.maximum(level, 0)],
                                                 stuck.reshape(level.shape)))
    np.testing.assert_array_equal(noiseless_conductances(level, levels_uS, lambda i: stuck[i]), want)
    negative = np.flatnonzero(level < 0)
    np.testing.assert_array_equal(noiseless_conductances(level, levels_uS, lambda i: stuck[i], negative), want)
    if count < 128:
        level[3, 4] = count
        for dtype in (np.int8, np.int16):
            with pytest.raises(IndexError):
                noiseless_conductances(level.astype(dtype), levels_uS, lambda i: stuck[i])


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (40, 30), (5, 7)])
def test_int8_levels_gathered_two_at_a_time_are_the_byte_tables(shape: tuple[int, ...]) -> None:
    """`pair_gathered` gives table[level.view(np.uint8)], value for value and in the levels' shape, for an even or
    odd count, every byte (negative levels too), and a level array that is not contiguous."""
    rng = np.random.default_rng(len(shape))
    table = byte_table(np.sort(rng.uniform(1, 200, 9)), -1.5)
    level = rng.integers(-128, 128, shape).astype(np.int8)
    for own in (level, level.T, level[::2]):
        found = pair_gathered(own, table)
        assert found.shape == own.shape and found.dtype == np.float64
        want = np.array([table[byte] for byte in own.ravel().view(np.uint8)], dtype=np.float64)
        np.testing.assert_array_equal(found, want.reshape(own.shape))


def test_partly_calibrated_blocks_keep_their_ranges(stuck_program: Program) -> None:
    """A Program whose blocks carry calibrated ADC ranges for every other block: those convert with theirs, the
    others with the worst-case ranges they have without any calibration."""
    program = stuck_program
    layers = tuple(dataclasses.replace(layer, blocks=tuple(
        dataclasses.replace(block, adc_full_scale_uA=10.0 + i) if i % 2 else block
        for i, block in enumerate(layer.blocks))) for layer in program.layers)
    calibrated = schedule_of(dataclasses.replace(program, layers=layers))
    chip, levels = program.chip, np.asarray(program.chip.device.levels_uS)
    v_read = chip.periphery.v_read_V
    for layer, original in zip(layers, program.layers, strict=True):
        full_scale = {b.index: b.adc_full_scale_uA for b in layer.blocks}
        # by hand: v_read x the largest column sum of the block's copy halves, a skipped device at its stuck value
        worst = {}
        for block in original.blocks:
            sums = []
            for copy in block.copies:
                for half in (copy.pos, copy.neg):
                    rows, cols = half.levels.shape
                    r, c = half.region.row, half.region.col
                    stuck = np.nan_to_num(chip.stuck_map(half.region.array)[1][r:r + rows, c:c + cols])
                    g = np.where(half.levels >= 0, levels[np.maximum(half.levels, 0)], stuck)
                    sums.append(float(np.max(np.sum(g, axis=0))))
            worst[block.index] = v_read * max(sums)
        assert len(set(worst.values())) > 1  # blocks of different ranges: a mix-up would show
        for read, convert in calibrated.layers[layer.name].reads:
            want = full_scale[read.block] if full_scale[read.block] is not None else worst[read.block]
            assert convert.full_scale_uA == pytest.approx(want, rel=1e-12)


def test_an_unchecked_programs_target_of_another_shape_is_refused(stuck_program: Program) -> None:
    """Lowering without checks gathers the skipped devices' targets from their blocks' targets: a block whose
    target differs in shape from its copy halves is refused by name, not read out of place."""
    program = stuck_program
    layer = program.layers[0]
    blocks = tuple(dataclasses.replace(block, target_neg=block.target_neg[:-1]) for block in layer.blocks)
    broken = dataclasses.replace(program, layers=(dataclasses.replace(layer, blocks=blocks), *program.layers[1:]))
    with pytest.raises(InvalidInputError, match="a block's target levels differ in shape from its copy halves"):
        prepare(broken, check=False)



def _with_half(program: Program, **change: object) -> Program:
    """`program` with its last layer's last copy half changed (`dataclasses.replace` of the half)."""
    layer = program.layers[-1]
    block = layer.blocks[-1]
    copy = block.copies[-1]
    copy = dataclasses.replace(copy, neg=dataclasses.replace(copy.neg, **change))
    block = dataclasses.replace(block, copies=(*block.copies[:-1], copy))
    layer = dataclasses.replace(layer, blocks=(*layer.blocks[:-1], block))
    return dataclasses.replace(program, layers=(*program.layers[:-1], layer))


def test_an_unchecked_programs_bad_halves_are_refused_by_name(stuck_program: Program) -> None:
    """Lowering without checks (the simulator's) refuses, as a damaged Program, levels that are not a matrix or
    not integers, a region that is not three integers and one on an array the chip lacks; levels given as a list
    lower as the array would."""
    program = stuck_program
    half = program.layers[-1].blocks[-1].copies[-1].neg
    region = half.region
    cases = [({"levels": half.levels[..., None]}, "a copy half's levels are not a matrix"),
             ({"levels": half.levels.astype(np.float64)}, "a copy half's levels are not integers but float64"),
             ({"region": dataclasses.replace(region, array=region.array + 0.5)},
              "a copy half's region is not three integers"),
             ({"region": dataclasses.replace(region, col=float(region.col))}, "a copy half's region is not three"),
             ({"region": dataclasses.replace(region, array=999)}, "a copy half's region is off the chip: .*999")]
    for change, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            prepare(_with_half(program, **change), check=False)
    as_list = prepare(_with_half(program, levels=half.levels.tolist()), check=False)
    np.testing.assert_array_equal(as_list.values, prepare(program, check=False).values)
    # integers of numpy types beside Python ints (numpy promotes uint64 and int to float64): taken as they are, as
    # the checks take them; a float among them is still refused
    typed = _with_half(program, region=dataclasses.replace(region, row=np.uint64(region.row)))
    assert program_problems(typed) == []
    for check in (True, False):
        lowered = prepare(typed, check=check)
        np.testing.assert_array_equal(lowered.regions, prepare(program, check=False).regions)
        assert lowered.regions.dtype == np.int64
    with pytest.raises(InvalidInputError, match="a copy half's region is not three integers"):
        prepare(_with_half(program, region=dataclasses.replace(region, row=np.uint64(region.row),
                                                               col=float(region.col))), check=False)

def test_a_region_on_an_array_the_layout_lacks_is_a_key_error() -> None:
    """`Layout.windows` looks arrays up all at once; an array it does not have is a KeyError naming it, as the
    mapping's look-up was."""
    layout = Layout.of({9: (4, 4), 2: (4, 4)})
    np.testing.assert_array_equal(layout.windows([2, 9], [0, 1], [0, 1], [1, 1], [2, 1]), [16, 17, 5])
    with pytest.raises(KeyError, match="5"):
        layout.windows([2, 5, 9], [0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1])
    with pytest.raises(KeyError, match="3"):
        Layout.of({}).windows([3], [0], [0], [1], [1])


@pytest.mark.parametrize("row, col", [(0, 2**63 - 3), (2**63 - 3, 0)])
def test_an_unchecked_half_whose_place_would_wrap_int64_is_refused(stuck_program: Program, row: int, col: int
                                                                   ) -> None:
    """A copy half at a row or col near 2**63 of an unchecked Program (`prepare(check=False)`, as `simulate`
    lowers): row + rows would wrap to a negative number and the half read devices of other rows or arrays."""
    layer = stuck_program.layers[0]
    block = layer.blocks[0]
    half = block.copies[0].pos
    moved = dataclasses.replace(block.copies[0], pos=dataclasses.replace(
        half, region=dataclasses.replace(half.region, row=row, col=col)))
    blocks = (dataclasses.replace(block, copies=(moved, *block.copies[1:])), *layer.blocks[1:])
    program = dataclasses.replace(stuck_program, layers=(dataclasses.replace(layer, blocks=blocks),
                                                         *stuck_program.layers[1:]))
    rows, cols = half.levels.shape
    with pytest.raises(InvalidInputError, match=f"a region of {rows} x {cols} devices at row {row}, column {col} of "
                       f"array {half.region.array} does not lie inside that 8 x 8 array"):
        prepare(program, check=False)


def test_array_positions_of_ids_that_are_not_int64s() -> None:
    """Float ids go one by one through `Chip.array` (which finds 1.0 as 1 and refuses 2.5); uint64 ids past
    int64 are refused by their own value, not wrapped to a negative one."""
    chip = synth_chip(arrays=5, rows=6, cols=7, stuck_high=0.1, stuck_low=0.1, seed=1)
    assert chip.array_positions(np.array([1.0, 3.0])).tolist() == chip.array_positions([1, 3]).tolist()
    with pytest.raises(UsageError, match="no array 2.5"):
        chip.array_positions(np.array([1.0, 2.5]))
    with pytest.raises(UsageError, match=f"no array {2**63 + 5}"):
        chip.array_positions(np.array([1, 2**63 + 5], dtype=np.uint64))
