"""Tests of lea_compiler/programming/devices.py: what one write-verify does to a device, and what a read-back
measures, against hand-worked cases, the models' expectations and a plain scalar statement of the pulse loop."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest

from lea_compiler.chip import DeviceModel, ProgrammingModel
from lea_compiler.errors import UsageError
from lea_compiler.programming.devices import (
    Written,
    gaussian_write,
    nominal_pulses,
    read_back,
    write_devices,
    write_errors,
)
from lea_compiler.schedule.lower import SKIPPED, UNUSED, ArrayProgram
from lea_compiler.schedule.plan import Schedule

LEVELS = (133.0, 167.0, 200.0, 233.0)


def _pulse(step: float, sigma: float = 0.0, *, read_noise: float = 0.0, reads: int = 1,
           levels: tuple[float, ...] = LEVELS) -> DeviceModel:
    return DeviceModel(levels_uS=levels, read_noise_uS=read_noise,
                       programming=ProgrammingModel("pulse", step_uS=step, step_sigma_uS=sigma, readback_reads=reads))


def _phi(z: float) -> float:
    """The standard normal distribution function."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _write(level: list[int], device: DeviceModel, seed: int = 0, **kwargs: Any) -> Written:
    kwargs = {"tolerance_uS": 8.25, "max_pulses": 100, **kwargs}
    return write_devices(np.array(level), device, np.random.default_rng(seed), **kwargs)


# --------------------------------------------------------------------------
# The pulse model, worked by hand (read noise 0, step 10 uS exactly, tolerance 8.25 uS)


def test_pulse_writes_worked_by_hand():
    # From the reset (133 uS, one pulse) up in steps of 10 until within 8.25 uS of the target:
    #   level 2 (200): reads 133 143 153 163 173 183 193 -> |193 - 200| = 7 <= 8.25: 6 steps, 7 pulses, 7 reads;
    #   level 0 (133): read 133, done: 1 pulse (the reset), 1 read;
    #   level 3 (233): 133 + 10 k >= 224.75 first at k = 10: g = 233, 11 pulses, 11 reads;
    #   level 1 (167): 133 + 10 k >= 158.75 first at k = 3: g = 163, 4 pulses, 4 reads.
    written = _write([2, 0, 3, 1], _pulse(10.0))
    np.testing.assert_array_equal(written.conductance_uS, [193.0, 133.0, 233.0, 163.0])
    np.testing.assert_array_equal(written.measured_uS, written.conductance_uS)
    np.testing.assert_array_equal(written.pulses, [7, 1, 11, 4])
    np.testing.assert_array_equal(written.verify_reads, [7, 1, 11, 4])
    np.testing.assert_array_equal(written.failed, [False, False, False, False])
    assert written.pulses.dtype == np.int64 and written.verify_reads.dtype == np.int64
    assert written.conductance_uS.dtype == np.float64 and written.failed.dtype == bool


def test_a_target_out_of_reach_of_the_pulse_budget_fails():
    # Budget 5: the reset and 4 steps, 133 -> 173; the 5th read (173, 27 from 200) finds the budget spent.
    written = _write([2, 0], _pulse(10.0), max_pulses=5)
    np.testing.assert_array_equal(written.conductance_uS, [173.0, 133.0])
    np.testing.assert_array_equal(written.measured_uS, [173.0, 133.0])
    np.testing.assert_array_equal(written.pulses, [5, 1])
    np.testing.assert_array_equal(written.verify_reads, [5, 1])
    np.testing.assert_array_equal(written.failed, [True, False])


def test_a_step_coarser_than_the_window_oscillates_until_the_budget_is_spent():
    # Step 20, tolerance 5: 133 153 173 193 213 193 213 193; 193 and 213 are 7 and 13 from 200.
    # The 8th read (193) finds the budget of 8 pulses (reset + 7 steps) spent.
    written = _write([2], _pulse(20.0), tolerance_uS=5.0, max_pulses=8)
    assert written.conductance_uS.tolist() == [193.0]
    assert written.pulses.tolist() == [8] and written.verify_reads.tolist() == [8]
    assert written.failed.tolist() == [True]


