"""A layer's per-read regions as one flat buffer (`schedule.regions`): `Regions` against the buffer split by hand,
and `put_regions` against assigning region after region."""

from __future__ import annotations

import numpy as np
import pytest

from lea_compiler.errors import InvalidInputError
from lea_compiler.schedule import regions as regions_module
from lea_compiler.schedule.regions import Regions, check_regions, flat_of, put_regions

SHAPES = [(2, 3), (4, 1), (2, 3), (1, 5), (4, 1), (4, 1), (2, 3)]
"""Regions of three shapes: those of (2, 3) and of (4, 1) not one after the other (`put_regions` gathers them)."""
IN_RUNS = [(2, 3), (2, 3), (2, 3), (4, 1), (4, 1), (1, 5)]
"""Each shape's regions one after the other (`put_regions` reads them as views of the buffer)."""


def _regions(shapes: list[tuple[int, int]], seed: int = 0) -> Regions:
    heights, widths = (np.array(side, dtype=np.int64) for side in zip(*shapes, strict=True))
    flat = np.random.default_rng(seed).uniform(0.0, 100.0, int(np.sum(heights * widths)))
    return Regions(flat, heights, widths)


def test_regions_are_views_of_the_buffer_region_after_region() -> None:
    regions = _regions(SHAPES)
    at, split = 0, []
    for rows, cols in SHAPES:
        split.append(regions.flat[at:at + rows * cols].reshape(rows, cols))
        at += rows * cols
    assert len(regions) == len(SHAPES)
    for got, want in zip(regions, split, strict=True):
        np.testing.assert_array_equal(got, want, strict=True)
        assert np.shares_memory(got, regions.flat)
    np.testing.assert_array_equal(regions[-1], split[-1])
    assert [g.shape for g in regions[1:4]] == SHAPES[1:4]
    with pytest.raises(IndexError, match="region 7 of 7"):
        regions[7]
    assert flat_of(regions) is regions.flat  # the set-up reads the buffer itself
    np.testing.assert_array_equal(flat_of(split), regions.flat, strict=True)
    with pytest.raises(ValueError, match=r"a flat buffer of \(5,\) for regions of 6 devices"):
        Regions(np.zeros(5), np.array([2]), np.array([3]))


def test_regions_of_other_shapes_than_the_reads_are_refused() -> None:
    regions = _regions(SHAPES)
    heights, widths = regions.heights.copy(), regions.widths.copy()
    check_regions("fc", "conductances", regions, heights, widths)
    widths[3] = 4
    with pytest.raises(InvalidInputError, match=r"layer 'fc': the conductances of read 3 are \(1, 5\), its region "
                                                r"\(1, 4\)"):
        check_regions("fc", "conductances", regions, heights, widths)
    with pytest.raises(InvalidInputError, match="layer 'fc': 7 conductances for 6 reads"):
        check_regions("fc", "conductances", regions, heights[1:], widths[1:])


