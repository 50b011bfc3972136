"""The read-noise draw of the crossbar forward (lea_compiler/schedule/execute.py) against the model it approximates.

Each device adds U(-r, r) per read, so a column current's noise is exactly sum_i V_i u_i: mean 0, variance
r^2 / 3 sum_i V_i^2. The forward draws it as one Gaussian per current (`gaussian`: the 65,536 equiprobable
quantiles of N(0, 1), from each chunk's SFC64 generator, `noise_generator`) times that standard deviation; these
tests compare the draw with Monte-Carlo samples of the exact sum for realistic drives (25 and 128 rows, every row
driven or one in five, the bias row at full scale), and the executor's table path with its `exact_read_noise`
path (every device's own uniform draw) on the same layer.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler.backends.sim import CrossbarLayer, EventCounts
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.schedule.normal_draws import _gaussian_table, gaussian, noise_generator, normal_quantile
from tests.helpers import make_model

F = np.float32
R_US = 10.0  # the default device's read noise, uS
DRAWS = 400_000


def test_the_table_is_normal_dist_inv_cdf_at_every_quantile() -> None:
    """The table (a numpy transcription of AS241) against `statistics.NormalDist().inv_cdf`, quantile by
    quantile; equal in float32 here, compared to within one float32 step of the largest value."""
    p = (np.arange(1 << 16) + 0.5) / (1 << 16)
    reference = np.array([NormalDist().inv_cdf(q) for q in p])
    table = _gaussian_table()
    assert table.dtype == np.float32 and table.shape == (1 << 16,)
    np.testing.assert_allclose(table, reference, rtol=0, atol=5e-7)
    assert np.all(np.diff(table) > 0) and np.array_equal(table, -table[::-1])
    tails = np.array([1e-300, 1e-20, 1e-12, 1e-5, 0.02425, 0.075, 0.5, 0.925, 1 - 1e-9])  # all three branches
    np.testing.assert_allclose(normal_quantile(tails), [NormalDist().inv_cdf(q) for q in tails], rtol=1e-13)


def _drive(rows: int, driven: float, seed: int = 7) -> np.ndarray:
    """DAC voltages of a 12-bit DAC at v_read = 0.2 V for inputs uniform in [0, 1), a share `driven` of the rows
    driven (the others 0 V), the last row the bias row at full scale."""
    rng = np.random.default_rng(seed)
    v = np.round(rng.uniform(0, 1, rows) * 2047) / 2047 * 0.2
    v[rng.random(rows) >= driven] = 0.0
    v[-1] = 0.2
    return v


def _tails(z: np.ndarray, sigma: float, ks: tuple[float, ...]) -> np.ndarray:
    return np.array([np.mean(np.abs(z) > k * sigma) for k in ks])


@pytest.mark.parametrize(("rows", "driven"), [(25, 1.0), (128, 1.0), (128, 0.2)])
def test_the_draw_has_the_mean_variance_and_tails_of_the_exact_sum(rows: int, driven: float) -> None:
    """400,000 draws against 400,000 exact sums: mean within 0.01 sigma (6 standard errors), standard deviation
    within 1% (the exact sum's is r sqrt(sum V^2 / 3)), P(|z| > k sigma) for k = 1, 2, 3 within 20% of the
    Gaussian's plus five standard errors, and beyond 4 sigma rare in both (the table stops at 4.3 sigma; the
    exact sum's tails are a little lighter). Measured, drawn against exact: P(|z| > 3 sigma) 0.0026 against
    0.0022 (25 rows), 0.0026 (128 rows), 0.0022 (128 rows, one in five driven); P(|z| > 4 sigma) 5.8e-5 against
    2.2e-5, 6.2e-5 and 1.0e-5."""
    v = _drive(rows, driven)
    sigma = R_US * math.sqrt(float(np.sum(v * v)) / 3.0)
    drawn = sigma * gaussian(noise_generator(11, 0), (DRAWS,)).astype(np.float64)
    exact = np.zeros(DRAWS)
    rng = np.random.default_rng(12)
    for i in np.flatnonzero(v):
        exact += v[i] * rng.uniform(-R_US, R_US, DRAWS)
    for z in (drawn, exact):
        assert abs(z.mean()) < 0.01 * sigma
        assert abs(z.std() / sigma - 1) < 0.01
    _assert_tails_agree(drawn, exact, sigma)
    beyond = _tails(drawn, sigma, (4.0,))[0], _tails(exact, sigma, (4.0,))[0]
    assert 0 < beyond[0] < 2.5e-4 and beyond[1] < 2.5e-4, beyond


def _assert_tails_agree(got_z: np.ndarray, want_z: np.ndarray, sigma: float) -> None:
    """P(|z| > 1, 2, 3 sigma) of two samples of one size agree within 20% of the Gaussian's, plus five standard
    errors of the difference of two such estimates."""
    ks = (1.0, 2.0, 3.0)
    gauss = np.array([2 * NormalDist().cdf(-k) for k in ks])
    error = np.sqrt(2 * gauss * (1 - gauss) / len(got_z))
    got, want = _tails(got_z, sigma, ks), _tails(want_z, sigma, ks)
    assert np.all(np.abs(got - want) <= 0.2 * gauss + 5 * error), (got, want)


def test_with_few_driven_rows_the_draw_has_heavier_tails_than_the_exact_sum() -> None:
    """The approximation's known limit: 6 of 25 rows driven make a sum of 6 uniform terms, bounded at
    sum_i |V_i| r, whose tails are lighter than the Gaussian's (measured: P(|z| > 3 sigma) 0.0005 exact, 0.0026
    drawn; none exact beyond 3.5 sigma, 0.0004 drawn). The variance, which sets what averaging copies and reads
    does, is still exact."""
    v = _drive(25, 0.2)
    assert np.count_nonzero(v) == 6
    sigma = R_US * math.sqrt(float(np.sum(v * v)) / 3.0)
    drawn = sigma * gaussian(noise_generator(11, 0), (DRAWS,)).astype(np.float64)
    rng = np.random.default_rng(12)
    exact = sum(v[i] * rng.uniform(-R_US, R_US, DRAWS) for i in np.flatnonzero(v))
    assert abs(drawn.std() / sigma - 1) < 0.01 and abs(exact.std() / sigma - 1) < 0.01
    got, want = _tails(drawn, sigma, (3.0, 3.5)), _tails(exact, sigma, (3.0, 3.5))
    assert want[0] < 0.5 * got[0] and got[0] < 1.2 * 2 * NormalDist().cdf(-3) and want[1] == 0 < got[1]


def _column(tmp_path: Path, rows: int) -> tuple[object, Chip]:
    """y = x @ w for one column of `rows` weights +-1 on one defect-free rows x 4 array (k = 1, 16-bit DAC and
    ADC, no write noise): the table and the exact read noise both on the same two column currents."""
    w = np.where(np.arange(rows) % 3 == 0, -1.0, 1.0).astype(F).reshape(rows, 1)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", rows])}, ["y"],
                       {"W": w})
    path = tmp_path / f"col{rows}.onnx"
    onnx.save(model, path)
    chip = Chip(arrays=(Array(0, rows, 4),),
                device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0, read_noise_uS=R_US),
                periphery=Periphery(v_read_V=0.2, dac_bits=16, adc_bits=16, adcs_per_array=1))
    quiet = Chip(arrays=chip.arrays, device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0,
                                                        read_noise_uS=0.0), periphery=chip.periphery)
    return compile_model(path, quiet, CompileOptions(k=1)).program, chip


@pytest.mark.parametrize("rows", [25, 128])
def test_the_forward_table_noise_matches_its_exact_per_device_noise(tmp_path: Path, rows: int) -> None:
    """One input vector (every row driven, uneven drives) read 100,000 times through the executor, with the
    table draw and with `exact_read_noise`: the outputs' means agree within 5 standard errors, their standard
    deviations within 2%, and P(|y - mean| > k std) for k = 1, 2, 3 within 20% of the Gaussian's plus five
    standard errors (the output is G+'s current minus G-'s, two noisy currents)."""
    program, chip = _column(tmp_path, rows)
    x = np.tile(np.random.default_rng(3).uniform(0.1, 1.0, rows).astype(F), (100_000, 1))
    outputs = []
    for exact in (False, True):
        layer = CrossbarLayer.of(program, "mm", chip, np.random.default_rng(0), exact_read_noise=exact)
        outputs.append(layer.forward(x, np.random.default_rng(5), EventCounts())[:, 0].astype(np.float64))
    table, exact = outputs
    spread = exact.std()
    assert spread > 0 and abs(table.mean() - exact.mean()) < 5 * spread * math.sqrt(2 / len(x))
    assert abs(table.std() / spread - 1) < 0.02
    _assert_tails_agree(table - table.mean(), exact - exact.mean(), spread)