def test_a_given_start_is_rewritten_without_a_reset():
    # From 250 down to 200: reads 250 240 230 220 210 200, 5 steps and no reset pulse; 6 reads.
    # From 0: up 13 steps to 130, within 8.25 of 133 (level 0); 13 pulses, 14 reads.
    written = _write([2, 0], _pulse(10.0), start_uS=np.array([250.0, 0.0]))
    np.testing.assert_array_equal(written.conductance_uS, [200.0, 130.0])
    np.testing.assert_array_equal(written.pulses, [5, 13])
    np.testing.assert_array_equal(written.verify_reads, [6, 14])
    assert not written.failed.any()


def test_a_pulse_never_takes_the_conductance_below_zero():
    # Levels (1, 50), step 10, tolerance 0.5, from 3: 3 -> max(3 - 10, 0) = 0 -> 10 -> 0; budget 3 spent at 0.
    device = _pulse(10.0, levels=(1.0, 50.0))
    written = _write([0], device, tolerance_uS=0.5, max_pulses=3, start_uS=np.array([3.0]))
    assert written.conductance_uS.tolist() == [0.0]
    assert written.pulses.tolist() == [3] and written.verify_reads.tolist() == [4] and written.failed.tolist() == [True]


# --------------------------------------------------------------------------
# The gaussian model


def test_a_noiseless_gaussian_write_is_exact_and_costs_the_nominal_pulses():
    device = DeviceModel(write_noise_uS=0.0, read_noise_uS=0.0)
    written = _write([0, 3, 1, 2, 3], device, tolerance_uS=1e-9, max_pulses=1)
    np.testing.assert_array_equal(written.conductance_uS, [133.0, 233.0, 167.0, 200.0, 233.0])
    np.testing.assert_array_equal(written.measured_uS, written.conductance_uS)
    np.testing.assert_array_equal(written.pulses, [1, 4, 2, 3, 4])  # level + 1, whatever max_pulses says
    np.testing.assert_array_equal(written.verify_reads, [1, 4, 2, 3, 4])  # a verify after every pulse
    assert not written.failed.any()


def test_the_gaussian_failure_rate_is_the_normal_tail_beyond_the_tolerance():
    # Read noise 0: measured = g = target + N(0, sigma) (never clipped this far above 0), so a device fails with
    # probability P(|N(0, sigma)| > tol) = erfc(tol / (sigma sqrt 2)).
    sigma, tol, n = 16.66, 8.25, 200_000
    device = DeviceModel(write_noise_uS=sigma, read_noise_uS=0.0)
    level = np.random.default_rng(5).integers(0, 4, n)
    written = write_devices(level, device, np.random.default_rng(6), tolerance_uS=tol, max_pulses=1)
    p = math.erfc(tol / (sigma * math.sqrt(2.0)))
    assert abs(written.failed.mean() - p) < 4 * math.sqrt(p * (1 - p) / n), (written.failed.mean(), p)
    error = written.conductance_uS - np.asarray(LEVELS)[level]
    assert abs(error.mean()) < 4 * sigma / math.sqrt(n)
    assert abs(error.std() / sigma - 1) < 4 / math.sqrt(2 * n)
    np.testing.assert_array_equal(written.failed, np.abs(error) > tol)


def test_a_gaussian_write_is_clipped_at_zero():
    device = DeviceModel(levels_uS=(1.0, 2.0), write_noise_uS=100.0, read_noise_uS=0.0)
    written = _write([0] * 10_000, device)
    assert written.conductance_uS.min() == 0.0
    # P(1 + N(0, 100) < 0) = Phi(-0.01); all of those are at exactly 0.
    p = _phi(-0.01)
    assert abs((written.conductance_uS == 0).mean() - p) < 4 * math.sqrt(p * (1 - p) / 10_000)


# --------------------------------------------------------------------------
# The pulse model's statistics