def _placed(shapes: list[tuple[int, int]], seed: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A place for each region in an output array, none overlapping: region i in a row of its own, at a random
    column."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    top = 0
    for height, _ in shapes:
        rows.append(top)
        cols.append(int(rng.integers(0, 4)))
        top += height
    return np.array(rows), np.array(cols), (top, 4 + max(w for _, w in shapes))


@pytest.mark.parametrize("part", [None, 6, 13], ids=["one part", "a region a part", "parts of two regions"])
@pytest.mark.parametrize("shapes", [SHAPES, IN_RUNS, [(3, 2)] * 4], ids=["mixed", "in runs", "one shape"])
def test_put_regions_assigns_as_region_after_region(shapes: list[tuple[int, int]], part: int | None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """In one assignment per shape, or in parts of `_PUT_DEVICES` devices (a part's regions one after the other
    or not): the values of assigning region after region."""
    if part is not None:  # (every shape above `_AT_ONCE`)
        monkeypatch.setattr(regions_module, "_AT_ONCE", 0)
        monkeypatch.setattr(regions_module, "_PUT_DEVICES", part)
    regions = _regions(shapes)
    factor = np.random.default_rng(1).uniform(0.1, 3.0, len(shapes))
    row, col, shape = _placed(shapes, 2)
    got = np.zeros(shape, np.float32)
    put_regions(got, row, col, regions, factor, unique=True)
    want = np.zeros(shape, np.float32)
    for i, g in enumerate(regions):
        h, w = g.shape
        want[row[i]:row[i] + h, col[i]:col[i] + w] = (g * factor[i]).astype(np.float32)
    np.testing.assert_array_equal(got, want, strict=True)
    assert np.count_nonzero(got) == regions.flat.size


def test_overlapping_regions_leave_the_last_ones_values() -> None:
    """Regions that cover one device (a region read twice): the later region's value stays, as assignment in
    order leaves it, whichever way numpy orders repeated indices."""
    shapes = [(3, 3), (2, 2), (3, 3), (1, 2)]
    regions = _regions(shapes, seed=4)
    factor = np.array([1.0, 2.0, 0.5, 3.0])
    row, col = np.array([0, 1, 0, 2]), np.array([0, 1, 1, 0])
    got = np.zeros((4, 5))
    put_regions(got, row, col, regions, factor, unique=False)
    want = np.zeros((4, 5))
    for i, g in enumerate(regions):
        h, w = g.shape
        want[row[i]:row[i] + h, col[i]:col[i] + w] = g * factor[i]
    np.testing.assert_array_equal(got, want, strict=True)


@pytest.mark.parametrize("part", [1 << 16, 24, 6], ids=["whole grids", "sub-grids", "region by region"])
@pytest.mark.parametrize("order", ["grid", "reversed", "grids"])
def test_regions_on_a_grid_are_put_grid_by_grid(order: str, part: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regions of one shape whose places form a grid in read order (as the executor's bands place a layer's
    reads), above `_AT_ONCE` devices, are written through strided views (`_grids`: one run, or a run per grid,
    steps negative too), whole or in sub-grids of `_PUT_DEVICES` devices, with the values of assigning region
    after region."""
    monkeypatch.setattr(regions_module, "_AT_ONCE", 0)
    monkeypatch.setattr(regions_module, "_PUT_DEVICES", part)
    sizes, (h, w) = (4, 3, 4), (2, 3)
    a, b, c = np.meshgrid(*(np.arange(n) for n in sizes), indexing="ij")
    row, col = (a * h).reshape(-1), (c * w + b * 4 * w).reshape(-1)
    if order == "reversed":
        row, col = row[::-1].copy(), col[::-1].copy()
    if order == "grids":  # the second half's places in reverse: two grids one after the other, the whole not one
        row[24:], col[24:] = row[24:][::-1].copy(), col[24:][::-1].copy()
    regions = _regions([(h, w)] * len(row), seed=3)
    factor = np.random.default_rng(2).uniform(0.1, 3.0, len(row))
    shape = (int(row.max()) + h, 3 * 4 * w)
    runs = regions_module._grids(regions.starts, row * shape[1] + col)
    assert runs is not None and (len(runs) > 1) == (order == "grids")
    got = np.zeros(shape, np.float32)
    put_regions(got, row, col, regions, factor, unique=True)
    want = np.zeros(shape, np.float32)
    for i, g in enumerate(regions):
        want[row[i]:row[i] + h, col[i]:col[i] + w] = (g * factor[i]).astype(np.float32)
    np.testing.assert_array_equal(got, want, strict=True)
    assert np.count_nonzero(got) == regions.flat.size


@pytest.mark.parametrize("at_once", [1 << 18, 0], ids=["at once", "grids or parts"])
def test_scattered_regions_are_no_grid_and_a_region_outside_is_refused(at_once: int,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Regions whose places follow no grid are put in parts (`_grids` gives None); a region that does not fit in
    the output is refused (IndexError), whether its shape's other regions form a grid or not, nothing written
    out of bounds."""
    monkeypatch.setattr(regions_module, "_AT_ONCE", at_once)
    regions = _regions([(2, 3)] * 6)
    row, col, shape = _placed([(2, 3)] * 6, 2)
    assert regions_module._grids(regions.starts, np.array([0, 7, 9, 30, 31, 50])) is None
    scattered = col.copy()
    scattered[3] = 16
    negative = col.copy()
    negative[2] = -1  # would wrap around to the last columns
    for bad_col in (np.arange(6) * 3 + 1, scattered, negative):  # a grid one column too far right; scattered
        got = np.zeros((shape[0], 18), np.float32)
        with pytest.raises(IndexError, match=r"region \d \(2 x 3 at row \d+, column -?\d+\) is outside the output of "
                                             r"shape \(\d+, 18\)"):
            put_regions(got, row, bad_col, regions, np.ones(6), unique=True)
        assert not got.any()  # refused before anything was written


def _grids_by_hand(source: np.ndarray, target: np.ndarray) -> list[tuple[int, int, tuple[int, ...], tuple[int, ...],
                                                                         tuple[int, ...]]]:
    """`_grids`' greedy runs, found the slow way: at each level, every later block of the run's size compared
    with the first, one by one (what `_grids` finds by looking at a doubling number of blocks)."""
    n, runs, lo = len(source), [], 0
    while lo < n:
        sizes: list[int] = []
        s_steps: list[int] = []
        t_steps: list[int] = []
        size = 1
        while lo + size < n:
            step_s, step_t = int(source[lo + size] - source[lo]), int(target[lo + size] - target[lo])
            blocks = 1
            while lo + (blocks + 1) * size <= n and all(
                    source[lo + blocks * size + i] - source[lo + i] == blocks * step_s
                    and target[lo + blocks * size + i] - target[lo + i] == blocks * step_t for i in range(size)):
                blocks += 1
            if blocks < 2:
                break
            sizes.insert(0, blocks)
            s_steps.insert(0, step_s)
            t_steps.insert(0, step_t)
            size *= blocks
        runs.append((lo, lo + size, tuple(sizes), tuple(s_steps), tuple(t_steps)))
        lo += size
    return runs


@pytest.mark.parametrize("seed", range(30))
def test_grids_are_the_greedy_runs_found_by_hand(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """`_grids` (blocks compared a doubling number at a time) against the by-hand greedy runs, on regions laid as
    grids of random sizes (1 to 3 levels, up to 40 a side), broken at random places, then joined: the same runs,
    and None where they are too many for the regions."""
    r = np.random.default_rng(seed)
    source, target, at_s, at_t = [], [], 0, 0
    for _ in range(int(r.integers(1, 6))):
        sizes = r.integers(1, 41, int(r.integers(1, 4)))
        steps = r.integers(1, 50, (2, len(sizes)))
        index = np.indices(sizes).reshape(len(sizes), -1).T
        source += (at_s + index @ steps[0]).tolist()
        target += (at_t + index @ steps[1]).tolist()
        at_s, at_t = source[-1] + int(r.integers(1, 9)), target[-1] + int(r.integers(1, 9))
    s, t = np.array(source, dtype=np.int64), np.array(target, dtype=np.int64)
    if seed % 3 == 0:  # some places moved: grids broken into shorter ones
        moved = r.choice(len(s), size=max(1, len(s) // 50), replace=False)
        s[moved] += 10**6
    monkeypatch.setattr(regions_module, "_GRID_REGIONS", 1)  # every run returned, however short
    assert regions_module._grids(s, t) == _grids_by_hand(s, t)
