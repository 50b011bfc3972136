"""`program_problems`' placement checks (every copy half inside its array, on no other, marked stuck exactly where
the chip is): found for all halves at once (`checks._halves_fit`), each problem then named half by half
(`checks._half_problems`, the checks as they were). Both are checked here against each other on many broken
Programs, and the messages against hand-made cases."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

from lea_compiler.geometry import Region
from lea_compiler.program import Program, checks, program_problems

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def program() -> Program:
    return Program.from_bytes((GOLDEN / "program_v1.leac").read_bytes())


def _with_half(program: Program, index: int, **changes: object) -> Program:
    """`program` with copy half `index` (in the order the Program lists them) changed."""
    at = 0
    layers = []
    for layer in program.layers:
        blocks = []
        for block in layer.blocks:
            copies = []
            for copy in block.copies:
                halves = {}
                for polarity in ("pos", "neg"):
                    half = getattr(copy, polarity)
                    halves[polarity] = dataclasses.replace(half, **changes) if at == index else half
                    at += 1
                copies.append(dataclasses.replace(copy, **halves))
            blocks.append(dataclasses.replace(block, copies=tuple(copies)))
        layers.append(dataclasses.replace(layer, blocks=tuple(blocks)))
    return dataclasses.replace(program, layers=tuple(layers))


def _halves(program: Program) -> list[checks._Half]:
    return [(layer, block, copy, polarity, getattr(copy, polarity)) for layer in program.layers
            for block in layer.blocks for copy in block.copies for polarity in ("pos", "neg")]


def _half(program: Program, index: int) -> checks.CopyHalf:
    return _halves(program)[index][4]


def _first_device(program: Program, index: int, stuck: bool) -> tuple[int, int]:
    """A device of half `index` that is (or is not) stuck on the chip, within the half."""
    half = _half(program, index)
    rows, cols = half.levels.shape
    state = program.chip.stuck_map(half.region.array)[0][half.region.row:half.region.row + rows,
                                                          half.region.col:half.region.col + cols]
    r, c = np.argwhere((state != 0) == stuck)[0]
    return int(r), int(c)


def test_a_compiled_program_fits(program) -> None:
    assert checks._halves_fit(program.chip, program.layers)
    assert program_problems(program) == []


def test_a_healthy_device_marked_stuck_is_named(program) -> None:
    r, c = _first_device(program, 1, stuck=False)
    half = _half(program, 1)
    levels = half.levels.copy()
    levels[r, c] = -1
    region = half.region
    assert program_problems(_with_half(program, 1, levels=levels)) == [
        f"layer 'fc0' block 0 copy 0 neg: device (array {region.array}, row {region.row + r}, col {region.col + c}) "
        "is marked stuck (-1) in the Program but healthy on the chip"]


def test_a_stuck_device_programmed_is_named(program) -> None:
    index = next(i for i, h in enumerate(_halves(program)) if np.any(h[4].levels == -1))
    half = _half(program, index)
    r, c = (int(v) for v in np.argwhere(half.levels == -1)[0])
    levels = half.levels.copy()
    levels[r, c] = 0
    problems = program_problems(_with_half(program, index, levels=levels))
    assert len(problems) == 1
    assert problems[0].endswith(f"device (array {half.region.array}, row {half.region.row + r}, col "
                                f"{half.region.col + c}) is stuck on the chip but the Program programs it")


def test_a_half_outside_its_array_and_a_half_overlapping_another_are_named(program) -> None:
    half = _half(program, 0)
    moved = _with_half(program, 0, region=Region(half.region.array, 14, 0))  # 4 rows from row 14 of 16
    assert program_problems(moved) == [
        f"layer 'fc0' block 0 copy 0 pos: region (row 14, col 0) + 4 x 12 is outside array {half.region.array} "
        "(16 x 16)"]
    other = _half(program, 2)
    shifted = _with_half(program, 0, region=Region(other.region.array, other.region.row + 1, other.region.col))
    problems = program_problems(shifted)
    assert f"layer 'fc0' block 0 copy 1 pos: its region on array {other.region.array} overlaps layer 'fc0' block 0 " \
           "copy 0 pos" in problems


def test_a_row_past_int64_is_outside_its_array_not_a_crash(program) -> None:
    half = _half(program, 3)
    problems = program_problems(_with_half(program, 3, region=Region(half.region.array, 2**70, 0)))
    assert problems == [f"layer 'fc0' block 0 copy 1 neg: region (row {2**70}, col 0) + 4 x 12 is outside array "
                        f"{half.region.array} (16 x 16)"]


@pytest.mark.parametrize("seed", range(10))
def test_the_bulk_check_agrees_with_the_per_half_checks_on_broken_programs(program, seed) -> None:
    """Random damage (a half moved anywhere on the chip or off it, or nudged by a few rows and cols, a level
    flipped to or from -1, two halves' regions swapped): the bulk check passes exactly the Programs the per-half
    checks find nothing wrong with, and `program_problems` lists what the per-half checks list."""
    rnd = random.Random(seed)
    chip = program.chip
    count = len(_halves(program))
    top = len(chip.device.levels_uS) - 1
    fits = 0
    for _ in range(60):
        broken = program
        for _ in range(rnd.choice([1, 1, 2])):
            index = rnd.randrange(count)
            half = _half(broken, index)
            kind = rnd.choice(["move", "nudge", "flip", "swap"])
            if kind == "nudge":  # a few rows or cols off: onto a neighbour, or past the array's edge
                region = half.region
                region = Region(region.array, max(0, region.row + rnd.randint(-3, 3)),
                                max(0, region.col + rnd.randint(-3, 3)))
                broken = _with_half(broken, index, region=region)
            elif kind == "move":
                region = Region(rnd.randrange(len(chip.arrays) + 1), rnd.randrange(16), rnd.randrange(16))
                broken = _with_half(broken, index, region=region)
            elif kind == "flip":
                levels = half.levels.copy()
                r, c = rnd.randrange(levels.shape[0]), rnd.randrange(levels.shape[1])
                levels[r, c] = rnd.randrange(top + 1) if levels[r, c] == -1 else -1
                broken = _with_half(broken, index, levels=levels)
            else:
                other = rnd.randrange(count)
                region = _half(broken, other).region
                broken = _with_half(_with_half(broken, other, region=half.region), index, region=region)
        halves = _halves(broken)
        expected = checks._half_problems(chip, halves)
        laid_out = checks._halves_fit(chip, broken.layers)
        assert (laid_out is not None) == (expected == [])
        assert program_problems(broken) == expected
        fits += expected == []
    assert 0 < fits < 60  # the damage was seen, and some left the Program consistent (a flip back, a nudge by 0)


def test_each_bad_half_of_a_block_is_named_in_order(program) -> None:
    """The levels and conductances of a block's halves are checked at once; the messages still name each bad
    half, in the order of the halves, as one check per half named them."""
    programmed = Program.from_bytes((GOLDEN / "program_v1_programmed.leac").read_bytes())
    half = _half(programmed, 0)
    out_of_range = np.full_like(half.levels, 99)
    broken = _with_half(programmed, 0, levels=out_of_range)
    broken = _with_half(broken, 1, programmed_uS=np.full(half.levels.shape, np.nan))
    broken = _with_half(broken, 2, levels=half.levels.astype(np.float32))
    broken = _with_half(broken, 3, levels=out_of_range, programmed_uS=half.levels)
    top = len(programmed.chip.device.levels_uS) - 1
    assert program_problems(broken) == [
        f"layer 'fc0' block 0: copy 0 pos: the levels has a level index outside -1..{top}",
        "layer 'fc0' block 0: copy 0 neg: programmed_uS holds a conductance that is not a finite number in "
        "0..1e+06 uS",
        "layer 'fc0' block 0: copy 1 pos: the levels is float32[4, 12], not an integer 4 x 12 matrix",
        f"layer 'fc0' block 0: copy 1 neg: the levels has a level index outside -1..{top}",
        f"layer 'fc0' block 0: copy 1 neg: programmed_uS is {half.levels.dtype}[4, 12], not a float 4 x 12 matrix"]


@pytest.mark.parametrize("changes, message", [
    ({"region": Region(0, True, 0)}, "layer 'fc0' block 0: copy 0 pos: region [0, True, 0] is not three "
                                     "non-negative integers"),
    ({"region": Region(0, -1, 0)}, "layer 'fc0' block 0: copy 0 pos: region [0, -1, 0] is not three "
                                   "non-negative integers"),
    ({"cost_uS": float("nan")}, "layer 'fc0' block 0: copy 0 pos: cost_uS nan is not a number"),
    ({"cost_uS": "1"}, "layer 'fc0' block 0: copy 0 pos: cost_uS '1' is not a number"),
    ({"cost_uS": np.float32(1.5)}, None),  # numpy's numbers are numbers: the per-half checks pass them
    ({"region": None}, None),  # the region as it was, its fields numpy integers
])
def test_a_half_s_region_and_cost_are_checked_whatever_their_types(program, changes, message) -> None:
    half = _half(program, 0)
    if changes.get("region", 0) is None:
        region = half.region
        changes = {"region": Region(np.int32(region.array), np.int64(region.row), np.int16(region.col))}
    problems = program_problems(_with_half(program, 0, **changes))
    assert problems == ([] if message is None else [message])


@pytest.mark.parametrize("row, col", [(2**63 - 1, 0), (0, 2**63 - 1), (2**63 - 4, 2**63 - 12)])
def test_a_row_or_col_that_would_wrap_int64_is_outside_its_array(program, row, col) -> None:
    """A region this far out passes the int64 conversion, but row + rows would wrap to a negative number and the
    half land on real devices: the bulk check must refuse it as the per-half check does."""
    half = _half(program, 0)
    moved = _with_half(program, 0, region=Region(half.region.array, row, col),
                       levels=np.zeros_like(half.levels))
    assert not checks._halves_fit(moved.chip, moved.layers)
    assert program_problems(moved) == [
        f"layer 'fc0' block 0 copy 0 pos: region (row {row}, col {col}) + 4 x 12 is outside array "
        f"{half.region.array} (16 x 16)"]


def test_halves_that_share_one_device_per_row_overlap(program) -> None:
    """fc2's first half (6 x 3) moved to cols 3..5 of array 0 shares col 5 with fc1's last half (cols 5..10 of the
    same rows): runs that overlap by a single device, on healthy devices, with nothing else wrong."""
    assert _half(program, 7).region == Region(0, 0, 5)
    moved = _with_half(program, 8, region=Region(0, 0, 3), levels=np.zeros_like(_half(program, 8).levels))
    assert not checks._halves_fit(moved.chip, moved.layers)
    assert program_problems(moved) == [
        "layer 'fc2' block 0 copy 0 pos: its region on array 0 overlaps layer 'fc1' block 0 copy 1 neg"]
    fine = _with_half(program, 8, region=Region(0, 0, 2), levels=np.zeros_like(_half(program, 8).levels))
    assert checks._halves_fit(fine.chip, fine.layers) and program_problems(fine) == []  # cols 2..4: no overlap


@pytest.mark.parametrize("target, level", [(-1, None), ("top+1", None), (None, -2), (None, "top+1")])
def test_targets_and_levels_just_outside_their_range_are_named(program, target, level) -> None:
    """The one-pass range check of a layer's targets (0..top) and levels (-1..top), at both edges."""
    top = len(program.chip.device.levels_uS) - 1
    layer = program.layers[0]
    block = layer.blocks[0]
    if target is not None:
        value = top + 1 if target == "top+1" else target
        target_pos = block.target_pos.copy()
        target_pos[0, 0] = value
        blocks = (dataclasses.replace(block, target_pos=target_pos), *layer.blocks[1:])
        broken = dataclasses.replace(program, layers=(dataclasses.replace(layer, blocks=blocks),
                                                      *program.layers[1:]))
        expected = f"layer 'fc0' block 0: target_pos has a level index outside 0..{top}"
    else:
        value = top + 1 if level == "top+1" else level
        levels = _half(program, 0).levels.copy()
        levels[0, 0] = value
        broken = _with_half(program, 0, levels=levels)
        expected = f"layer 'fc0' block 0: copy 0 pos: the levels has a level index outside -1..{top}"
    assert expected in program_problems(broken)
    for edge in ([0, top] if target is not None else [-1, top]):  # the edges themselves are fine
        assert checks._within([np.array([edge])], 0 if target is not None else -1, top)


@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_a_packed_layers_level_out_of_range_is_named(program, tmp_path, how: str) -> None:
    """A loaded version-2 Program's levels are checked from its layers' packs (`LevelsPack`): a level out of range
    written into a half's view (so into the pack), or a half given other levels than its view (the pack then not
    taken), is named as in a Program without packs; the same Program fine again has no problem."""
    top = len(program.chip.device.levels_uS) - 1
    program.save(tmp_path / "v2.leac")
    packed = Program.load(tmp_path / "v2.leac")
    assert all(layer.levels_pack is not None for layer in packed.layers) and program_problems(packed) == []
    expected = f"layer 'fc0' block 0: copy 1 neg: the levels has a level index outside -1..{top}"
    half = packed.layers[0].blocks[0].copies[1].neg
    if how == "in place":
        was = int(half.levels[1, 0])
        half.levels[1, 0] = top + 1
        assert top + 1 in packed.layers[0].levels_pack.values
        assert program_problems(packed) == [expected]
        half.levels[1, 0] = was
        assert program_problems(packed) == []
        last_block = packed.layers[0].blocks[-1]
        last = last_block.copies[-1].neg.levels  # the pack's very last level
        was = int(last[-1, -1])
        last[-1, -1] = top + 1
        assert packed.layers[0].levels_pack.values[-1] == top + 1
        assert program_problems(packed) == [f"layer 'fc0' block {last_block.index}: copy "
                                            f"{last_block.copies[-1].copy} neg: the levels has a level index "
                                            f"outside -1..{top}"]
        last[-1, -1] = was
        assert program_problems(packed) == []
    else:
        levels = half.levels.copy()
        levels[1, 0] = -2
        broken = _with_half(packed, 3, levels=levels)
        assert broken.layers[0].levels_pack is packed.layers[0].levels_pack
        assert program_problems(broken) == [expected]


def test_copies_numbered_out_of_order_are_named(program) -> None:
    layer = program.layers[0]
    block = layer.blocks[0]
    first, second = block.copies
    swapped = (dataclasses.replace(first, copy=1), dataclasses.replace(second, copy=0))
    blocks = (dataclasses.replace(block, copies=swapped), *layer.blocks[1:])
    broken = dataclasses.replace(program, layers=(dataclasses.replace(layer, blocks=blocks), *program.layers[1:]))
    assert program_problems(broken) == ["layer 'fc0' block 0: copy 0 is numbered 1",
                                        "layer 'fc0' block 0: copy 1 is numbered 0"]


def test_a_conductance_above_the_limit_is_named() -> None:
    programmed = Program.from_bytes((GOLDEN / "program_v1_programmed.leac").read_bytes())
    half = _half(programmed, 0)
    too_high = half.programmed_uS.copy()
    too_high[0, 0] = 2e6
    assert program_problems(_with_half(programmed, 0, programmed_uS=too_high)) == [
        "layer 'fc0' block 0: copy 0 pos: programmed_uS holds a conductance that is not a finite number in "
        "0..1e+06 uS"]


@pytest.mark.parametrize("options, message", [
    ({"k": "abc"}, "options.k: 'abc' is neither a count nor layer=count pairs"),
    ({"k": 0}, "options.k must be at least 1, got 0"),
    ({"k": 2.5}, "options.k must be a count >= 1 or layer=count pairs, got float"),
    ({"beta": "fc1=0"}, "options.beta: fc1=0 is not a count >= 1"),
])
def test_the_copies_a_program_records_are_what_leac_compile_takes(program, options, message) -> None:
    """A Program whose options.k was "abc" loaded, simulated and showed `k: abc` in `leac report --json`."""
    damaged = dataclasses.replace(program, options={**program.options, **options})
    assert any(message in problem for problem in program_problems(damaged)), program_problems(damaged)
    assert program_problems(dataclasses.replace(program, options={**program.options, "k": "fc1=2,default=3"})) == []