def test_mean_pulses_with_a_spread_step_match_the_expectation():
    # Step N(10, 1), read noise 0, from the reset at 133 to 233 (tolerance 8.25): the device is done at the first
    # k with S_k = sum of k steps >= 91.75 (overshooting past 108.25 needs a step above 16.5: P ~ 1e-11; a step
    # below 0 has P ~ 1e-23), so pulses = 1 + K and E[K] = sum over k >= 0 of P(S_k < 91.75),
    # S_k ~ N(10 k, sqrt(k)): E[pulses] = 10.7247, and P(pulses = 10) = P(S_9 >= 91.75) = 0.2798.
    need, n = 233.0 - 8.25 - 133.0, 20_000
    expected = 1.0 + 1.0 + sum(_phi((need - 10.0 * k) / math.sqrt(k)) for k in range(1, 40))
    assert expected == pytest.approx(10.7247, abs=1e-4)
    written = _write([3] * n, _pulse(10.0, 1.0), seed=1)
    assert not written.failed.any()
    np.testing.assert_array_equal(written.verify_reads, written.pulses)
    assert abs(written.pulses.mean() - expected) < 4 * written.pulses.std() / math.sqrt(n)
    p10 = 1.0 - _phi((need - 90.0) / 3.0)
    assert abs((written.pulses == 10).mean() - p10) < 4 * math.sqrt(p10 * (1 - p10) / n)
    assert set(np.unique(written.pulses).tolist()) <= {10, 11, 12}


def _scalar_pulse_write(target: float, device: DeviceModel, rng: np.random.Generator, tolerance: float,
                        max_pulses: int) -> tuple[float, int, int, bool]:
    """The pulse model's loop for one device, as docs/chip-format.md states it, one number at a time."""
    model = device.programming
    assert model.step_uS is not None
    r, g, pulses, reads = device.read_noise_uS, device.levels_uS[0], 1, 0
    while True:
        measured = g + sum(rng.uniform(-r, r) for _ in range(model.readback_reads)) / model.readback_reads
        reads += 1
        if abs(measured - target) <= tolerance:
            return g, pulses, reads, False
        if pulses == max_pulses:
            return g, pulses, reads, True
        step = max(rng.normal(model.step_uS, model.step_sigma_uS), 0.0)
        g = max(g + math.copysign(step, target - measured), 0.0)
        pulses += 1


def test_the_pulse_model_with_read_noise_agrees_with_a_scalar_statement_of_the_loop():
    # Read noise 10 averaged over 4 reads, step N(8, 3), a budget that some devices exhaust: the vectorised model
    # and a plain loop (own random numbers) must agree on the mean pulses, reads, error and failure rate.
    device = _pulse(8.0, 3.0, read_noise=10.0, reads=4)
    n_vec, n_loop, tol, budget = 20_000, 600, 6.0, 12
    rng = np.random.default_rng(3)
    loop = np.array([_scalar_pulse_write(LEVELS[3], device, rng, tol, budget) for _ in range(n_loop)])
    written = _write([3] * n_vec, device, seed=4, tolerance_uS=tol, max_pulses=budget)
    vec = np.stack([written.conductance_uS, written.pulses, written.verify_reads, written.failed], axis=1)
    assert 0.02 < written.failed.mean() < 0.98  # the budget matters: the failure rate is informative
    for column in range(4):
        a, b = vec[:, column].astype(float), loop[:, column].astype(float)
        se = math.sqrt(a.var() / n_vec + b.var() / n_loop)
        assert abs(a.mean() - b.mean()) < 4 * se, (column, a.mean(), b.mean(), se)


# --------------------------------------------------------------------------
# Read-back


