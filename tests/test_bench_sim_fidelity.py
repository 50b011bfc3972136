"""The paired tests of benchmarks/bench_sim_fidelity.py against brute force and hand-computed values."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_sim_fidelity as fidelity  # noqa: E402


def brute_sign_flip(d: np.ndarray) -> float:
    """The share of all 2^n sign assignments whose |sum| is at least the observed |sum|."""
    observed = abs(d.sum())
    hits = sum(abs(np.dot(s, d)) >= observed - 1e-9 for s in itertools.product((-1, 1), repeat=d.size))
    return hits / 2 ** d.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sign_flip_exact_equals_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = rng.normal(0.4, 1.0, 9)
    assert fidelity.sign_flip_p(d) == pytest.approx(brute_sign_flip(d), abs=1e-12)


def test_sign_flip_counts_tied_sums() -> None:
    d = np.round(np.array([1, -1, 2, 0, 3, -2, 1, 1], dtype=np.float64) / 300, 12)  # accuracy-like ties
    assert fidelity.sign_flip_p(d) == pytest.approx(brute_sign_flip(d), abs=1e-12)


def test_sign_flip_all_one_sign_gives_the_smallest_p() -> None:
    d = np.linspace(0.1, 2.0, 20)
    assert fidelity.sign_flip_p(d) == 2 / 2 ** 20  # only all + and all - reach the observed |sum|


def test_sign_flip_random_flips_agree_with_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    d = np.random.default_rng(5).normal(0.5, 1.0, 16)
    exact = fidelity.sign_flip_p(d)
    monkeypatch.setattr(fidelity, "EXACT_UP_TO", 0)
    sampled = fidelity.sign_flip_p(d, permutations=20000, seed=3)
    assert sampled == fidelity.sign_flip_p(d, permutations=20000, seed=3)  # seeded
    assert abs(sampled - exact) < 4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4


def test_wilcoxon_hand_computed() -> None:
    # |d| without the zero: 1, 1.5, 2, 2, 2, 3, 3, 4, 5, 6, 7, 8 -> ranks 1, 2, 4, 4, 4, 6.5, 6.5, 8, ..., 12;
    # the negative -2 and -5 have ranks 4 and 9, so W+ = 78 - 13 = 65 with n = 12
    d = np.array([1, -2, 3, 3, 0, 4, -5, 6, 2, 2, 7, 8, 1.5])
    w_plus, z, p = fidelity.wilcoxon(d)
    variance = 12 * 13 * 25 / 24 - ((3 ** 3 - 3) + (2 ** 3 - 2)) / 48
    assert w_plus == 65.0
    assert z == pytest.approx((65 - 39) / math.sqrt(variance))
    assert p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))


def test_wilcoxon_all_zero_differences() -> None:
    assert fidelity.wilcoxon(np.zeros(5)) == (0.0, 0.0, 1.0)


def test_distinct_metrics_drops_exact_duplicates_only() -> None:
    def run(accuracy: list[float], agreement: list[float]) -> dict[str, list[dict[str, Any]]]:
        return {"p": [{"accuracy": a, "agreement": g, "output_error": None}
                      for a, g in zip(accuracy, agreement, strict=True)]}

    same = fidelity.distinct_metrics(run([0.5, 0.6], [0.5, 0.6]), run([0.4, 0.7], [0.4, 0.7]))
    assert same == {"p": {"accuracy": "", "agreement": "accuracy"}}  # output_error None: not compared
    other = fidelity.distinct_metrics(run([0.5, 0.6], [0.5, 0.6]), run([0.4, 0.7], [0.4, 0.8]))
    assert other == {"p": {"accuracy": "", "agreement": ""}}
