"""The read-noise draws' Gaussian numbers: cheap standard normal samples for one draw per column current (and,
one 64-bit word per sample, for the write noise: `quantile_indices`, `scaled_quantiles`).

The simulator adds one independent Gaussian to every column current of every read (`schedule.execute`); at
25 x 25 arrays that is ~58,000 draws per sample and k = 6, more than the products cost. Each draw is 16 random
bits from a per-chunk SFC64 generator and one lookup in a table of the 65,536 equiprobable quantiles of N(0, 1)
(tests/test_read_noise_draw.py compares the draws with the exact sum of uniform terms they stand for).
"""

from __future__ import annotations

import functools
import math

import numpy as np

# Wichura's AS241 (statistics.NormalDist.inv_cdf's algorithm): the rational approximations of the normal quantile
# function, coefficients from the highest power down, for |p - 0.5| <= 0.425, then in r = sqrt(-log(min(p, 1 - p)))
# for r <= 5 (p >= 1.4e-11) and beyond.
_AS241 = (
    ((2.50908_09287_30122_6727e+3, 3.34305_75583_58812_8105e+4, 6.72657_70927_00870_0853e+4,
      4.59219_53931_54987_1457e+4, 1.37316_93765_50946_1125e+4, 1.97159_09503_06551_4427e+3,
      1.33141_66789_17843_7745e+2, 3.38713_28727_96366_6080e+0),
     (5.22649_52788_52854_5610e+3, 2.87290_85735_72194_2674e+4, 3.93078_95800_09271_0610e+4,
      2.12137_94301_58659_5867e+4, 5.39419_60214_24751_1077e+3, 6.87187_00749_20579_0830e+2,
      4.23133_30701_60091_1252e+1, 1.0)),
    ((7.74545_01427_83414_07640e-4, 2.27238_44989_26918_45833e-2, 2.41780_72517_74506_11770e-1,
      1.27045_82524_52368_38258e+0, 3.64784_83247_63204_60504e+0, 5.76949_72214_60691_40550e+0,
      4.63033_78461_56545_29590e+0, 1.42343_71107_49683_57734e+0),
     (1.05075_00716_44416_84324e-9, 5.47593_80849_95344_94600e-4, 1.51986_66563_61645_71966e-2,
      1.48103_97642_74800_74590e-1, 6.89767_33498_51000_04550e-1, 1.67638_48301_83803_84940e+0,
      2.05319_16266_37758_82187e+0, 1.0)),
    ((2.01033_43992_92288_13265e-7, 2.71155_55687_43487_57815e-5, 1.24266_09473_88078_43860e-3,
      2.65321_89526_57612_30930e-2, 2.96560_57182_85048_91230e-1, 1.78482_65399_17291_33580e+0,
      5.46378_49111_64114_36990e+0, 6.65790_46435_01103_77720e+0),
     (2.04426_31033_89939_78564e-15, 1.42151_17583_16445_88870e-7, 1.84631_83175_10054_68180e-5,
      7.86869_13114_56132_59100e-4, 1.48753_61290_85061_48525e-2, 1.36929_88092_27358_05310e-1,
      5.99832_20655_58879_37690e-1, 1.0)),
)


