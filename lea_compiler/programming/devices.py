"""What one write does to a device, and what a read-back measures: the chip's programming model, simulated.

A board programs a device by write-verify: pulse until the read-back is within +-tolerance of the target or
the pulse budget is spent (the board file's `write` record, lea_compiler/schedule/records.py). The chip file's
`device.programming` (`ProgrammingModel`, docs/chip-format.md "Programming model") says how to simulate it:

- "gaussian" (the default, the seed paper's measured model): `write_noise_uS` is the error the board's own
  write-verify leaves, measured on the chip, so a write is one draw, g = max(target + N(0, write_noise_uS), 0),
  whatever the tolerance and pulse budget; it costs the pulses the cost model has always counted
  (`nominal_pulses`), each followed by a verify read-back.
- "pulse": the loop itself. The device starts at `start_uS` (default: reset to the lowest level, the reset
  being one pulse); then, until done: read back; within tolerance, done; pulse budget spent, stop (failed);
  else one pulse, g += sign(target - measured) * max(N(step_uS, step_sigma_uS), 0), g kept >= 0.
  `write_noise_uS` is not used: the pulse steps and the read noise make the error.

A read-back is the mean of `readback_reads` reads, each adding U(-r, r), r = `read_noise_uS`, independently per
device and read. Assumptions of both models: a read-back happens after the conductance has relaxed (no drift and
no relaxation after it); a pulse changes only the addressed device (no disturb); a pulse's step does not depend
on the conductance; read noise is independent per read. Every random number comes from the caller's
Generator, and the same numbers are drawn whatever the noise figures are (a zero spread draws and multiplies
by zero), so two device models compared with equally seeded Generators see the same draws.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from lea_compiler.chip import DeviceModel
from lea_compiler.chip.fields import GAUSSIAN
from lea_compiler.chip_limits import MAX_READBACK_READS
from lea_compiler.errors import UsageError
from lea_compiler.schedule.normal_draws import quantile_indices, scaled_quantiles


@dataclass(frozen=True, eq=False)
class Written:
    """What a write-verify of n devices left (one entry per device, in the order of the levels given).

    Attributes:
        conductance_uS: (n,) float64: what each device holds after the write (>= 0).
        measured_uS: (n,) float64: the last verify read-back (the mean of `readback_reads` reads).
        pulses: (n,) int64: programming pulses spent (a reset pulse included).
        verify_reads: (n,) int64: verify read-backs spent (each is `readback_reads` device reads).
        failed: (n,) bool: the last read-back is outside +-tolerance of the target.
    """

    conductance_uS: np.ndarray
    measured_uS: np.ndarray
    pulses: np.ndarray
    verify_reads: np.ndarray
    failed: np.ndarray


def nominal_pulses(level: np.ndarray) -> np.ndarray:
    """The pulses a write-verify to level index `level` costs: one reset pulse plus one per level step up from
    the lowest, level + 1 (int64, elementwise).

    The one definition of the count: the "gaussian" programming model charges it, and
    `Schedule.program_pulses` (the simulator's programming cost) sums it.
    """
    return np.asarray(level, dtype=np.int64) + 1


def total_nominal_pulses(level: np.ndarray, unwritten: np.ndarray | None = None) -> int:
    """`nominal_pulses` summed over the written devices of `level` (level >= 0; `unwritten`: the flat indices of
    the others, if the caller has them): the levels' sum plus their count, found on the levels as they are
    (int8 mostly), not an int64 copy of a million of them (`Schedule.program_pulses`, the cost model's)."""
    level = np.asarray(level).reshape(-1)
    if unwritten is None:
        unwritten = np.flatnonzero(level < 0)
    written = level.size - unwritten.size
    # int8 levels (|level| <= 128) of fewer than 2**24 devices sum exactly in int32, twice as fast as in int64
    total = np.int32 if level.dtype.itemsize == 1 and level.size < 2 ** 24 else np.int64
    return int(np.sum(level, dtype=total)) - int(np.sum(level[unwritten], dtype=np.int64)) + written  # + 1 each


def write_sigma_uS(device: DeviceModel, target_uS: np.ndarray) -> float | np.ndarray:
    """The standard deviation of the "gaussian" model's write error at each target conductance: the constant
    `write_noise_uS` (a float: one sigma for every device, `written_uS`'s fast path), or the chip's `write_noise_model`
    at the targets (an array of their shape). The one definition, for the simulator and the simulated board."""
    model = device.write_noise_model
    return device.write_noise_uS if model is None else model.sigma(target_uS, device.levels_uS)


def _reads(reads: object) -> int:
    if isinstance(reads, bool) or not isinstance(reads, numbers.Integral) or not 1 <= int(reads) <= MAX_READBACK_READS:
        raise UsageError(f"reads must be an integer from 1 to {MAX_READBACK_READS}, got {reads!r}")
    return int(reads)


def read_back(conductance_uS: np.ndarray, device: DeviceModel, rng: np.random.Generator,
              reads: int | None = None) -> np.ndarray:
    """What a read-back measures: the mean of `reads` reads of each device, each read adding U(-r, r).

    r is `device.read_noise_uS`, drawn independently per device and read, so the measured value's error has
    mean 0 and variance r^2 / (3 reads). A measurement is not clipped: noise may take it below 0.

    Args:
        conductance_uS: (n,) the devices' conductances (uS).
        device: The device model (its read noise; its `programming.readback_reads` when `reads` is None).
        rng: The source of the read noise; draws exactly reads x n uniform numbers.
        reads: Reads averaged per device, 1 to `MAX_READBACK_READS`; None: `device.programming.readback_reads`.

    Returns:
        (n,) float64 measured conductances (uS).

    Raises:
        UsageError: `reads` is not an integer in 1..`MAX_READBACK_READS`.
    """
    count = device.programming.readback_reads if reads is None else _reads(reads)
    g = np.asarray(conductance_uS, dtype=np.float64)
    if device.read_noise_model is not None:  # Gaussian, sigma at the conductance read (chip.variability)
        sigma = device.read_noise_model.sigma(g, device.levels_uS)
        return g + (rng.standard_normal(size=(count, *g.shape)) * sigma).mean(axis=0)
    r = device.read_noise_uS
    return g + rng.uniform(-r, r, size=(count, *g.shape)).mean(axis=0)


def _checked(level: np.ndarray, device: DeviceModel, tolerance_uS: float, max_pulses: int,
             start_uS: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The level indices as int64 and the start conductances as float64, or a UsageError saying what is wrong."""
    if not isinstance(device, DeviceModel):
        raise UsageError(f"device must be a DeviceModel, got {type(device).__name__}")
    if isinstance(tolerance_uS, bool) or not isinstance(tolerance_uS, numbers.Real) \
            or not math.isfinite(tolerance_uS) or tolerance_uS <= 0:
        raise UsageError(f"tolerance_uS must be a finite number above 0, got {tolerance_uS!r}")
    if isinstance(max_pulses, bool) or not isinstance(max_pulses, numbers.Integral) or max_pulses < 1:
        raise UsageError(f"max_pulses must be an integer of at least 1, got {max_pulses!r}")
    levels = np.asarray(level)
    if levels.ndim != 1 or not (np.issubdtype(levels.dtype, np.integer) or levels.size == 0):
        raise UsageError(f"level must be a 1-D array of level indices, got shape {levels.shape} of {levels.dtype}")
    count = len(device.levels_uS)
    if levels.size and (levels.min() < 0 or levels.max() >= count):
        bad = levels[(levels < 0) | (levels >= count)]
        raise UsageError(f"level index {int(bad[0])} is outside the device's levels (0 to {count - 1}); "
                         f"{bad.size} of {levels.size} are")
    if start_uS is None:
        return levels.astype(np.int64), None
    start = np.asarray(start_uS, dtype=np.float64)
    if start.shape != levels.shape:
        raise UsageError(f"start_uS has shape {start.shape}; it must match level's {levels.shape}")
    if not np.all(np.isfinite(start)) or np.any(start < 0):
        raise UsageError("start_uS must hold finite conductances of at least 0 uS")
    return levels.astype(np.int64), start.copy()


def write_devices(level: np.ndarray, device: DeviceModel, rng: np.random.Generator, *,
                  tolerance_uS: float, max_pulses: int, start_uS: np.ndarray | None = None) -> Written:
    """Write-verify every device to `device.levels_uS[level]`, as `device.programming` models it.

    "gaussian": g = max(target + N(0, write_noise_uS), 0), one draw per device; `tolerance_uS`, `max_pulses`
    and `start_uS` do not change g; pulses = `nominal_pulses(level)` (level + 1), each followed by a verify
    read-back (verify_reads = pulses, as `backends/cost.py` counts programming); measured =
    `read_back(g)`; failed = |measured - target| > tolerance_uS.

    "pulse": each device starts at `start_uS`, or, when None, at levels_uS[0] after a reset that counts as one
    pulse (a given `start_uS` is a device written before, rewritten without a reset: its count starts at 0).
    Then rounds over the devices still active: read back (verify_reads += 1); if |measured - target| <=
    tolerance_uS, done; if pulses == max_pulses, stop (failed); else one pulse, g += sign(target - measured)
    * max(N(step_uS, step_sigma_uS), 0), g kept >= 0, pulses += 1. `write_noise_uS` is not used. At most
    max_pulses + 1 rounds.

    Assumptions (docs/chip-format.md): read-backs after relaxation (no drift); no disturb of other devices;
    a step independent of the conductance; read noise independent per read.

    Args:
        level: (n,) integer level indices, each in 0..len(levels_uS) - 1.
        device: The device model: levels, noise figures and programming model.
        rng: The source of every random number (deterministic given its state).
        tolerance_uS: Half-width of the verify window around the target (finite, > 0).
        max_pulses: The pulse budget per device, a reset pulse included (>= 1).
        start_uS: (n,) the conductances the devices hold before the write (pulse model only), or None.

    Returns:
        The devices' conductances, last read-backs, pulse and read-back counts and failures.

    Raises:
        UsageError: a bad level, tolerance, pulse budget or start conductance (the message says which).
    """
    levels, start = _checked(level, device, tolerance_uS, max_pulses, start_uS)
    target = np.asarray(device.levels_uS, dtype=np.float64)[levels]
    if device.programming.model == GAUSSIAN:
        g = gaussian_write(target, rng, write_sigma_uS(device, target))
        measured = read_back(g, device, rng)
        pulses = nominal_pulses(levels)
        return Written(g, measured, pulses, pulses.copy(), np.abs(measured - target) > tolerance_uS)
    return _pulse_write(target, device, rng, float(tolerance_uS), int(max_pulses), start)


def gaussian_write(target_uS: np.ndarray, rng: np.random.Generator, sigma_uS: float | np.ndarray) -> np.ndarray:
    """The "gaussian" model's write of devices to `target_uS`: max(target + sigma_uS z, 0), z standard normal,
    one draw per device in C order; sigma_uS is one number or one per device (`write_sigma_uS`).

    z is `write_errors`': one of the 65,536 equiprobable quantiles of N(0, 1) per device, a word of `rng` each,
    so one call for many devices draws what one call per device, in order, draws.

    Raises:
        ValueError: a negative sigma (as `rng.normal` would).
    """
    check_write_sigma(sigma_uS)
    if np.ndim(sigma_uS) == 0:  # one sigma: looked up with the draw (`write_errors`' scale), the same products
        g = write_errors(rng, np.shape(target_uS), scale=float(sigma_uS))
    else:
        g = write_errors(rng, np.shape(target_uS))
        g *= sigma_uS
    g += target_uS  # in place: the same sums as target + noise, without another array of the devices' size
    return np.maximum(g, 0.0, out=g)


def write_errors(rng: np.random.Generator, shape: tuple[int, ...], out: np.ndarray | None = None,
                 scale: float = 1.0) -> np.ndarray:
    """The write noise's standard normals times `scale` (one number; 1: the standard normals themselves), float64
    of `shape` (in `out` if given): one 64-bit word of `rng` per device, whose top 16 bits pick one of the 65,536
    equiprobable quantiles of N(0, 1) (`schedule.normal_draws.quantile_indices`, the read noise's table). A word
    per device, so that the draws of any split of the devices (region by region, in parts, device by device) are
    the one draw's. The one definition of the write draw, for the simulator and the simulated board.

    The draw is looked up in a table of the quantiles times `scale` (`normal_draws.scaled_quantiles`): each value
    is float64(z) * scale, as scaling the standard normals after the draw gives it, with no pass over the devices
    to widen and scale them.

    Why not numpy's normal: a write draws once per device, 1.43 million at 25 x 25 arrays and k = 6, and numpy's
    ziggurat took 15.5 ms of the 26 that programming them took (docs/simulator.md); the table costs a third of
    that (benchmarks/bench_write_draw.py). Its tails stop at 4.3 standard deviations (one device in 60,000
    would have gone further) and its moments and quantiles are N(0, 1)'s within the tolerances
    tests/test_programming_devices.py checks; the accuracy over seeds is the same as with numpy's draw
    (benchmarks/bench_sim_fidelity.py --control-noise write, docs/simulator.md)."""
    table = scaled_quantiles(float(scale))
    index = quantile_indices(rng, math.prod(shape))
    if out is None:
        return table.take(index).reshape(shape)
    if out.flags.c_contiguous and out.dtype == np.float64:  # straight into out ("wrap": the indices are in
        np.take(table, index, out=out.reshape(-1), mode="wrap")  # range, and "raise" would buffer the output)
    else:
        out[...] = table.take(index).reshape(shape)
    return out


def check_write_sigma(sigma_uS: float | np.ndarray) -> None:
    """Refuse a negative write-noise sigma as `rng.normal` refuses it (ValueError "scale < 0"): -0.0 is refused,
    NaN passes (numpy's own test)."""
    sigma = np.asarray(sigma_uS)
    if np.any(np.signbit(sigma) & ~np.isnan(sigma)):
        raise ValueError("scale < 0")


def _pulse_write(target: np.ndarray, device: DeviceModel, rng: np.random.Generator, tolerance_uS: float,
                 max_pulses: int, start: np.ndarray | None) -> Written:
    """The "pulse" model's write-verify loop (see `write_devices`), one round per pulse over the active devices."""
    model = device.programming
    assert model.step_uS is not None  # (ProgrammingModel requires it for "pulse")
    n = target.size
    if start is None:
        g = np.full(n, device.levels_uS[0], dtype=np.float64)
        pulses = np.ones(n, dtype=np.int64)
    else:
        g, pulses = start, np.zeros(n, dtype=np.int64)
    measured = np.zeros(n, dtype=np.float64)
    verify_reads = np.zeros(n, dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    active = np.arange(n)
    while active.size:
        seen = read_back(g[active], device, rng)
        measured[active] = seen
        verify_reads[active] += 1
        done = np.abs(seen - target[active]) <= tolerance_uS
        spent = ~done & (pulses[active] >= max_pulses)
        failed[active[spent]] = True
        go = ~(done | spent)
        active, seen = active[go], seen[go]
        step = np.maximum(rng.normal(model.step_uS, model.step_sigma_uS, size=active.size), 0.0)
        g[active] = np.maximum(g[active] + np.sign(target[active] - seen) * step, 0.0)
        pulses[active] += 1
    return Written(g, measured, pulses, verify_reads, failed)
