"""The limits of a chip file: how large a chip may be, and the ranges its numbers must lie in.

Both kinds are checked when a chip is loaded or constructed (`lea_compiler.chip`),
so a chip that loads can be compiled, simulated and reported on a 2-core,
24 GiB machine: no limit here is a physical law, each is the largest value
leac is measured or argued to handle (docs/chip-format.md, "Limits", says why
each has its value).

Sizes. Compile's memory per chip device is bounded by the placement view
(`lea_compiler.placement.view`), not by the chip; what stays proportional to
the chip is one stuck map per array that a Program uses (int8 + float64, 9
bytes per device) and per-array bookkeeping (a Python object and its counts,
about 2 kB and 25 us per array, for `chip show` too).

Numbers. Conductances, noise figures and periphery values are finite
positive floats already; the ranges below are wide enough for any real
device and board (several decades either side of the seed paper's values)
and narrow enough that every product the compiler and simulator form
(scale factors from level gaps, energies summed over 10^15 events, times
divided by a clock) stays finite, so every report is finite, strict JSON.
"""

from __future__ import annotations

import math

MAX_ARRAYS = 65_536
"""Most arrays a chip may have (2^16). Loading and `chip show` cost tens of us and a few kB per array:
65,536 arrays of 64 x 64 take 6.2 s and 308 MB for `chip show --json` (2 shared cores); 10^6 arrays of
1 x 1000 took 25 s and 2.5 GB."""
MAX_ARRAY_ROWS = 4096
"""Most rows (word lines) of one array. Fabricated crossbars have 32 to 1024; 4096 leaves room."""
MAX_ARRAY_COLS = 4096
"""Most columns (bit lines) of one array, for the same reason as `MAX_ARRAY_ROWS`."""
MAX_ARRAY_DEVICES = MAX_ARRAY_ROWS * MAX_ARRAY_COLS
"""Most devices of one array (2^24): its stuck map (int8 state + float64 conductance) takes 151 MB, and
compile, simulate and emit hold one per array a Program uses."""
MAX_DEVICES = 2**30
"""Most devices of a chip, summed over its arrays (about 1.07 x 10^9, e.g. 65,536 arrays of 128 x 128).
Nothing in leac allocates per chip device any more (the placer looks at a bounded view); the sum stays
exact in float64 and a device count in every report stays below 2^31."""

MIN_CONDUCTANCE_uS = 1e-6
"""Smallest conductance (levels, stuck conductances, a defect's g_uS): 1 pS, far below any readable device."""
MAX_CONDUCTANCE_uS = 1e6
"""Largest conductance: 1 S (1 ohm), far above any memristor's ON state (the seed paper's stuck-high is 500 uS)."""
MIN_LEVEL_GAP = 1e-6
"""Smallest gap between adjacent levels, as a share of the top level: levels closer than 1 ppm are one level
to any instrument, and a quantizer step of that relative size is still many float64 ulps (at 65,535 evenly
spaced levels the gap is 1.5e-5 of the top)."""
MAX_NOISE_uS = 1e6
"""Largest write or read noise figure (uS): beyond the largest conductance it means nothing."""
MIN_BITS = 2
"""Narrowest DAC/ADC: converters are signed (one sign bit), so 1 bit leaves no magnitude step and the simulator
divided by zero (2^(bits-1) - 1 = 0)."""
MAX_ADCS_PER_ARRAY = MAX_ARRAY_COLS
"""Most ADCs of one array: one per column at most is meaningful."""

PERIPHERY_RANGES: dict[str, tuple[float, float]] = {
    "v_read_V": (1e-3, 100.0),
    "clock_MHz": (1e-3, 1e6),
    "t_mvm_ns": (1e-3, 1e9),
    "t_adc_ns": (1e-3, 1e9),
    "t_write_pulse_ns": (1e-3, 1e9),
    "e_device_read_pJ": (1e-9, 1e9),
    "e_adc_pJ": (1e-9, 1e9),
    "e_dac_pJ": (1e-9, 1e9),
    "e_write_pulse_pJ": (1e-9, 1e9),
    "e_digital_op_pJ": (1e-9, 1e9),
    "t_dac_ns": (1e-3, 1e9),
    "p_static_adc_uW": (0.0, 1e9),
    "p_static_dac_uW": (0.0, 1e9),
    "p_static_array_uW": (0.0, 1e9),
    "p_static_digital_uW": (0.0, 1e9),
}
"""Inclusive range of each real-valued periphery key. Read voltages from 1 mV to 100 V; clocks from 1 kHz to
1 THz; times from 1 ps to 1 s; energies from 1 zJ (1e-9 pJ) to 1 mJ (1e9 pJ) per event; static powers from 0 (none,
the default) to 1 kW (1e9 uW) per component. The seed defaults
(0.2 V, 100 MHz, 10-100 ns, 0.01-10 pJ) sit decades inside; at the extremes a simulated run of 10^15 events
still totals under 10^24 pJ or 10^24 ns, finite."""

DEVICE_RANGES: dict[str, tuple[float, float]] = {
    "stuck_high_uS": (MIN_CONDUCTANCE_uS, MAX_CONDUCTANCE_uS),
    "stuck_low_uS": (MIN_CONDUCTANCE_uS, MAX_CONDUCTANCE_uS),
    "write_noise_uS": (0.0, MAX_NOISE_uS),
    "read_noise_uS": (0.0, MAX_NOISE_uS),
}
"""Inclusive range of each scalar device key (`levels_uS` is checked by `levels_problem`)."""

