"""Linear reads (lea_compiler/schedule/linear_reads.py): where a noisy read's ADC rounding is dither, a layer's
digitised currents are summed as one Gaussian per output column. Checked against the ADC read current by
current (`CrossbarExecutor(linear=False)`, the board's arithmetic) in distribution, by hand on a 2 x 2 layer,
and the draws of the currents that still go through the ADC against a pure-Python SplitMix64."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler.backends.sim import CrossbarLayer, EventCounts, NoiseSpan
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.schedule import execute
from lea_compiler.schedule.linear_reads import SIGMA_MIN, TAIL, BandStack, RowBand, linear_reads
from lea_compiler.schedule.normal_draws import _gaussian_table, counter_gaussian, noise_generator, splitmix64
from lea_compiler.schedule.plan import schedule_of
from tests.helpers import make_model
from tests.test_reads import R_UNIT, STEP_UA, _chip, tiny

F = np.float32
MASK = (1 << 64) - 1


def _splitmix64(state: int, count: int) -> list[int]:
    """The reference generator (Steele, Lea and Flood 2014), in Python integers."""
    out = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


# ------------------------------------------------------------------ the counter-based draw


@pytest.mark.parametrize("key", [0, 1, 0x0123_4567_89AB_CDEF, MASK])
def test_splitmix64_gives_the_reference_generators_outputs_by_counter(key) -> None:
    want = _splitmix64(key, 40)
    assert splitmix64(key, np.arange(40)).tolist() == want
    assert splitmix64(key, np.array([39, 3, 17])).tolist() == [want[39], want[3], want[17]]  # any order
    if key == 0:
        assert want[0] == 0xE220A8397B1DCDAF  # the published first output from seed 0


def test_counter_gaussian_picks_the_table_uniformly() -> None:
    """2^20 counters: the top 8 bits of the 16 that pick a quantile fall evenly in 256 bins (chi-square with
    255 degrees of freedom under 6 standard deviations of its mean), and the draws have mean 0 and variance 1."""
    counters = np.arange(1 << 20, dtype=np.uint64) * np.uint64(7919) + np.uint64(12345)
    z = counter_gaussian(987654321, counters)
    bins = np.bincount((splitmix64(987654321, counters) >> np.uint64(56)).astype(np.intp), minlength=256)
    expected = len(counters) / 256
    chi2 = float(np.sum((bins - expected) ** 2 / expected))
    assert chi2 < 255 + 6 * math.sqrt(2 * 255), chi2
    assert abs(float(z.mean())) < 5 / math.sqrt(len(z))
    assert float(z.var()) == pytest.approx(1.0, abs=0.01)
    assert set(np.unique(z)) <= set(_gaussian_table().tolist())


# ------------------------------------------------------------------ by hand


def _band(g: list[list[float]], weights: list[list[float]], inv_step: list[float], reads: int = 1) -> RowBand:
    return RowBand(0, len(g), np.asarray(g, F), np.asarray(inv_step, F), np.asarray(weights, F), reads, None)


def test_the_linear_mean_and_variance_by_hand() -> None:
    """One band of 2 rows, k = 1, 2 columns: g (steps per volt) = G+ | G-, ADC steps 2 and 4 uA (weights
    +-step), read N = 2 times, uniform read noise r = 30 uS.

    v = [0.5, -0.25] V: currents G+ [0.5*10 - 0.25*4, 0.5*2 - 0.25*8] = [4, -1], G- [0.5*6 - 0.25*2,
    0.5*0 - 0.25*0] = [2.5, 0] steps; mean = [2 (4 - 2.5), 4 (-1 - 0)] = [3, -4] uA. The noise's sigma is
    r / sqrt(3) |v| = 30 / sqrt(3) * sqrt(0.3125) = 9.682 uA, in steps sigma / step; a column's variance is
    sum over its two currents of w^2 ((sigma / step)^2 + 1 / 12) / N = sum (sigma^2 + step^2 / 12) / 2."""
    band = _band([[10, 2, 6, 0], [4, 8, 2, 0]], [[2, 4], [-2, -4]], [0.5, 0.25, 0.5, 0.25], reads=2)
    linear = linear_reads([band], rows=2, cols=2, alpha=1, read_noise_uS=30.0, adc_bits=12)
    assert linear is not None
    v = np.array([[0.5, -0.25]], F)
    pairs, power = linear.split(v)
    assert pairs.tolist() == [[True]] and power[0, 0] == pytest.approx(0.3125)
    mean = linear.read(v, pairs, power, np.zeros((1, 2), F))
    np.testing.assert_allclose(mean[0], [3.0, -4.0], rtol=1e-6)
    sigma2 = 30.0 ** 2 / 3 * 0.3125
    want = [math.sqrt(2 * (sigma2 + step ** 2 / 12) / 2) for step in (2.0, 4.0)]
    np.testing.assert_allclose(linear.read(v, pairs, power, np.ones((1, 2), F))[0] - mean[0], want, rtol=1e-5)


def test_which_pairs_read_linearly_by_hand() -> None:
    """The band of the test above (column norms |g|_2 = sqrt(116), sqrt(68), sqrt(40), 0; 1/step from 0.25 to
    0.5), uniform noise r, a 12-bit ADC (saturation at 2047.5 steps):

    - an all-zero vector reads linearly (exactly 0, no variance);
    - v = [0.5, -0.25], r = 30: sigma 9.68 uA is 2.42 to 4.84 steps; the currents' bound |v|_2 sqrt(116) =
      6.02 steps, 6.02 + 6 * 4.84 < 2047.5: linear;
    - r = 3: 0.24 to 0.48 steps, below one step: through the ADC;
    - r = 3000: 242 to 484 steps, 6.02 + 6 * 484 beyond the saturation: through the ADC."""
    band = _band([[10, 2, 6, 0], [4, 8, 2, 0]], [[2, 4], [-2, -4]], [0.5, 0.25, 0.5, 0.25])
    v = np.array([[0, 0], [0.5, -0.25]], F)
    for r, want in ((30.0, [True, True]), (3.0, [True, False]), (3000.0, [True, False])):
        linear = linear_reads([band], rows=2, cols=2, alpha=1, read_noise_uS=r, adc_bits=12)
        assert linear is not None
        assert linear.split(v)[0][:, 0].tolist() == want, r
    bound = math.sqrt(0.3125) * math.sqrt(116)
    assert 30 / math.sqrt(3) * math.sqrt(0.3125) * 0.25 >= SIGMA_MIN
    assert bound + TAIL * 30 / math.sqrt(3) * math.sqrt(0.3125) * 0.5 < 2047.5
    assert bound + TAIL * 3000 / math.sqrt(3) * math.sqrt(0.3125) * 0.5 > 2047.5
    zero = linear_reads([band], rows=2, cols=2, alpha=1, read_noise_uS=30.0, adc_bits=12)
    assert zero is not None
    pairs, power = zero.split(v[:1])
    assert zero.read(v[:1], pairs, power, np.ones((1, 2), F)).tolist() == [[0.0, 0.0]]


def test_band_terms_of_runs_of_bands_are_each_bands_own() -> None:
    """`linear_reads` works on runs of bands of one height at once (`BandStack`): its E, column norms and a
    conductance-dependent model's per-row variances and their ranges against each band's own, computed band by
    band in float64 here, for bands of heights 2, 2, 3, 1, 1 (four runs) with a row in none, a column no combine
    uses (band 1's column 1, its conductances the largest: the norms must leave it out) and a band that converts
    none, each band read its own number of times; given the executor's stack or stacking the bands itself, the
    same."""
    rng = np.random.default_rng(4)
    alpha, cols = 2, 3
    spans = [(0, 2), (2, 4), (5, 8), (8, 9), (9, 10)]
    bands = []
    for b, (r0, r1) in enumerate(spans):
        weights = rng.uniform(-2, 2, (2 * alpha, cols)).astype(F)
        weights[:, 1] = 0.0 if b == 1 else weights[:, 1]
        weights *= F(b != 3)  # band 3 converts nothing
        g = rng.uniform(0, 5, (r1 - r0, 2 * alpha * cols)).astype(F)
        g[:, 1::cols] *= F(10 if b == 1 else 1)  # column 1 of every copy and polarity
        bands.append(RowBand(r0, r1, g, rng.uniform(0.1, 1, 2 * alpha * cols).astype(F), weights, 1 + b, None,
                             rng.uniform(0, 3, (r1 - r0, 2 * alpha * cols)).astype(F)))
    linear = linear_reads(bands, rows=10, cols=cols, alpha=alpha, read_noise_uS=0.0, adc_bits=8)
    assert linear is not None and linear.noise_per_row is not None and linear.variance_rows is not None
    assert not linear.effective[4].any() and not linear.noise_per_row[4].any()
    for b, band in enumerate(bands):
        g = band.g.astype(np.float64).reshape(-1, 2 * alpha, cols)
        w = band.weights.astype(np.float64)
        scale = np.einsum("rac,ac->rc", g, np.abs(w))  # float32 sums of 2 alpha terms: to 1e-6 of their sizes
        assert np.all(np.abs(linear.effective[band.r0:band.r1] - np.einsum("rac,ac->rc", g, w)) <= 1e-6 * scale)
        used = (w != 0).reshape(-1)
        norm = math.sqrt(np.max(np.sum(band.g.astype(np.float64) ** 2, axis=0)[used])) if used.any() else 0.0
        assert linear.norm2[b] == pytest.approx(norm, rel=1e-6)
        variance = band.variance.astype(np.float64)
        np.testing.assert_allclose(linear.noise_per_row[band.r0:band.r1],
                                   np.einsum("rac,ac->rc", variance.reshape(g.shape), w ** 2 / band.reads),
                                   rtol=1e-6)
        want = np.stack([variance[:, used].min(axis=1), variance[:, used].max(axis=1)], axis=1) if used.any() \
            else np.zeros((band.r1 - band.r0, 2))
        np.testing.assert_allclose(linear.variance_rows[band.r0:band.r1], want, rtol=1e-6)
        assert linear.converted[b].tolist() == used.tolist()
    again = linear_reads(bands, rows=10, cols=cols, alpha=alpha, read_noise_uS=0.0, adc_bits=8,
                         stack=BandStack.of(bands))
    assert again is not None
    for name in ("effective", "norm2", "noise_per_row", "variance_rows", "rounding", "inv_step_range"):
        assert getattr(again, name).tobytes() == getattr(linear, name).tobytes(), name


def test_bands_that_share_rows_read_through_the_adc() -> None:
    a = _band([[1, 1], [1, 1]], [[1], [-1]], [1, 1])
    b = dataclasses.replace(a, r0=1, r1=3)
    assert linear_reads([a, b], rows=3, cols=1, alpha=1, read_noise_uS=30.0, adc_bits=12) is None


def test_rows_no_band_reads_reach_no_output() -> None:
    """Bands over rows 0-1 and 3-4 of 5: row 2 is in none, so even a NaN there changes nothing (E's row 2 is
    zero, and 0 x NaN would be NaN)."""
    a = _band([[10, 2, 6, 0], [4, 8, 2, 0]], [[2, 4], [-2, -4]], [0.5, 0.25, 0.5, 0.25])
    b = dataclasses.replace(a, r0=3, r1=5)
    linear = linear_reads([a, b], rows=5, cols=2, alpha=1, read_noise_uS=30.0, adc_bits=12)
    assert linear is not None
    v = np.array([[0.5, -0.25, np.nan, 0.5, -0.25]], F)
    pairs, power = linear.split(v)
    assert pairs.all()
    out = linear.read(v, pairs, power, np.zeros((1, 2), F))
    np.testing.assert_allclose(out[0], [6.0, -8.0], rtol=1e-6)  # twice the one band's [3, -4]


def test_pairs_left_to_the_adc_draw_their_noise_by_counter_by_hand(tmp_path) -> None:
    """`tiny` (a 4-bit ADC of 12.5 uA steps, saturating at 7) with R_UNIT read noise: sigma is one step for
    x = [1, -1] and 6 sigma reach the saturation, so every pair goes through the ADC. Its noise is
    `counter_gaussian` of the chunk's key (the first 64 bits of the chunk's generator) and each current's place
    (band, read, row in the chunk, column): reproduced here for two vectors read 3 times."""
    program = tiny(tmp_path, 3)
    layer = CrossbarLayer.of(program, "mm", _chip(R_UNIT), np.random.default_rng(0))
    x = np.array([[1, -1], [-1, 1]], F)
    got = layer.forward(x, np.random.default_rng(0), EventCounts(), noise=NoiseSpan(77, 2, 0))
    key = int(noise_generator(77, 0).bit_generator.random_raw())
    clean = np.array([[3, -3, 0, 3], [-3, 3, 0, -3]], np.float64)  # G+ col 0, col 1, G- col 0, col 1
    place = np.arange(2)[:, None] * 4 + np.arange(4)
    reads = [np.clip(np.rint(clean + counter_gaussian(key, (r * 2 * 4 + place).astype(np.uint64))), -7, 7)
             for r in range(3)]
    mean = np.mean(reads, axis=0) * STEP_UA
    np.testing.assert_allclose(got, (mean[:, :2] - mean[:, 2:]) / 37.5, rtol=1e-5)


# ------------------------------------------------------------------ against the ADC, in distribution


def _layer(tmp_path: Path, reads: int, read_noise_uS: float, adc_bits: int) -> CrossbarLayer:
    """A 60 x 12 MatMul on 25 x 25 arrays at k = 2 (3 row bands; the bias-free layer's currents of 2 copies x 2
    polarities x 12 columns per band), write noise, 2% stuck devices, N reads."""
    w = np.random.default_rng(2).normal(size=(60, 12)).astype(F)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 60])}, ["y"],
                       {"W": w})
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    device = DeviceModel(levels_uS=(20.0, 60.0, 100.0, 140.0), write_noise_uS=3.0, read_noise_uS=read_noise_uS)
    chip = Chip(arrays=tuple(Array(i, 25, 25) for i in range(16)), device=device,
                periphery=Periphery(v_read_V=0.2, dac_bits=8, adc_bits=adc_bits, adcs_per_array=1))
    program = compile_model(path, chip, CompileOptions(k=2, reads=reads, placer="greedy")).program
    return CrossbarLayer.of(program, "mm", chip, np.random.default_rng(1))


def _voltages(executor: execute.CrossbarExecutor, x: np.ndarray) -> np.ndarray:
    """The DAC's voltages for x with each vector's own full scale (the layers here have no bias row)."""
    dac = (1 << (executor.dac_bits - 1)) - 1
    return (np.round(x / np.abs(x).max(axis=1, keepdims=True) * dac) * F(executor.v_read / dac)).astype(F)


def _compare(layer: CrossbarLayer, x: np.ndarray, draws: int) -> None:
    """Each of x's vectors read `draws` times through the ADC current by current and linearly: per output, the
    same mean (within 5 standard errors of the difference) and standard deviation (within 8%), and pooled
    over the outputs the same tails (P(|z| > 1, 2, 3) within 5, 10 and 30%)."""
    repeated = np.repeat(x, draws, axis=0)
    out = {}
    for linear in (False, True):
        layer.executor.linear = linear
        out[linear] = layer.forward(repeated, np.random.default_rng(3), EventCounts()).reshape(len(x), draws, -1)
    layer.executor.linear = True
    ref, lin = out[False], out[True]
    sd_ref, sd_lin = ref.std(axis=1), lin.std(axis=1)
    error = np.abs(lin.mean(axis=1) - ref.mean(axis=1)) / np.sqrt((sd_ref ** 2 + sd_lin ** 2) / draws)
    assert error.max() < 5, error.max()
    np.testing.assert_allclose(sd_lin, sd_ref, rtol=0.08)
    z_ref = (ref - ref.mean(axis=1, keepdims=True)) / sd_ref[:, None]
    z_lin = (lin - lin.mean(axis=1, keepdims=True)) / sd_lin[:, None]
    for t, tolerance in ((1, 0.05), (2, 0.1), (3, 0.3)):
        assert np.mean(np.abs(z_lin) > t) == pytest.approx(np.mean(np.abs(z_ref) > t), rel=tolerance), t


@pytest.mark.parametrize("reads", [1, 3])
def test_linear_reads_have_the_adcs_distribution(tmp_path, reads) -> None:
    layer = _layer(tmp_path, reads, read_noise_uS=8.0, adc_bits=10)
    x = np.random.default_rng(4).uniform(-1, 1, (4, 60)).astype(F)
    executor = layer.executor
    linear = executor._linear_reads(executor._bands())
    assert linear is not None
    assert linear.split(_voltages(executor, x))[0].all()  # every pair is read linearly
    _compare(layer, x, 3000)


def test_a_conductance_dependent_models_linear_reads_have_the_adcs_distribution(tmp_path) -> None:
    """Device sigmas proportional to the conductance (0.08 G): current j's variance is sum_i V_i^2 s_ij^2."""
    layer = _layer(tmp_path, 2, read_noise_uS=0.0, adc_bits=10)
    old = layer.executor
    executor = execute.CrossbarExecutor(old.plan, old.conductances, dac_bits=old.dac_bits, adc_bits=old.adc_bits,
                                        read_sigma_uS=[0.08 * np.asarray(g) for g in old.conductances])
    layer.executor = executor
    x = np.random.default_rng(5).uniform(-1, 1, (4, 60)).astype(F)
    linear = executor._linear_reads(executor._bands())
    assert linear is not None and linear.noise_per_row is not None
    _compare(layer, x, 3000)


