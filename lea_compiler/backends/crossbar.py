"""The simulated chip's crossbar layers: each layer's devices as the simulated chip leaves them once programmed
(write noise, stuck devices, drift, an as-programmed Program's recorded conductances), and the layer's records
run on them (`schedule.execute.CrossbarExecutor`). `backends.sim` runs the graph with these layers.

Devices. A healthy device programmed to level l reads l + N(0, sigma_w)
(`device.write_noise_uS`, drawn once: programming happens once). An as-programmed Program (`leac program`,
lea_compiler/programming) holds what its devices were left with: they read that, with read noise only. A device
that is stuck on the simulated chip reads its stuck conductance whatever was
programmed. A device the Program skipped (stuck when compiled) that is
healthy on the simulated chip (another `--chip`) rests at the lowest level.
Every read adds uniform noise U(-r, r) per device (`device.read_noise_uS`); a region the schedule reads N
times (`leac compile --reads N`) draws it afresh for each read (`schedule.execute` averages the N digitised
currents).
The column current is I_j = sum_i V_i G_ij, so the read noise reaches the
current as sum_i V_i n_ij: by default it is drawn as a Gaussian with exactly
that variance, r^2/3 sum_i V_i^2 (one draw per sample and column instead of
one per device, from a 65,536-quantile table of N(0, 1); `exact_read_noise=True`
draws every device's uniform noise).
The chip's optional conductance-dependent models (`lea_compiler.chip.variability`, docs/chip-format.md) replace
the constants: a `write_noise_model` gives the write error's sigma per target (`programming.devices.write_sigma_uS`,
the one definition), a `read_noise_model` each device's Gaussian read-noise sigma at its conductance
(`CrossbarExecutor`'s `read_sigma_uS`), and `drift` multiplies every programmed healthy device, an as-programmed
Program's too, by ((t + t0) / t0)^(-nu) at `after` = t seconds after programming (`CrossbarLayer._drifted`).
`ideal=True` turns defects and noise off: every device reads its target, and the stuck-device compensation
is left out. A `joint` layer's copies differ from each other and from the target by
design (passes/encode.py), so with `ideal` each of its devices reads the
level the Program programs, and a device it skipped reads the stuck
conductance of the chip compiled for, which the other copies were encoded
around: the weights the Program represents (`program.represented_matrix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lea_compiler.backends.board.writer import DEFAULT_MAX_PULSES, default_tolerance_uS
from lea_compiler.backends.cost import (
    EventCounts,
    LayerCost,
    layer_cost,
    read_energy_pJ,
)
from lea_compiler.chip import PULSE, Chip, Periphery
from lea_compiler.geometry import region_starts
from lea_compiler.interpreter import Array
from lea_compiler.irdrop import read_maps
from lea_compiler.program import Program
from lea_compiler.programming.devices import (
    check_write_sigma,
    gaussian_write,
    write_devices,
    write_errors,
    write_sigma_uS,
)
from lea_compiler.schedule.conductances import byte_table, pair_gathered
from lea_compiler.schedule.execute import CrossbarExecutor, NoiseSpan
from lea_compiler.schedule.lower import region_window
from lea_compiler.schedule.plan import LayerPlan, Schedule, schedule_of
from lea_compiler.schedule.records import Read
from lea_compiler.schedule.regions import Regions


class CrossbarLayer:
    """One crossbar layer of a schedule on the simulated chip: its devices' conductances, and its forward pass
    (`lea_compiler.schedule.execute`, which the board's records define)."""

    def __init__(
        self,
        plan: LayerPlan,
        schedule: Schedule,
        chip: Chip,
        rng: np.random.Generator,
        *,
        ideal: bool,
        exact_read_noise: bool,
        write: tuple[float, int] | None = None,
        after_s: float = 0.0,
    ) -> None:
        self.plan = plan
        self.chip = chip
        self.ideal = ideal
        device = chip.device
        read_model = None if ideal else device.read_noise_model  # it replaces the uniform read noise
        self.read_noise = 0.0 if ideal or read_model is not None else device.read_noise_uS
        self.write = write or (default_tolerance_uS(device.levels_uS), DEFAULT_MAX_PULSES)
        self.after_s = 0.0 if ideal else after_s
        self.programmed = ProgrammingCounts()
        conductances = self._conductances(schedule, rng)
        read_sigma = None if read_model is None else [read_model.sigma(g, device.levels_uS) for g in conductances]
        periphery = chip.periphery
        self.executor = CrossbarExecutor(plan, conductances, dac_bits=periphery.dac_bits,
                                         adc_bits=periphery.adc_bits, read_noise_uS=self.read_noise,
                                         exact_read_noise=exact_read_noise, read_sigma_uS=read_sigma,
                                         read_maps=None if ideal else read_maps(plan, conductances, chip))
        self.cost = plan_cost(plan, periphery)

    @classmethod
    def of(cls, program: Program, name: str, chip: Chip, rng: np.random.Generator, *, ideal: bool = False,
           exact_read_noise: bool = False, after_s: float = 0.0) -> CrossbarLayer:
        """Layer `name` of a Program, lowered (for tools and tests that look at one layer)."""
        schedule = schedule_of(program)
        return cls(schedule.layers[name], schedule, chip, rng, ideal=ideal, exact_read_noise=exact_read_noise,
                   after_s=after_s)

    @property
    def x_fs(self) -> float | None:
        """The layer's input full scale (None: each vector's own)."""
        return self.executor.x_fs

    @x_fs.setter
    def x_fs(self, value: float | None) -> None:
        self.executor.x_fs = value

    def _conductances(self, schedule: Schedule, rng: np.random.Generator) -> Sequence[np.ndarray]:
        """What every read's region holds when it is read, in read order: the devices programmed (write noise,
        or write-verify pulse by pulse), with the simulated chip's stuck devices at their stuck conductance, and
        drifted (`_drifted`).

        With ideal devices, or the default programming model and no drift, all of the layer's regions are
        programmed at once, in read order, from the schedule's per-layer buffers (the reads' levels and
        noiseless conductances, the simulated chip's stuck devices among them: `Schedule.read_levels`,
        `read_conductances`, `read_stuck`; `_written_with_noise`), no buffer of the arrays' every device; each
        region's write noise is the slice of one draw that the region-by-region draws in read order give, so the
        values are the same as drawing region by region; the regions stay that one buffer (`Regions`), which the
        executor's set-up reads as it is. Drift draws its exponents region by region between the
        write draws, so with drift the regions go one by one."""
        reads = self.plan.pairs.reads()  # the records made only if a region is programmed on its own
        if self.ideal:  # every device at its target; a joint layer's skipped devices as compiled (module docstring)
            return _regions(schedule.read_conductances(self.plan.name, stuck=self.plan.start.encoding == "joint"),
                            self.plan)
        drifts = self.after_s != 0 and self.chip.device.drift is not None
        per_region = drifts or self.chip.device.programming.model == PULSE or schedule.as_programmed
        written = None if per_region else self._written_with_noise(reads, schedule, rng)
        if written is not None:
            return written
        maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        return [self._conductance(read, schedule, maps, rng) for read in reads]

    def _written_with_noise(self, reads: Sequence[Read], schedule: Schedule, rng: np.random.Generator
                            ) -> Regions | None:
        """The regions of `reads` (all of the layer's) programmed to their levels with write noise
        (`write_noise`, sigma from `write_sigma_uS`), and the simulated chip's stuck devices at their stuck
        conductance, every region in one pass; None, having drawn nothing, when a conductance-dependent write
        noise leaves some regions without noise and others with it (a region draws only when one of its devices
        has noise: `_conductance`)."""
        if not reads:
            return _regions(np.zeros(0), self.plan)
        level = schedule.read_levels(self.plan.name)
        heights, widths = self.plan.read_fields("rows", "cols")
        sigma_uS = self.chip.device.write_noise_uS
        if self.chip.device.write_noise_model is None and sigma_uS > 0:  # one sigma: no array of the targets
            written = written_uS(level, schedule.levels_uS, rng, sigma_uS)
        else:
            programmed, sigma = self._targets(level, schedule.levels_uS)
            noisy = np.asarray(sigma) > 0
            if noisy.ndim and noisy.any() and \
                    not np.logical_or.reduceat(noisy, region_starts(heights, widths)).all():
                return None
            written = write_noise(programmed, rng, sigma)
        stuck_at, g_uS = schedule.read_stuck(self.plan.name, self.chip)  # found once per chip and layer
        written[stuck_at] = g_uS  # a stuck device reads its stuck conductance
        return Regions(written, heights, widths)

    def _conductance(self, read: Read, schedule: Schedule, maps: dict[int, tuple[np.ndarray, np.ndarray]],
                     rng: np.random.Generator) -> np.ndarray:
        """One read's region as `_conductances` gives it (an as-programmed Program, write-verify pulse by pulse,
        or the default model region by region)."""
        program = schedule.arrays[read.array]
        window = region_window(read)
        if program.programmed_uS is not None:  # an as-programmed Program: the programming already happened
            return self._drifted(program.programmed_uS[window], program.level[window], None, schedule.levels_uS,
                                 rng)
        if read.array not in maps:
            maps[read.array] = self.chip.stuck_map(read.array)
        state, g = maps[read.array][0][window], maps[read.array][1][window]
        level = program.level[window]
        levels = schedule.levels_uS
        if self.chip.device.programming.model == PULSE:  # write-verify simulated pulse by pulse
            noisy = np.full(level.shape, levels[0])  # a skipped device rests at the lowest level
            written = level >= 0
            done = write_devices(level[written], self.chip.device, rng, tolerance_uS=self.write[0],
                                 max_pulses=self.write[1])
            noisy[written] = done.conductance_uS
            self.programmed.add(done.pulses, done.verify_reads, done.failed)
            return self._drifted(np.where(state != 0, g, noisy), level, state, levels, rng)
        programmed, sigma = self._targets(level, levels)
        return self._drifted(np.where(state != 0, g, write_noise(programmed, rng, sigma)), level, state, levels,
                             rng)

    def _targets(self, level: np.ndarray, levels_uS: np.ndarray) -> tuple[np.ndarray, float | np.ndarray]:
        """What devices at Program levels `level` are programmed to (`programmed_uS`) and the standard deviation
        of their write error (`write_sigma_uS`: the constant, or the simulated chip's write-noise model)."""
        programmed = programmed_uS(level, levels_uS)
        return programmed, write_sigma_uS(self.chip.device, programmed)

    def _drifted(self, g: np.ndarray, level: np.ndarray, state: np.ndarray | None, levels_uS: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        """The conductances `after_s` seconds after programming (the chip's `device.drift`): each programmed,
        healthy device (level >= 0, state 0) times ((t + t0) / t0)^(-nu), nu drawn once per device at its
        target conductance, the Program's level `levels_uS[level]` (`DriftModel.exponents`: a per-level nu is
        interpolated over the simulated chip's levels by conductance, so a chip with other levels than the
        Program's gives each device the nu of its conductance); stuck devices do not drift. Unchanged, and
        nothing drawn, at t = 0 or without a drift model."""
        drift = self.chip.device.drift
        if self.after_s == 0 or drift is None:
            return g
        healthy = level >= 0 if state is None else (level >= 0) & (state == 0)
        nu = drift.exponents(programmed_uS(level[healthy], levels_uS), self.chip.device.levels_uS, rng)
        out = np.array(g, dtype=np.float64)
        out[healthy] *= drift.factor(nu, self.after_s)
        return out

    def forward(self, x: Array, rng: np.random.Generator, counts: EventCounts, threads: int = 1, *,
                noise: NoiseSpan | None = None) -> Array:
        """y = x W (+ b) as the crossbars and periphery compute it, for x of shape (..., inputs)
        (`CrossbarExecutor.forward`), with the events counted; a grouped layer's x is (..., groups, inputs) and
        its y (..., cols), each column computed from its own group's vector only (the columns the records
        convert), one application per run of `groups` vectors."""
        before = self.executor.read_power
        y = self.executor.forward(x, rng, threads, noise=noise)
        name = self.plan.name
        counts.device_read_pJ[name] = counts.device_read_pJ.get(name, 0.0) + read_energy_pJ(
            self.executor.read_power - before, self.chip.periphery)
        applications = int(np.prod(x.shape[:-1], dtype=np.int64)) // self.plan.start.groups
        cost = self.cost
        counts.reads += cost.reads * applications
        counts.adc_conversions += cost.adc_conversions * applications
        counts.dac_conversions += cost.dac_conversions * applications
        counts.device_reads += cost.device_reads * applications
        counts.digital_ops += cost.digital_ops * applications
        counts.analog_ns += cost.analog_ns * applications
        return y.astype(x.dtype)


def plan_cost(plan: LayerPlan, periphery: Periphery) -> LayerCost:
    """`layer_cost(plan, periphery)`, made once per plan and periphery (`LayerPlan.derived`, keyed by the
    periphery's values: chips with equal peripheries share it): every draw of a schedule on one chip costs the
    same per application."""
    return plan.derived(("cost", periphery), lambda: layer_cost(plan, periphery))


def _regions(flat: np.ndarray, plan: LayerPlan) -> Regions:
    """The layer's reads' regions, (rows, cols) each, from their devices laid end to end in read order: the buffer
    itself, which the executor's set-up reads as it is (`schedule.regions.Regions`)."""
    heights, widths = plan.read_fields("rows", "cols")
    return Regions(flat, heights, widths)


def programmed_uS(level: np.ndarray, levels_uS: np.ndarray) -> np.ndarray:
    """The target conductance (uS) of devices at Program levels `level` (indices into the Program's
    `levels_uS`): a skipped device (level -1) rests at the lowest level. The one definition of what a device is
    programmed to, for its write noise, its write-noise sigma and its drift.

    One gather, where every negative level lands on the lowest (`np.take`'s mode "clip"; int8 levels through a
    byte table, `conductances.byte_table`, the same values); a level beyond the table raises IndexError instead of
    landing on the highest (a checked Program has none)."""
    levels, level, table = _level_table(level, levels_uS)
    return _gathered(level, levels, table)


def _level_table(level: np.ndarray, levels_uS: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`programmed_uS`'s check and look-up: the levels (float64), the level indices, and the byte table of int8
    levels (None: `np.take`'s clip), or IndexError for a level beyond the levels."""
    levels = np.asarray(levels_uS, dtype=np.float64)
    level = np.asarray(level)
    if level.size and level.max() >= len(levels):
        raise IndexError(f"level {int(level.max())} is beyond the Program's {len(levels)} levels")
    return levels, level, byte_table(levels, levels[0]) if level.dtype == np.int8 and levels.size else None


def _gathered(level: np.ndarray, levels: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    """The targets of checked levels (`_level_table`): one gather; int8 levels two at a time
    (`conductances.pair_gathered`)."""
    return np.take(levels, level, mode="clip") if table is None else pair_gathered(level, table)


def written_uS(level: np.ndarray, levels_uS: np.ndarray, rng: np.random.Generator, sigma_uS: float
               ) -> np.ndarray:
    """Devices at Program levels `level` written with one write-noise sigma: `write_noise(programmed_uS(level,
    levels_uS), rng, sigma_uS)`, value for value, made part by part: each part's errors drawn already scaled
    (`write_errors` with sigma as its scale, a word of the generator per device: the parts' draws are the one
    draw's), its targets added and the result clipped at 0 while the part is in cache: no array of the targets,
    and one pass over the devices' memory instead of five."""
    check_write_sigma(sigma_uS)
    levels, level, table = _level_table(level, levels_uS)
    written = np.empty(level.shape)
    flat, flat_level = written.reshape(-1), level.reshape(-1)
    for lo in range(0, len(flat), _WRITE_PART):
        part = flat[lo:lo + _WRITE_PART]
        write_errors(rng, part.shape, out=part, scale=sigma_uS)  # sigma z, looked up with the draw
        part += _gathered(flat_level[lo:lo + _WRITE_PART], levels, table)
        np.maximum(part, 0.0, out=part)
    return written


_WRITE_PART = 1 << 17
"""Devices `written_uS` writes at once (1 MiB of float64): on 1.43 million devices, parts of 2^15 to 2^18 alike and
2^14 slower (benchmarks/bench_write_parts.py, results/write_parts.txt; 2^17 7.9 ms in its quieter run)."""


def write_noise(programmed: np.ndarray, rng: np.random.Generator, sigma: float | np.ndarray) -> np.ndarray:
    """Devices programmed to `programmed` (uS) as the default model leaves them (`programming.devices.
    gaussian_write`: target + N(0, sigma), drawn in C order, never below 0); without write noise nothing is
    drawn (sigma is one number, or one per device: `write_sigma_uS`)."""
    return gaussian_write(programmed, rng, sigma) if np.any(sigma > 0) else np.maximum(programmed, 0.0)


@dataclass
class ProgrammingCounts:
    """What simulated write-verify spent (the chip's "pulse" programming model)."""

    pulses: int = 0
    verify_reads: int = 0
    failed: int = 0

    def add(self, pulses: np.ndarray, verify_reads: np.ndarray, failed: np.ndarray) -> None:
        self.pulses += int(np.sum(pulses))
        self.verify_reads += int(np.sum(verify_reads))
        self.failed += int(np.sum(failed))
