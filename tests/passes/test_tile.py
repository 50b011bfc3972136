"""tile: blocks cover the matrix exactly once and fit the chip's arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lea_compiler.chip import Array, Chip
from lea_compiler.errors import DoesNotFitError
from lea_compiler.onnx_frontend import import_model
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.passes.quantize import Quantize
from lea_compiler.passes.tile import Tile, Tiling, balanced_split, default_block_shape
from tests.helpers import mlp_model


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 300))
def test_balanced_split_covers_in_fewest_even_parts(size, limit) -> None:
    bounds = balanced_split(size, limit)
    assert bounds[0][0] == 0 and bounds[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    lengths = [b - a for a, b in bounds]
    assert max(lengths) <= limit and max(lengths) - min(lengths) <= 1
    assert len(bounds) == -(-size // limit)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 25), st.integers(1, 25), st.integers(0, 10**6))
def test_reassembling_the_blocks_gives_back_the_matrix(rows, cols, block_rows, block_cols, seed) -> None:
    matrix = np.random.default_rng(seed).standard_normal((rows, cols))
    tiling = Tiling(balanced_split(rows, block_rows), balanced_split(cols, block_cols))
    rebuilt = np.full_like(matrix, np.nan)
    for b in tiling.blocks:
        assert b.shape[0] <= block_rows and b.shape[1] <= block_cols
        part = matrix[b.row_start:b.row_stop, b.col_start:b.col_stop]
        assert np.all(np.isnan(rebuilt[b.row_start:b.row_stop, b.col_start:b.col_stop]))  # no overlap
        rebuilt[b.row_start:b.row_stop, b.col_start:b.col_stop] = part
    np.testing.assert_array_equal(rebuilt, matrix)
    assert [b.index for b in tiling.blocks] == list(range(len(tiling.blocks)))


def test_default_block_shape_is_the_shape_with_most_devices() -> None:
    four_small = (Array(1, 25, 25), Array(2, 25, 25), Array(3, 25, 25), Array(4, 25, 25))
    assert default_block_shape(Chip(arrays=(Array(0, 64, 32), *four_small))) == (25, 25)  # 2500 > 2048
    assert default_block_shape(Chip(arrays=(Array(0, 64, 64), *four_small))) == (64, 64)  # 4096 > 2500


def test_pass_tiles_every_layer_and_checks_the_override() -> None:
    chip = Chip(arrays=(Array(0, 8, 5), Array(1, 8, 5)))
    graph = Canonicalize().run(import_model(mlp_model()))
    Quantize((133.0, 233.0)).run(graph)
    Tile(chip).run(graph)
    tilings = [n.fact(Tiling) for n in graph.nodes_of("MVM")]
    assert [t.row_bounds for t in tilings] == [((0, 4),), ((0, 6), (6, 12)), ((0, 6),)]
    assert [t.col_bounds for t in tilings] == [((0, 4), (4, 8), (8, 12)), ((0, 3), (3, 6)), ((0, 3),)]
    with pytest.raises(DoesNotFitError, match="blocks of 9 x 5 fit no array of the chip"):
        Tile(chip, rows=9).run(graph)