def test_pairs_near_the_saturation_and_small_inputs_keep_the_adcs_distribution(tmp_path) -> None:
    """A coarse 7-bit ADC and 20 uS of read noise: some (vector, band) pairs may reach the saturation (all of
    an all-full-scale vector's), and a vector with a single small input in a band has less than a step of
    noise there; those go through the ADC, the rest linearly, and the outputs keep the distribution."""
    layer = _layer(tmp_path, 1, read_noise_uS=20.0, adc_bits=7)
    x = np.random.default_rng(6).uniform(-1, 1, (6, 60)).astype(F)
    x[4, :30] = 0.0
    x[4, 10] = 0.05
    x[5] = np.sign(x[5])  # every input at full scale
    executor = layer.executor
    linear = executor._linear_reads(executor._bands())
    assert linear is not None
    pairs = linear.split(_voltages(executor, x))[0]
    assert pairs.any() and not pairs.all(), pairs
    _compare(layer, x, 3000)


@pytest.mark.parametrize("factor", [0.35, 0.15])
def test_adc_ranges_narrower_than_the_bound_are_checked_on_the_currents(tmp_path, factor) -> None:
    """ADC ranges of 0.35 and 0.15 times the worst case (a calibration narrows them so): the Cauchy-Schwarz
    bound reaches the saturation for every pair, so each pair's currents are computed and tested; at 0.35
    some stay 6 sigma inside (linear) and some do not (the ADC), at 0.15 the clean currents themselves clip
    (all through the ADC). The outputs keep the ADC path's distribution either way."""
    layer = _layer(tmp_path, 1, read_noise_uS=8.0, adc_bits=10)
    executor = layer.executor
    executor.full_scale = [fs * factor for fs in executor.full_scale]
    x = np.random.default_rng(6).uniform(-1, 1, (6, 60)).astype(F)
    linear = executor._linear_reads(executor._bands())
    assert linear is not None
    v = _voltages(executor, x)
    power = linear._band_sums(np.square(v)).astype(np.float64)
    bound = np.sqrt(power) * linear.norm2 + TAIL * np.sqrt(linear.third * power) * linear.inv_step_range[:, 1]
    assert np.all(bound >= linear.adc_max + 0.5)  # the bound admits no pair
    pairs = linear.split(v)[0]
    assert (pairs.any() and not pairs.all()) if factor == 0.35 else not pairs.any(), pairs
    _compare(layer, x, 3000)


