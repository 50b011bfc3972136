"""encode (levels given stuck devices, rme partner choice) and select (beta of alpha per column), by hand."""

from __future__ import annotations

import numpy as np

from lea_compiler.passes.encode import encode_copy, nearest_level
from lea_compiler.passes.select import select_columns

LEVELS = np.array([133.0, 167.0, 200.0, 233.0])
HEALTHY = (np.zeros((1, 3), np.int8), np.full((1, 3), np.nan))


def test_nearest_level() -> None:
    assert nearest_level(LEVELS, np.array([0.0, 150.0, 151.0, 216.5, 999.0])).tolist() == [0, 0, 1, 2, 3]


def test_simple_programs_targets_and_skips_stuck_devices() -> None:
    tp = np.array([[3, 0, 1]])
    tn = np.array([[0, 0, 0]])
    stuck_p = (np.array([[1, 0, 0]], np.int8), np.array([[500.0, np.nan, np.nan]]))
    pos, neg, pos_uS, neg_uS = encode_copy(LEVELS, tp, tn, stuck_p, HEALTHY, "simple")
    assert pos.tolist() == [[-1, 0, 1]] and neg.tolist() == [[0, 0, 0]]
    np.testing.assert_allclose(pos_uS, [[500, 133, 167]])
    np.testing.assert_allclose(neg_uS, [[133, 133, 133]])


def test_rme_moves_the_healthy_partner_of_a_stuck_device() -> None:
    # targets: +100 (233, 133), 0 (133, 133), -67 (133, 200)
    tp = np.array([[3, 0, 0]])
    tn = np.array([[0, 0, 2]])
    # G+ stuck at 200 in column 0: want G- = 200 - 100 = 100 -> level 133 (error 33 instead of 33: same);
    # G- stuck at 180 in column 1: want G+ = 180 + 0 -> level 167 (error 13 instead of 47);
    # G+ stuck at 240 in column 2: want G- = 240 + 67 = 307 -> level 233 (error 60 instead of 107)
    stuck_p = (np.array([[1, 0, 1]], np.int8), np.array([[200.0, np.nan, 240.0]]))
    stuck_n = (np.array([[0, -1, 0]], np.int8), np.array([[np.nan, 180.0, np.nan]]))
    pos, neg, pos_uS, neg_uS = encode_copy(LEVELS, tp, tn, stuck_p, stuck_n, "rme")
    assert pos.tolist() == [[-1, 1, -1]] and neg.tolist() == [[0, -1, 3]]
    np.testing.assert_allclose(pos_uS - neg_uS, [[67, -13, 7]])
    _, _, sp, sn = encode_copy(LEVELS, tp, tn, stuck_p, stuck_n, "simple")
    target = LEVELS[tp] - LEVELS[tn]
    assert np.all(np.abs(pos_uS - neg_uS - target) <= np.abs(sp - sn - target))


def test_select_takes_the_beta_smallest_errors_per_column_stably() -> None:
    errors = np.array([[5.0, 0.0, 1.0], [0.0, 0.0, 1.0], [3.0, 9.0, 1.0]])
    assert select_columns(errors, 1).tolist() == [[False, True, True], [True, False, False], [False, False, False]]
    assert select_columns(errors, 2).tolist() == [[False, True, True], [True, True, True], [True, False, False]]