def test_a_read_back_adds_uniform_noise_averaged_over_its_reads():
    r, reads, n = 10.0, 3, 200_000
    g = np.random.default_rng(0).uniform(100.0, 300.0, n)
    device = DeviceModel(read_noise_uS=r, programming=ProgrammingModel(readback_reads=reads))
    error = read_back(g, device, np.random.default_rng(1)) - g
    variance = r * r / (3 * reads)  # U(-r, r) has variance r^2 / 3; the mean of `reads` reads a `reads`-th of it
    assert abs(error.mean()) < 4 * math.sqrt(variance / n)
    # Relative standard error of a sample variance: sqrt((kurtosis - 1) / n); the mean of 3 uniforms has
    # kurtosis 3 - 1.2 / 3 = 2.6.
    assert abs(error.var() / variance - 1) < 4 * math.sqrt(1.6 / n)
    assert np.abs(error).max() <= r
    # `reads` overrides the model's count: one read has variance r^2 / 3.
    single = read_back(g, device, np.random.default_rng(2), reads=1) - g
    assert abs(single.var() / (r * r / 3) - 1) < 4 * math.sqrt(0.8 / n)


def test_a_read_back_is_deterministic_given_the_generator_and_exact_without_noise():
    g = np.array([0.0, 133.0, 500.0])
    device = DeviceModel(read_noise_uS=5.0, programming=ProgrammingModel(readback_reads=4))
    a = read_back(g, device, np.random.default_rng(9))
    np.testing.assert_array_equal(a, read_back(g, device, np.random.default_rng(9)))
    assert not np.array_equal(a, read_back(g, device, np.random.default_rng(10)))
    quiet = DeviceModel(read_noise_uS=0.0)
    np.testing.assert_array_equal(read_back(g, quiet, np.random.default_rng(9)), g)


@pytest.mark.parametrize("reads", [0, 65, 2.0, True, "3"])
def test_read_back_refuses_a_bad_read_count(reads: Any):
    with pytest.raises(UsageError, match=rf"reads must be an integer from 1 to 64, got {reads!r}"):
        read_back(np.zeros(2), DeviceModel(), np.random.default_rng(0), reads=reads)


# --------------------------------------------------------------------------
# Determinism, the shared pulse count, bad input


@pytest.mark.parametrize("device", [DeviceModel(), _pulse(10.0, 2.0, read_noise=5.0, reads=2)])
def test_writes_are_deterministic_given_the_generator(device: DeviceModel):
    level = np.array([0, 1, 2, 3] * 50)
    first, again, other = (_write(level.tolist(), device, seed=s) for s in (7, 7, 8))
    for name in ("conductance_uS", "measured_uS", "pulses", "verify_reads", "failed"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.conductance_uS, other.conductance_uS)


def test_no_devices_is_an_empty_write():
    for device in (DeviceModel(), _pulse(10.0)):
        written = write_devices(np.array([], dtype=np.int64), device, np.random.default_rng(0), tolerance_uS=1.0,
                                max_pulses=3)
        assert written.conductance_uS.shape == (0,) and written.pulses.shape == (0,)


def test_the_schedule_counts_the_pulses_a_gaussian_write_costs():
    # One array: levels 0 and 3 written, one device skipped (stuck), one unused; 1 + 4 = 5 pulses by hand.
    level = np.array([[0, 3], [SKIPPED, UNUSED]], dtype=np.int64)
    array = ArrayProgram(0, level, np.zeros((2, 2)), np.zeros((2, 2), dtype=np.int64))
    schedule = Schedule(np.asarray(LEVELS), {0: array}, {}, None)
    assert schedule.program_pulses == 5
    written = _write(level[level >= 0].tolist(), DeviceModel())
    assert int(written.pulses.sum()) == schedule.program_pulses
    np.testing.assert_array_equal(nominal_pulses(np.array([0, 1, 2, 3])), [1, 2, 3, 4])