def test_uneven_read_counts_read_linearly_with_each_columns_own_count(tmp_path) -> None:
    """G+ regions read 3 times and G- regions once (a board file may say so): each current's noise and rounding
    variance is divided by its own count."""
    layer = _layer(tmp_path, 3, read_noise_uS=8.0, adc_bits=10)
    old = layer.executor
    reads = tuple((dataclasses.replace(read, reads=3 if read.polarity == "pos" else 1), convert)
                  for read, convert in old.plan.reads)
    plan = dataclasses.replace(old.plan, reads=reads)
    layer.executor = execute.CrossbarExecutor(plan, old.conductances, dac_bits=old.dac_bits, adc_bits=old.adc_bits,
                                              read_noise_uS=8.0)
    bands = layer.executor._bands()
    assert all(band.counts is not None for band in bands)
    x = np.random.default_rng(9).uniform(-1, 1, (4, 60)).astype(F)
    linear = layer.executor._linear_reads(bands)
    assert linear is not None and linear.split(_voltages(layer.executor, x))[0].all()
    _compare(layer, x, 3000)


def test_one_step_of_noise_keeps_the_rounding_variance(tmp_path) -> None:
    """2 uS of read noise: sigma is 1.0 to 1.5 ADC steps, where the rounding's step^2 / 12 is 2-4% of a
    current's variance. Pooled over the outputs, the linear reads' standard deviation is the ADC path's to
    within 1% (without the rounding term it would be about 2.3% low)."""
    layer = _layer(tmp_path, 1, read_noise_uS=2.0, adc_bits=10)
    x = np.random.default_rng(10).uniform(-1, 1, (2, 60)).astype(F)
    executor = layer.executor
    linear = executor._linear_reads(executor._bands())
    assert linear is not None
    pairs, power = linear.split(_voltages(executor, x))
    assert pairs.all()
    sigma = np.sqrt(linear.third * power)
    assert sigma.min() * linear.inv_step_range[:, 0].min() < 1.5
    repeated = np.repeat(x, 20000, axis=0)
    sd = {}
    for flag in (False, True):
        executor.linear = flag
        sd[flag] = layer.forward(repeated, np.random.default_rng(4), EventCounts()).reshape(2, 20000, -1).std(axis=1)
    assert float(np.mean(sd[True] / sd[False])) == pytest.approx(1.0, abs=0.01)