def _ratio(coefficients: tuple[tuple[float, ...], tuple[float, ...]], r: np.ndarray) -> np.ndarray:
    """num(r) / den(r), each polynomial by Horner's rule from its highest power, in float64."""
    num, den = (functools.reduce(lambda acc, c: acc * r + c, poly[1:], np.full_like(r, poly[0]))
                for poly in coefficients)
    return num / den


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal's quantile function at probabilities 0 < p < 1, float64: `statistics.NormalDist`'s
    `inv_cdf` (Wichura's AS241) over a whole array at once, in the same operations, so the same values to
    within float64 rounding (a test checks the read-noise table against it)."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    x = np.empty_like(p)
    central = np.abs(q) <= 0.425
    qc = q[central]
    x[central] = qc * _ratio(_AS241[0], 0.180625 - qc * qc)
    tail = ~central
    r = np.sqrt(-np.log(np.where(q[tail] <= 0.0, p[tail], 1.0 - p[tail])))
    near = r <= 5.0
    xt = np.empty_like(r)
    xt[near] = _ratio(_AS241[1], r[near] - 1.6)
    xt[~near] = _ratio(_AS241[2], r[~near] - 5.0)
    x[tail] = np.where(q[tail] < 0.0, -xt, xt)
    return x


@functools.cache
def _gaussian_table() -> np.ndarray:
    """The 65,536 equiprobable quantiles of N(0, 1), float32: made when noise is first drawn, not at import.
    Quantile 65,535 - i is minus quantile i (p and 1 - p are exact here), so only the lower half is computed."""
    half = normal_quantile((np.arange(1 << 15) + 0.5) / (1 << 16)).astype(np.float32)
    table = np.concatenate([half, -half[::-1]])
    table.flags.writeable = False
    return table


def gaussian(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 samples drawn as the 65,536 equiprobable quantiles of N(0, 1).

    16 raw random bits per sample and one lookup, about 1.6 ns a sample in the forward (0.5 the bits, 1.1 the
    lookup: benchmarks/bench_forward_steps.py); the tails stop at 4.3 sigma, which changes nothing for read
    noise that is a bounded sum of uniform terms anyway (tests/test_read_noise_draw.py compares the draw with
    that sum).
    """
    count = math.prod(shape)
    bits = rng.bit_generator.random_raw(-(-count // 4)).astype("<u8", copy=False).view("<u2")[:count]
    return np.take(_gaussian_table(), bits, mode="wrap").reshape(shape)


def quantile_indices(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` indices into the table of the 65,536 equiprobable quantiles of N(0, 1), int64: the top 16 bits of
    one 64-bit word of `rng` each, the quantiles `gaussian` and `counter_gaussian` pick. A word per sample, not
    16 bits, so that draws split anywhere (device by device, region by region, in parts) are the one draw's: the
    write noise (`programming.devices.write_errors`) looks them up in a table of its sigma times the quantiles
    (`scaled_quantiles`), in one pass or region by region in the simulator and device by device on the simulated
    board."""
    words = rng.bit_generator.random_raw(count)
    words >>= np.uint64(48)
    return words.view(np.int64)


def scaled_quantiles(scale: float) -> np.ndarray:
    """The 65,536 equiprobable quantiles of N(0, 1) (`gaussian`'s float32 table) widened to float64 and times
    `scale` (read only): looking a draw up here gives float64(z) * scale, the same product as multiplying the
    draw after looking it up, without a pass over the draws. Made once per scale, told apart by its bits (-0.0
    is not 0.0 here, and a NaN is itself)."""
    return _scaled_quantiles(np.float64(scale).tobytes())


@functools.lru_cache(maxsize=16)
def _scaled_quantiles(scale: bytes) -> np.ndarray:
    table = _gaussian_table().astype(np.float64)
    table *= np.frombuffer(scale, dtype=np.float64)[0]
    table.flags.writeable = False
    return table


def noise_generator(base: int, chunk: int) -> np.random.Generator:
    """The generator of one chunk's table-drawn read noise, seeded from the noise block's base and the chunk's
    index: SFC64, whose random bits cost less than those of numpy's default PCG64 (bench_forward_steps.py times
    both)."""
    return np.random.Generator(np.random.SFC64([base, chunk]))


_GOLDEN = np.uint64(0x9E37_79B9_7F4A_7C15)
_MIX = (np.uint64(0xBF58_476D_1CE4_E5B9), np.uint64(0x94D0_49BB_1331_11EB))


def splitmix64(key: int, counters: np.ndarray) -> np.ndarray:
    """SplitMix64's outputs number counter + 1 from state `key` (uint64 each): the generator's state after n
    steps is key + n * golden, so any output is found without the ones before it. That makes a draw a pure
    function of (key, counter), whatever else was drawn, in whatever order or chunks."""
    z = np.asarray(counters, dtype=np.uint64) + np.uint64(1)
    z *= _GOLDEN
    z += np.uint64(key & 0xFFFF_FFFF_FFFF_FFFF)
    for shift, factor in zip((30, 27), _MIX, strict=True):
        z ^= z >> np.uint64(shift)
        z *= factor
    z ^= z >> np.uint64(31)
    return z


def counter_gaussian(key: int, counters: np.ndarray) -> np.ndarray:
    """Standard normal float32 samples, one per counter: the top 16 bits of `splitmix64`'s output picking one of
    the 65,536 equiprobable quantiles of N(0, 1), as `gaussian` picks them. For the few currents the linear reads
    leave to the ADC (`schedule.linear_reads`): which ones those are depends on the samples, so their draws must
    not depend on how many came before (a chunk split across calls gets the same noise)."""
    bits = (splitmix64(key, counters) >> np.uint64(48)).astype(np.intp)
    return _gaussian_table()[bits]