@pytest.mark.parametrize(
    ("level", "kwargs", "expected"),
    [
        ([0], {"max_pulses": 0}, "max_pulses must be an integer of at least 1, got 0"),
        ([0], {"max_pulses": True}, "max_pulses must be an integer of at least 1, got True"),
        ([0], {"max_pulses": 2.5}, "max_pulses must be an integer of at least 1, got 2.5"),
        ([0], {"tolerance_uS": 0.0}, "tolerance_uS must be a finite number above 0, got 0.0"),
        ([0], {"tolerance_uS": -1.0}, "tolerance_uS must be a finite number above 0, got -1.0"),
        ([0], {"tolerance_uS": math.nan}, "tolerance_uS must be a finite number above 0, got nan"),
        ([0], {"tolerance_uS": math.inf}, "tolerance_uS must be a finite number above 0, got inf"),
        ([0, 4], {}, r"level index 4 is outside the device's levels \(0 to 3\); 1 of 2 are"),
        ([-1, 0, 9], {}, r"level index -1 is outside the device's levels \(0 to 3\); 2 of 3 are"),
        ([[0, 1]], {}, r"level must be a 1-D array of level indices, got shape \(1, 2\) of int64"),
        ([0.0, 1.0], {}, r"level must be a 1-D array of level indices, got shape \(2,\) of float64"),
        ([0, 1], {"start_uS": np.zeros(3)}, r"start_uS has shape \(3,\); it must match level's \(2,\)"),
        ([0, 1], {"start_uS": np.array([1.0, -1.0])}, "start_uS must hold finite conductances of at least 0 uS"),
        ([0, 1], {"start_uS": np.array([1.0, np.nan])}, "start_uS must hold finite conductances of at least 0 uS"),
    ],
)  # fmt: skip
def test_bad_writes_are_refused_with_what_is_wrong(level: list[Any], kwargs: dict[str, Any], expected: str):
    for device in (DeviceModel(), _pulse(10.0)):
        with pytest.raises(UsageError, match=expected):
            _write(level, device, **kwargs)


def test_a_device_that_is_not_a_device_model_is_refused():
    with pytest.raises(UsageError, match="device must be a DeviceModel, got dict"):
        write_devices(np.array([0]), {"levels_uS": LEVELS}, np.random.default_rng(0),  # type: ignore[arg-type]
                      tolerance_uS=1.0, max_pulses=1)


def test_gaussian_write_adds_sigma_times_the_write_errors() -> None:
    """The "gaussian" write: the same bytes as max(target + sigma z, 0), z `write_errors` from a generator in the
    same state, with one sigma and with one per device (some 0); drawn in parts (of 7 devices here) the errors
    are the one draw's; a negative sigma is refused as numpy refuses it."""
    rng = np.random.default_rng(8)
    target = rng.uniform(0.0, 3.0, (40, 30))
    target[0, :5] = 0.0
    sigmas = rng.uniform(0.0, 2.0, target.shape)
    sigmas[1] = 0.0
    for sigma in (0.7, sigmas):
        got = gaussian_write(target, np.random.default_rng(5), sigma)
        want = np.maximum(target + sigma * write_errors(np.random.default_rng(5), target.shape), 0.0)
        assert got.tobytes() == want.tobytes() and (got == 0).any()
    whole = write_errors(np.random.default_rng(5), (1003,))
    parts = np.random.default_rng(5)
    out = np.empty(1003)
    for lo in range(0, 1003, 7):
        write_errors(parts, out[lo:lo + 7].shape, out=out[lo:lo + 7])
    assert whole.dtype == np.float64 and whole.tobytes() == out.tobytes()
    for negative in (-sigmas, -0.0):  # -sigmas holds -0.0s as well as negatives; numpy refuses -0.0 alone too
        with pytest.raises(ValueError, match="scale < 0"):
            gaussian_write(target, rng, negative)
        with pytest.raises(ValueError, match="scale < 0"):
            np.random.default_rng(5).normal(0.0, negative)