def test_a_calibrated_layer_reads_linearly(tmp_path) -> None:
    """Calibration narrows the ADC ranges to 1.25 times the largest current on its data, where the bound fails
    for most pairs: the computed currents admit them."""
    w = np.random.default_rng(2).normal(size=(60, 12)).astype(F)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"x": (F, ["N", 60])}, ["y"],
                       {"W": w})
    onnx.save(model, tmp_path / "m.onnx")
    x = np.random.default_rng(11).uniform(-1, 1, (200, 60)).astype(F)
    np.savez(tmp_path / "calib.npz", x=x, y=np.zeros(len(x), np.int64))
    device = DeviceModel(levels_uS=(20.0, 60.0, 100.0, 140.0), write_noise_uS=3.0, read_noise_uS=8.0)
    chip = Chip(arrays=tuple(Array(i, 25, 25) for i in range(16)), device=device,
                periphery=Periphery(v_read_V=0.2, dac_bits=8, adc_bits=10, adcs_per_array=1))
    program = compile_model(tmp_path / "m.onnx", chip, CompileOptions(k=2, placer="greedy"),
                            calibrate_on=tmp_path / "calib.npz").program
    layer = CrossbarLayer.of(program, "mm", chip, np.random.default_rng(1))
    executor = layer.executor
    assert executor.x_fs is not None
    linear = executor._linear_reads(executor._bands())
    assert linear is not None
    dac = (1 << (executor.dac_bits - 1)) - 1
    v = (np.round(np.clip(x / executor.x_fs, -1, 1) * dac) * F(executor.v_read / dac)).astype(F)
    power = linear._band_sums(np.square(v)).astype(np.float64)
    bound = np.sqrt(power) * linear.norm2 + TAIL * np.sqrt(linear.third * power) * linear.inv_step_range[:, 1]
    assert np.mean(bound < linear.adc_max + 0.5) < 0.5
    assert np.mean(linear.split(v)[0]) > 0.9
    _compare(layer, x[:4], 3000)


