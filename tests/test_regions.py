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
    """In one part per shape, or in parts of `_PUT_DEVICES` devices (a part's regions one after the other or
    not): the values of assigning region after region."""
    if part is not None:
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
