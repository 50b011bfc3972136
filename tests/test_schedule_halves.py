"""A Program's copy halves laid out once (`schedule.halves`) for the checks and lowering, against the halves read
one by one: each half's region, shape and levels, the arrays' layout, and the chip's stuck devices in them."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from lea_compiler.chip import synth_chip
from lea_compiler.chip.forms import chip_to_json
from lea_compiler.chip.io import parse_chip
from lea_compiler.compiler import compile_model
from lea_compiler.errors import InvalidInputError
from lea_compiler.pipeline import CompileOptions
from lea_compiler.program import LevelsPack, Program
from lea_compiler.program.checks import checked_halves, program_problems
from lea_compiler.schedule.halves import lay_out_halves
from lea_compiler.schedule.layout import Layout
from lea_compiler.schedule.lower import prepare
from tests.helpers import mlp_model


@pytest.fixture(scope="module", params=["8 x 8", "mixed"])
def program(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Program:
    """A three-layer MLP at k = 3 on a chip with stuck devices and dead lines: of 8 x 8 arrays, or of arrays of
    four shapes (8 or 12 rows, 8 or 10 columns: each array's layout must be its own)."""
    model = tmp_path_factory.mktemp("model") / "mlp.onnx"
    onnx.save(mlp_model((12, 16, 10, 4), seed=1), model)
    chip = synth_chip(arrays=70, rows=8, cols=8, stuck_high=0.08, stuck_low=0.04, dead_rows=0.02, seed=2)
    if request.param == "mixed":
        spec = chip_to_json(chip)
        spec["arrays"] = [{"id": i, "rows": 8 if i % 2 else 12, "cols": 8 if i % 3 else 10} for i in range(70)]
        chip = parse_chip(spec, "mixed")
    program = compile_model(model, chip, CompileOptions(k=3, beta=2, placer="greedy")).program
    used = {(chip.array(half.region.array).rows, chip.array(half.region.array).cols)
            for block in _blocks(program) for copy in block.copies for half in (copy.pos, copy.neg)}
    assert len(used) == (4 if request.param == "mixed" else 1)
    return program


def _blocks(program: Program) -> list:
    return [block for layer in program.layers for block in layer.blocks]


def test_the_halves_are_laid_out_as_read_one_by_one(program: Program) -> None:
    """Regions, shapes, bounds and levels against a loop over the halves; the layout holds each used array once,
    by ascending id, with the chip's shape; the stuck devices are where each half's slice of its array's
    `stuck_map` is stuck, half after half, and where the Program marks -1."""
    chip = program.chip
    halves = [half for block in _blocks(program) for copy in block.copies for half in (copy.pos, copy.neg)]
    laid_out = lay_out_halves(chip, program.layers)
    assert laid_out.halves == halves
    np.testing.assert_array_equal(laid_out.array, [half.region.array for half in halves])
    np.testing.assert_array_equal(laid_out.row, [half.region.row for half in halves])
    np.testing.assert_array_equal(laid_out.col, [half.region.col for half in halves])
    np.testing.assert_array_equal(laid_out.shapes, [half.levels.shape for half in halves])
    np.testing.assert_array_equal(laid_out.values, np.concatenate([half.levels.ravel() for half in halves]))
    sizes = [half.levels.size for half in halves]
    np.testing.assert_array_equal(laid_out.bounds, np.cumsum([0, *sizes]))
    used = sorted({half.region.array for half in halves})
    assert laid_out.layout.ids == tuple(used)
    assert laid_out.layout.shape == {a: (chip.array(a).rows, chip.array(a).cols) for a in used}
    state, g = [], []
    for half in halves:
        r, c = half.region.row, half.region.col
        rows, cols = half.levels.shape
        array_state, array_g = chip.stuck_map(half.region.array)
        state.append(array_state[r:r + rows, c:c + cols].ravel())
        g.append(array_g[r:r + rows, c:c + cols].ravel())
    at = np.flatnonzero(np.concatenate(state) != 0)
    assert at.size
    np.testing.assert_array_equal(laid_out.stuck[0], at)
    np.testing.assert_array_equal(laid_out.stuck[1], np.concatenate(g)[at])
    assert laid_out.stuck_marked() and not laid_out.overlap()


def test_a_layout_of_vectors_is_the_layout_of_the_mapping() -> None:
    """`Layout.of_arrays` (ids and shapes as vectors, in any order) gives the layout `Layout.of` gives for the
    same arrays in the same order: ids, offsets, shapes, size, views and windows."""
    shapes = {7: (5, 6), 2: (25, 25), 11: (3, 9)}
    of = Layout.of(shapes)
    vectors = Layout.of_arrays(np.array([7, 2, 11]), np.array([(5, 6), (25, 25), (3, 9)]))
    for layout in (of, vectors):
        assert layout.ids == (7, 2, 11) and layout.size == 30 + 625 + 27
        assert layout.offset == {7: 0, 2: 30, 11: 655} and layout.shape == shapes
    flat = np.arange(of.size)
    np.testing.assert_array_equal(vectors.view(flat, 11), flat[655:].reshape(3, 9))
    np.testing.assert_array_equal(vectors.windows([11, 7], [1, 0], [2, 1], [2, 1], [3, 2]),
                                  [655 + 11, 655 + 12, 655 + 13, 655 + 20, 655 + 21, 655 + 22, 1, 2])
    empty = Layout.of({})
    assert empty.ids == () and empty.size == 0


def test_the_checks_hand_their_layout_to_lowering(program: Program) -> None:
    """A checked Program's halves laid out by the checks lower as an unchecked lowering lays them out itself;
    a Program with a problem gets the problems and no layout."""
    problems, laid_out = checked_halves(program)
    assert problems == [] and laid_out is not None
    checked, unchecked = prepare(program), prepare(program, check=False)
    for name in ("regions", "bounds", "values", "shapes", "unwritten", "skipped", "marked_uS", "marked",
                 "marked_target", "at"):
        np.testing.assert_array_equal(getattr(checked, name), getattr(unchecked, name))
    layer = program.layers[0]
    block = layer.blocks[0]
    copy = block.copies[0]
    moved = dataclasses.replace(copy, neg=dataclasses.replace(copy.neg, region=copy.pos.region))
    broken = dataclasses.replace(program, layers=(dataclasses.replace(layer, blocks=(
        dataclasses.replace(block, copies=(moved, *block.copies[1:])), *layer.blocks[1:])), *program.layers[1:]))
    problems, laid_out = checked_halves(broken)
    assert problems == program_problems(broken) and any("overlaps" in p for p in problems) and laid_out is None


def test_an_empty_list_of_blocks_lays_out_nothing(program: Program) -> None:
    """No layers, or layers without blocks (packed or not): no halves, an empty layout, nothing stuck (not a
    region "not three integers")."""
    empty = [dataclasses.replace(layer, blocks=()) for layer in program.layers]
    packed = [dataclasses.replace(layer, blocks=(), levels_pack=LevelsPack.of([])) for layer in program.layers]
    for layers in ([], empty, packed):
        laid_out = lay_out_halves(program.chip, layers)
        assert laid_out.array.dtype == np.int64 and laid_out.array.size == 0 and laid_out.values.size == 0
        assert laid_out.values.dtype == np.int8 and laid_out.shapes.shape == (0, 2)
        assert laid_out.layout.ids == () and laid_out.stuck[0].size == 0 and not laid_out.overlap()


def test_a_half_outside_its_array_is_refused(program: Program) -> None:
    """A region past its array's edge is refused by name (the checks' layout then gives the problem instead)."""
    blocks = _blocks(program)
    block = blocks[0]
    copy = block.copies[0]
    rows, cols = copy.pos.levels.shape
    region = dataclasses.replace(copy.pos.region, row=program.chip.array(copy.pos.region.array).rows - rows + 1)
    moved = dataclasses.replace(copy, pos=dataclasses.replace(copy.pos, region=region))
    layer = program.layers[0]
    with pytest.raises(InvalidInputError, match=f"a region of {rows} x {cols} devices at row {region.row}"):
        lay_out_halves(program.chip, [dataclasses.replace(layer, blocks=(
            dataclasses.replace(block, copies=(moved, *block.copies[1:])), *layer.blocks[1:])), *program.layers[1:]])


def _levels(program: Program) -> list[np.ndarray]:
    return [half.levels for block in _blocks(program) for copy in block.copies for half in (copy.pos, copy.neg)]


def test_a_compiled_or_loaded_programs_halves_are_views_of_their_layers_pack(program: Program, tmp_path) -> None:
    """Compiling and loading give each layer a `LevelsPack`: its values are the layer's halves' levels raveled
    and laid end to end, each half's levels the view of it at its place (writing one writes the pack)."""
    program.save(tmp_path / "p.leac")
    for made in (program, Program.load(tmp_path / "p.leac")):
        for layer in made.layers:
            pack = layer.levels_pack
            assert pack is not None
            levels = [half.levels for block in layer.blocks for copy in block.copies for half in (copy.pos, copy.neg)]
            assert pack.values_of(levels) is pack.values
            np.testing.assert_array_equal(pack.values, np.concatenate([own.ravel() for own in levels]))
            np.testing.assert_array_equal(pack.shapes, [own.shape for own in levels])
            assert all(np.shares_memory(own, pack.values) for own in levels)
    copy = np.array(program.layers[0].levels_pack.values)
    half = program.layers[0].blocks[0].copies[0].neg.levels
    try:
        half[0, 0] = 3 - half[0, 0]
        assert program.layers[0].levels_pack.values[half.shape[1] * half.shape[0]] == half[0, 0]
    finally:
        program.layers[0].levels_pack.values[:] = copy


def test_the_halves_laid_out_from_the_packs_are_those_laid_out_half_by_half(program: Program) -> None:
    """A packed Program's halves laid out (the packs taken whole) hold the same fields, values and dtype as the same
    Program without its packs (gathered half by half), and as the halves' own levels."""
    unpacked = [dataclasses.replace(layer, levels_pack=None) for layer in program.layers]
    packed, general = lay_out_halves(program.chip, program.layers), lay_out_halves(program.chip, unpacked)
    for name in ("array", "row", "col", "shapes", "bounds", "values"):
        np.testing.assert_array_equal(getattr(packed, name), getattr(general, name))
        assert getattr(packed, name).dtype == getattr(general, name).dtype
    np.testing.assert_array_equal(packed.values, np.concatenate([own.ravel() for own in _levels(program)]))
    assert not np.shares_memory(packed.values, program.layers[0].levels_pack.values)  # a copy, not the Program's


def test_a_half_given_other_levels_is_laid_out_half_by_half(program: Program) -> None:
    """A half given other levels than its pack's view (a Program rebuilt around the pack, or a half's levels set
    in place of the view) no longer takes the pack: its new levels are laid out, as lowering then reads them."""
    layer = program.layers[-1]
    block = layer.blocks[0]
    copy = block.copies[0]
    levels = np.array(copy.pos.levels)
    levels[0, 0] = 3 - levels[0, 0]
    moved = dataclasses.replace(copy, pos=dataclasses.replace(copy.pos, levels=levels))
    rebuilt = dataclasses.replace(layer, blocks=(dataclasses.replace(block, copies=(moved, *block.copies[1:])),
                                                 *layer.blocks[1:]))
    assert rebuilt.levels_pack is layer.levels_pack  # the pack carried over, stale
    other = dataclasses.replace(program, layers=(*program.layers[:-1], rebuilt))
    want = np.concatenate([own.ravel() for own in _levels(other)])
    np.testing.assert_array_equal(lay_out_halves(other.chip, other.layers).values, want)
    np.testing.assert_array_equal(prepare(other, check=False).values, want)
    assert not np.array_equal(want, lay_out_halves(program.chip, program.layers).values)


def test_a_layer_with_more_halves_than_its_pack_is_laid_out_half_by_half(program: Program) -> None:
    """The last layer rebuilt with a block more than its pack holds (the pack carried over: every pack still matches
    the halves it holds) is laid out half by half, its extra block's halves included."""
    *before, last = program.layers
    grown = dataclasses.replace(last, blocks=(*last.blocks, last.blocks[0]))
    assert grown.levels_pack is last.levels_pack
    other = dataclasses.replace(program, layers=(*before, grown))
    want = np.concatenate([own.ravel() for own in _levels(other)])
    assert want.size > sum(layer.levels_pack.values.size for layer in program.layers)
    np.testing.assert_array_equal(lay_out_halves(other.chip, other.layers).values, want)


def test_a_pack_of_the_wrong_size_is_refused() -> None:
    """`LevelsPack.viewing` refuses values that are not exactly the halves' (a pack's views would be short); the
    views of a right one are the matrices laid end to end."""
    with pytest.raises(ValueError, match="a pack of 11 levels for halves of 12"):
        LevelsPack.viewing(np.arange(11, dtype=np.int8), np.array([[2, 3], [3, 2]]))
    pack = LevelsPack.viewing(np.arange(12, dtype=np.int8), np.array([[2, 3], [3, 2]]))
    np.testing.assert_array_equal(pack.levels[0], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(pack.levels[1], [[6, 7], [8, 9], [10, 11]])
    made = LevelsPack.of([np.ones((2, 2), dtype=np.int8), np.zeros((1, 3), dtype=np.int8)])
    np.testing.assert_array_equal(made.values, [1, 1, 1, 1, 0, 0, 0])
    assert made.values.dtype == np.int8 and made.values_of(list(made.levels)) is made.values
    assert made.values_of([made.levels[0], np.zeros((1, 3), dtype=np.int8)]) is None
    assert made.values_of(list(made.levels[:1])) is None


def test_a_pickled_programs_packs_are_not_taken(program: Program) -> None:
    """Pickled and back (a Program sent to a worker), the halves' levels are arrays of their own, not views of the
    pack: the pack is not taken (writing a half would not write it), and the halves laid out are the same."""
    import pickle

    back = pickle.loads(pickle.dumps(program))
    for layer in back.layers:
        levels = [half.levels for block in layer.blocks for copy in block.copies for half in (copy.pos, copy.neg)]
        assert layer.levels_pack is not None and layer.levels_pack.values_of(levels) is None
    np.testing.assert_array_equal(lay_out_halves(back.chip, back.layers).values,
                                  lay_out_halves(program.chip, program.layers).values)