def test_a_noise_block_split_across_calls_draws_the_same_for_pairs_left_to_the_adc(tmp_path) -> None:
    """Whether a pair goes through the ADC depends on its vector; its draws depend only on its place in the
    chunk, so a block run in two calls (memory chunks) gets the noise it gets in one, and threads change
    nothing."""
    layer = _layer(tmp_path, 2, read_noise_uS=20.0, adc_bits=7)
    x = np.random.default_rng(7).uniform(-1, 1, (3000, 60)).astype(F)
    x[::3] = np.sign(x[::3])  # every pair of these goes through the ADC
    span = NoiseSpan(5, len(x), 0)
    whole = layer.forward(x, np.random.default_rng(0), EventCounts(), noise=span)
    parts = [layer.forward(x[a:b], np.random.default_rng(0), EventCounts(), noise=NoiseSpan(5, len(x), a))
             for a, b in ((0, 1234), (1234, 3000))]
    threads = layer.forward(x, np.random.default_rng(0), EventCounts(), 2, noise=span)
    assert np.array_equal(whole, threads)
    differ = np.abs(whole - np.concatenate(parts))
    assert np.mean(differ > 1e-5 * np.abs(whole).max()) < 1e-3  # BLAS may round products of other shapes apart
    other = layer.forward(x, np.random.default_rng(0), EventCounts(), noise=NoiseSpan(6, len(x), 0))
    assert np.mean(np.abs(whole - other) > 1e-5 * np.abs(whole).max()) > 0.99