def test_scaled_write_errors_are_the_scale_times_the_errors() -> None:
    """`write_errors` with a scale (the table of the quantiles times it): the same bytes as the scale times the
    standard errors drawn from a generator in the same state (float64(z) * scale), for several scales (0, 1, odd
    ones, a NaN), returned, into a contiguous `out` and into a strided one; the generator left where one word per
    device leaves it."""
    for scale in (0.0, 1.0, 0.7, 16.66, 3.0e-5, float("nan")):
        want = write_errors(np.random.default_rng(3), (37, 11)) * scale
        got = write_errors(np.random.default_rng(3), (37, 11), scale=scale)
        assert got.dtype == np.float64 and got.shape == (37, 11) and got.tobytes() == want.tobytes()
        contiguous, strided = np.empty((37, 11)), np.empty((37, 22))[:, ::2]
        # outs no flat view reaches: a slice of longer rows, and a transpose
        sliced, transposed = np.zeros((37, 12))[:, :11], np.zeros((11, 37)).T
        for out in (contiguous, strided, sliced, transposed):
            rng = np.random.default_rng(3)
            assert write_errors(rng, (37, 11), out=out, scale=scale) is out
            assert np.ascontiguousarray(out).tobytes() == want.tobytes()
            after = np.random.default_rng(3)
            after.bit_generator.random_raw(37 * 11)
            assert rng.bit_generator.random_raw() == after.bit_generator.random_raw()


def test_a_scale_of_minus_zero_is_not_a_scale_of_zero() -> None:
    """The scaled tables are made once per scale, told apart by their bits: after -0.0's, 0.0 still gives +0.0
    errors (z * 0.0), and a NaN scale NaNs."""
    rng = np.random.default_rng(3)
    write_errors(rng, (6,), scale=-0.0)
    got = write_errors(np.random.default_rng(3), (6,), scale=0.0)
    assert got.tobytes() == (write_errors(np.random.default_rng(3), (6,)) * 0.0).tobytes()
    assert np.isnan(write_errors(rng, (6,), scale=float("nan"))).all()


def test_the_write_errors_are_standard_normal() -> None:
    """`write_errors` (the table's quantiles of N(0, 1), 16 bits each) against N(0, 1) itself, on 2 million draws
    of 3 seeds: mean 0 and variance 1 within 5 standard errors, the Kolmogorov-Smirnov distance below its 0.1%
    critical value (1.95 / sqrt(n)), each tail's share beyond 1, 2 and 3 sigma within 5 standard errors, none
    beyond the table's last quantile (4.32 sigma), neighbours uncorrelated (lags 1, 2 and 4 within 5 / sqrt(n)),
    and the seeds' draws different."""
    n = 2_000_000
    draws = [write_errors(np.random.default_rng(seed), (n,)) for seed in range(3)]
    assert not np.array_equal(draws[0], draws[1])
    for z in draws:
        assert abs(z.mean()) < 5 / math.sqrt(n)
        assert abs(z.var() - 1.0) < 5 * math.sqrt(2 / n)
        ordered = np.sort(z)
        cdf = np.array([statistics.NormalDist().cdf(v) for v in ordered[::1000]])
        at = np.arange(0, n, 1000)
        assert np.max(np.maximum(np.abs((at + 1) / n - cdf), np.abs(at / n - cdf))) < 1.95 / math.sqrt(n)
        for k in (1.0, 2.0, 3.0):
            share = statistics.NormalDist().cdf(-k)
            for tail in (np.mean(z > k), np.mean(z < -k)):
                assert abs(tail - share) < 5 * math.sqrt(share * (1 - share) / n)
        assert np.abs(z).max() < 4.33
        for lag in (1, 2, 4):
            assert abs(np.corrcoef(z[:-lag], z[lag:])[0, 1]) < 5 / math.sqrt(n)


def test_the_write_errors_are_the_normal_quantiles_of_each_words_top_16_bits() -> None:
    """`write_errors` against its definition, computed independently: device i's error is N(0, 1)'s quantile at
    (b + 1/2) / 65,536, b the top 16 bits of the generator's i-th 64-bit word (`statistics.NormalDist`), to
    float32 as the table holds it."""
    words = np.random.default_rng(11).bit_generator.random_raw(2000)
    want = [np.float32(statistics.NormalDist().inv_cdf(((int(w) >> 48) + 0.5) / 65536)) for w in words]
    got = write_errors(np.random.default_rng(11), (2000,))
    np.testing.assert_allclose(got, np.array(want, dtype=np.float64), rtol=0, atol=1e-6)