PROGRAMMING_RANGES: dict[str, tuple[float, float]] = {
    "step_uS": (MIN_CONDUCTANCE_uS, MAX_CONDUCTANCE_uS),
    "step_sigma_uS": (0.0, MAX_NOISE_uS),
}
"""Inclusive range of each real-valued key of `device.programming`: a pulse's mean step is a conductance change
(1 pS to 1 S, like a conductance); its spread a noise figure (0 to `MAX_NOISE_uS`)."""
LINE_RANGES: dict[str, tuple[float, float]] = {
    "word_line_segment_ohm": (0.0, 1e3),
    "bit_line_segment_ohm": (0.0, 1e3),
    "driver_ohm": (0.0, 1e6),
    "sense_ohm": (0.0, 1e6),
}
"""Inclusive range of each key of `periphery.lines` (ohms). A wire segment between adjacent devices of a
nanometre-scale crossbar is 0.1 to 10 ohms (CrossSim's and NeuroSim's examples use 1 to 2.5); 1 kohm per segment
is a wire as resistive as a device and leaves room. A driver or sense amplifier's output resistance up to 1 Mohm.
A segment is 0 (a perfect wire, solved exactly as one node) or at least `MIN_LINE_SEGMENT_OHM`."""
MIN_LINE_SEGMENT_OHM = 1e-3
"""The smallest non-zero word- or bit-line segment (ohms). The solve (`lea_compiler.irdrop`) is direct, but a
segment conductance many orders above the devices' and leads' cancels catastrophically in its elimination
(1e-12 ohm beside a 1 kohm lead: 30% error; 1e-15 ohm: a singular matrix). At 1 mohm, with leads up to 1 Mohm,
its difference from the exact solve with the segment 0 stays below 1e-4 of the largest entry (40 x 40 and
128 x 128 regions, measured; tests/test_irdrop_limits.py); a wire under 1 mohm per segment is a short: give 0."""
MAX_READBACK_READS = 64
"""Most reads averaged into one verify read-back (`device.programming.readback_reads`). Averaging n reads
shrinks uniform read noise by sqrt(n): 64 reads take it to 1/8, beyond which a board would average in its
integrator instead; the simulator draws (reads, devices) numbers at once, so the count bounds its memory."""

MAX_TIME_LIMIT_S = 86_400.0
"""Largest `--time-limit` (seconds) leac accepts for the placer: one day. The limit is a budget, so it must be a
finite positive number; CP-SAT's deterministic time and the Lagrangian's iteration count are derived from it."""


def _fmt(value: float) -> str:
    return f"{value:g}"


def range_problem(value: float, path: str, low: float, high: float, unit: str = "") -> str | None:
    """The problem with a finite number outside [low, high], if any (the message names the range)."""
    if low <= value <= high:
        return None
    return f"{path}: {_fmt(value)} is outside the range leac accepts ({_fmt(low)} to {_fmt(high)}{unit})"


def conductance_problem(value: float, path: str) -> str | None:
    """The problem with a conductance (uS, finite and positive already) out of range, if any."""
    return range_problem(value, path, MIN_CONDUCTANCE_uS, MAX_CONDUCTANCE_uS, " uS")


def levels_problem(levels: list[float], path: str) -> str | None:
    """The first problem of finite, strictly ascending levels (uS): out of range, or two levels too close."""
    for i, v in enumerate(levels):
        if (p := conductance_problem(v, f"{path}[{i}]")) is not None:
            return p
    gaps = [b - a for a, b in zip(levels[:-1], levels[1:], strict=True)]
    smallest = min(gaps)
    if smallest < MIN_LEVEL_GAP * levels[-1]:
        i = gaps.index(smallest)
        return (f"{path}: levels {_fmt(levels[i])} and {_fmt(levels[i + 1])} are closer than leac resolves "
                f"({_fmt(MIN_LEVEL_GAP)} of the top level, {_fmt(MIN_LEVEL_GAP * levels[-1])} uS)")
    return None


def time_limit_problem(value: float) -> str | None:
    """The problem with a placer time limit in seconds (a finite number in (0, MAX_TIME_LIMIT_S]), if any."""
    if not math.isfinite(value) or value <= 0 or value > MAX_TIME_LIMIT_S:
        return f"must be a finite number of seconds above 0 and at most {MAX_TIME_LIMIT_S:g} (one day), got {value}"
    return None


MAX_POLYNOMIAL_TERMS = 8
"""Most coefficients of a noise model's polynomial law (degree 7): aihwkit's PCM law has 3, CrossSim's 2."""
DRIFT_RANGES: dict[str, tuple[float, float]] = {
    "nu": (0.0, 1.0),
    "nu_sigma": (0.0, 1.0),
    "t0_s": (1e-9, 1e9),
}
"""Inclusive range of each `device.drift` value: drift exponents from 0 (none) to 1 (G ~ 1/t; measured PCM has
0.005 to 0.1, aihwkit clamps its mean to 0.049 to 0.1); t0 from 1 ns to about 32 years."""