def test_linear_reads_draw_once_per_output_not_per_current(tmp_path, monkeypatch) -> None:
    """The linear reads do one product of the layer's shape and draw one Gaussian per output column, where the
    ADC path draws one per current of every row band and read (here 3 bands of 2 copies x 2 polarities x 12
    columns): counted at the table draw both make."""
    layer = _layer(tmp_path, 1, read_noise_uS=8.0, adc_bits=10)
    calls: list[tuple[int, ...]] = []
    original = execute.gaussian
    monkeypatch.setattr(execute, "gaussian", lambda rng, shape: calls.append(shape) or original(rng, shape))
    x = np.random.default_rng(8).uniform(-1, 1, (200, 60)).astype(F)
    layer.forward(x, np.random.default_rng(0), EventCounts())
    assert calls == [(200, 12)]
    calls.clear()
    layer.executor.linear = False
    layer.forward(x, np.random.default_rng(0), EventCounts())
    assert calls == [(200, 48)] * 3


def test_a_grouped_layer_reads_through_the_adc(tmp_path) -> None:
    from tests.test_grouping import _program

    program = _program(tmp_path, 6, 3, CompileOptions(k=2, block_rows=7, block_cols=3, placer="greedy"))
    executor = CrossbarLayer.of(program, "dw", program.chip, np.random.default_rng(0)).executor
    assert executor.groups > 1 and executor._linear_reads(executor._bands()) is None
    assert schedule_of(program).layers["dw"].start.groups == executor.groups
