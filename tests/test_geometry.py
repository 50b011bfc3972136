"""`geometry.find_sorted`, the one sorted look-up, against a dict built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lea_compiler.geometry import find_sorted


@pytest.mark.parametrize("seed", range(5))
def test_find_sorted_finds_what_a_dict_finds(seed: int) -> None:
    """Each value's place among ascending keys where it is one, and False elsewhere (below the first key, between
    keys, past the last); no keys at all: nothing found."""
    r = np.random.default_rng(seed)
    keys = np.unique(r.integers(-50, 50, int(r.integers(1, 30))))
    values = r.integers(-60, 60, 200)
    place = {int(k): i for i, k in enumerate(keys.tolist())}
    at, found = find_sorted(keys, values)
    assert found.tolist() == [int(v) in place for v in values.tolist()]
    assert at[found].tolist() == [place[int(v)] for v in values[found].tolist()]
    assert ((0 <= at) & (at < len(keys))).all()
    at, found = find_sorted(np.zeros(0, dtype=np.int64), values.reshape(20, 10))
    assert at.shape == found.shape == (20, 10) and not found.any() and not at.any()
