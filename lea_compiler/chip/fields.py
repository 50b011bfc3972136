"""What each value of a chip may be, and the message saying what is wrong with one that is not.

The one definition of the rules for a single value of a `leac-chip` file (a
number, a level list, a bit count, an array entry, a defect entry), shared by
the file loader, the constructors, `synth_chip` and `import_maps`. Each check
returns the problem as a message naming the value's JSON path, or None; the
checks over many entries at once (validate.py, store.py) find the entries
that may be bad in bulk and ask these functions for the messages.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lea_compiler.chip_limits import (
    DEVICE_RANGES,
    LINE_RANGES,
    MAX_ADCS_PER_ARRAY,
    MAX_ARRAY_COLS,
    MAX_ARRAY_ROWS,
    MAX_READBACK_READS,
    MIN_BITS,
    MIN_LINE_SEGMENT_OHM,
    PERIPHERY_RANGES,
    PROGRAMMING_RANGES,
    conductance_problem,
    levels_problem,
    range_problem,
)
from lea_compiler.problems import collected

FORMAT = "leac-chip"
"""The value of the top-level `format` key."""
VERSION = 1
"""The newest `leac-chip` version this leac reads and the one it writes."""

STUCK_HIGH = "stuck_high"
STUCK_LOW = "stuck_low"
STATES = (STUCK_HIGH, STUCK_LOW)

# Limits that keep a hostile or mistaken file from exhausting memory or time (chip_limits says why each).
MAX_BITS = 32
"""Widest DAC/ADC leac accepts; wider is not physical and overflows integer maths."""
MAX_LEVELS = 65_535
"""Most conductance levels a device may have. Fine analog devices have 256-4096 programmable states; level
indices are stored as `level_index_dtype` integers, so more levels only widen them."""
MAX_FILE_BYTES = 256 * 2**20
"""Largest chip file or conductance map leac reads.

A 20,000-device chip file is ~50 kB; 1024 arrays of 128 x 128 with 5% stuck
devices (~840,000 defect entries) is ~52 MiB, which loads in a few seconds.
"""
MAX_ARRAY_ID = 2**63 - 1
"""Largest array id: leac holds ids as 64-bit signed integers (numpy int64, the defect tables' and fingerprint's
columns). Every id below 2**63 is read as it always was; a larger one was never usable (loading, `chip show` or
the fingerprint failed on it), and is refused with its path."""
MAX_PROBLEMS = 200
"""Most problems listed in one InvalidChipError; the rest are counted."""

_LARGEST_FLOAT_INT = int(np.finfo(np.float64).max)

# Kinds: "levels" (ascending positive numbers), "positive" (number > 0),
# "non_negative" (number >= 0), "count" (int >= 1), "bits" (MIN_BITS <= int <= MAX_BITS),
# "programming" (the `device.programming` object: `programming_problems`),
# "lines" (the `periphery.lines` object: `lines_problems`).
DEVICE_KINDS: dict[str, str] = {
    "levels_uS": "levels",
    "stuck_high_uS": "positive",
    "stuck_low_uS": "positive",
    # A noise figure is a spread, not a conductance: 0 is a legitimate ideal device.
    "write_noise_uS": "non_negative",
    "read_noise_uS": "non_negative",
    "programming": "programming",
}
PERIPHERY_KINDS: dict[str, str] = {
    "v_read_V": "positive",
    "dac_bits": "bits",
    "adc_bits": "bits",
    "adcs_per_array": "count",
    "clock_MHz": "positive",
    "t_mvm_ns": "positive",
    "t_adc_ns": "positive",
    "t_write_pulse_ns": "positive",
    "e_device_read_pJ": "positive",
    "e_adc_pJ": "positive",
    "e_dac_pJ": "positive",
    "e_write_pulse_pJ": "positive",
    "e_digital_op_pJ": "positive",
    "t_dac_ns": "positive",
    "digital_lanes": "count",
    "p_static_adc_uW": "non_negative",
    "p_static_dac_uW": "non_negative",
    "p_static_array_uW": "non_negative",
    "p_static_digital_uW": "non_negative",
    "lines": "lines",
}
GAUSSIAN = "gaussian"
PULSE = "pulse"
PROGRAMMING_MODELS = (GAUSSIAN, PULSE)
"""The values of `device.programming.model` (docs/chip-format.md, "Programming model")."""
PROGRAMMING_KEYS = ("model", "step_uS", "step_sigma_uS", "readback_reads")
"""The keys of `device.programming`, in the order a chip file writes them."""
PULSE_KINDS: dict[str, str] = {"step_uS": "positive", "step_sigma_uS": "non_negative"}
"""The pulse model's numbers (kinds as above; ranges in chip_limits.PROGRAMMING_RANGES)."""
LINE_KEYS = ("word_line_segment_ohm", "bit_line_segment_ohm", "driver_ohm", "sense_ohm")
"""The keys of `periphery.lines` (docs/chip-format.md, "Line resistance"), in the order a chip file writes them;
each is a resistance in ohms, >= 0, and a missing one is 0."""
STATIC_POWER_KEYS = ("p_static_adc_uW", "p_static_dac_uW", "p_static_array_uW", "p_static_digital_uW")
"""The periphery's static (bias and leakage) powers: per ADC, per row DAC, per array, per digital lane."""
OPTIONAL_PERIPHERY = ("e_digital_op_pJ", "t_dac_ns", "digital_lanes", *STATIC_POWER_KEYS, "lines")
"""Periphery keys a chip file holds only when not at their defaults, so files and fingerprints written before
the key existed stay what they were."""
TOP_KEYS = ("format", "version", "name", "device", "periphery", "arrays", "defects")
GRID_KEYS = ("count", "rows", "cols")
ARRAY_KEYS = ("id", "rows", "cols")
DEFECT_KEYS = ("array", "row", "col", "state", "g_uS")


class NonFinite:
    """What the JSON decoder returns for NaN, Infinity or an overflowing number.

    Python's json accepts these by default; leac refuses them, but only after
    decoding, so the problem can be reported with its JSON path.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def show(value: object) -> str:
    """`value` as it would appear in JSON, shortened for a message."""
    if isinstance(value, NonFinite):
        return value.text
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:76] + " ..."


def join(path: str, key: str) -> str:
    """The JSON path of `key` inside the object at `path`."""
    return f"{path}.{key}" if path else key


def fields_of(obj: object) -> dict[str, Any]:
    """A dataclass instance's fields as a dict (shallow, unlike `dataclasses.asdict`)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


def number_problem(value: object, path: str, *, positive: bool = True) -> str | None:
    """The problem with `value` as a finite (positive / non-negative) number, if any."""
    if isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        return f"{path}: {show(value)} is not a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{path}: {show(value)} is not a number"
    if isinstance(value, int) and abs(value) > _LARGEST_FLOAT_INT:
        return f"{path}: {show(value)} is too large"
    if positive and value <= 0:
        return f"{path}: {show(value)} is not positive"
    if not positive and value < 0:
        return f"{path}: {show(value)} is negative"
    return None


def int_problem(value: object, path: str, *, minimum: int, maximum: int | None = None) -> str | None:
    """The problem with `value` as an integer in [minimum, maximum], if any."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{path}: {show(value)} is not an integer"
    if value < minimum:
        what = {0: "is negative", 1: "is not positive"}.get(minimum, f"is less than {minimum}")
        return f"{path}: {show(value)} {what}"
    if maximum is not None and value > maximum:
        return f"{path}: {show(value)} is more than leac supports ({maximum})"
    return None


def key_problems(value: Mapping[str, object], path: str, allowed: Sequence[str], required: Sequence[str]) -> list[str]:
    """The duplicate, unknown (with the closest known key as a hint) and missing keys of a JSON object."""
    problems = [f"{join(path, key)}: key appears more than once" for key in getattr(value, "duplicates", ())]
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{join(path, key)}: unknown key{hint}")
    problems += [f"{join(path, key)}: missing (required)" for key in required if key not in value]
    return problems


def programming_problems(value: object, path: str) -> list[str]:
    """Every problem of a `device.programming` object given as a mapping (missing keys are defaults).

    A key present with null is a value (and not a number): the constructor
    leaves out `step_uS` when it is None, so only a file can give null.
    The rules: `model` is "gaussian" or "pulse"; "pulse" needs `step_uS`
    (> 0), "gaussian" takes none and no non-zero `step_sigma_uS` (it has no
    steps); `step_sigma_uS` >= 0; `readback_reads` an integer in
    1..`MAX_READBACK_READS`; numbers finite and inside `PROGRAMMING_RANGES`.
    """
    if not isinstance(value, Mapping):
        return [f"{path}: {show(value)} is not a JSON object"]
    problems = key_problems(value, path, PROGRAMMING_KEYS, ())
    model = value.get("model", GAUSSIAN)
    if not isinstance(model, str) or model not in PROGRAMMING_MODELS:
        problems.append(f'{join(path, "model")}: {show(model)} is not "{GAUSSIAN}" or "{PULSE}"')
    step_path = join(path, "step_uS")
    if "step_uS" in value and model == GAUSSIAN:
        problems.append(f'{step_path}: {show(value["step_uS"])} is given, but the "{GAUSSIAN}" model has no '
                        f'pulse step (leave it out, or use "{PULSE}")')
    elif "step_uS" in value:
        problems += model_problems({"step_uS": value["step_uS"]}, PULSE_KINDS, path)
    elif model == PULSE:
        problems.append(f'{step_path}: missing (required by the "{PULSE}" model)')
    if "step_sigma_uS" in value:
        sigma, sigma_path = value["step_sigma_uS"], join(path, "step_sigma_uS")
        if found := model_problems({"step_sigma_uS": sigma}, PULSE_KINDS, path):
            problems += found
        elif model == GAUSSIAN and sigma != 0:
            problems.append(f'{sigma_path}: {show(sigma)} is given, but the "{GAUSSIAN}" model has no pulse '
                            f'step (leave it out, or use "{PULSE}")')
    if "readback_reads" in value and (
        p := int_problem(value["readback_reads"], join(path, "readback_reads"), minimum=1, maximum=MAX_READBACK_READS)
    ):
        problems.append(p)
    return problems


def lines_problems(value: object, path: str) -> list[str]:
    """Every problem of a `periphery.lines` object given as a mapping (missing keys are 0 ohms): known keys only,
    each a finite number >= 0 inside `LINE_RANGES`, a segment 0 or at least `MIN_LINE_SEGMENT_OHM`."""
    if not isinstance(value, Mapping):
        return [f"{path}: {show(value)} is not a JSON object"]
    problems = key_problems(value, path, LINE_KEYS, ())
    for key in LINE_KEYS:
        if key in value:
            key_path = join(path, key)
            if (p := number_problem(value[key], key_path, positive=False)) is None:
                ohm = float(value[key])  # type: ignore[arg-type]
                p = range_problem(ohm, key_path, *LINE_RANGES[key], " ohm")
                if p is None and key.endswith("segment_ohm") and 0 < ohm < MIN_LINE_SEGMENT_OHM:
                    p = (f"{key_path}: {ohm:g} ohm is neither 0 nor at least {MIN_LINE_SEGMENT_OHM:g} ohm (a smaller "
                         "segment is a short for any read, and the IR-drop solve loses accuracy on it: give 0)")
            if p is not None:
                problems.append(p)
    return problems


def _levels_problems(value: object, path: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return [f"{path}: {show(value)} is not a list of numbers"]
    problems = [p for i, v in enumerate(value) if (p := number_problem(v, f"{path}[{i}]")) is not None]
    if len(value) < 2:
        problems.append(f"{path}: {show(value)} has fewer than 2 levels")
    elif len(value) > MAX_LEVELS:
        problems.append(f"{path}: {len(value)} levels is more than leac supports ({MAX_LEVELS})")
    elif not problems and any(b <= a for a, b in zip(value[:-1], value[1:], strict=True)):
        problems.append(f"{path}: {show(value)} is not strictly ascending")
    elif not problems and (p := levels_problem([float(v) for v in value], path)) is not None:
        problems.append(p)
    return problems


def _kind_problems(value: object, kind: str, path: str) -> list[str]:
    if kind == "levels":
        return _levels_problems(value, path)
    if kind == "programming":
        return programming_problems(value, path)
    if kind == "lines":
        return lines_problems(value, path)
    if kind in ("positive", "non_negative"):
        problem = number_problem(value, path, positive=kind == "positive")
    elif kind == "bits":
        problem = int_problem(value, path, minimum=MIN_BITS, maximum=MAX_BITS)
    else:
        problem = int_problem(value, path, minimum=1, maximum=MAX_ADCS_PER_ARRAY)
    return [problem] if problem else []


_RANGES = {**DEVICE_RANGES, **PERIPHERY_RANGES, **PROGRAMMING_RANGES}
"""The accepted range of every scalar real-valued model key (chip_limits)."""


def model_problems(values: Mapping[str, object], kinds: Mapping[str, str], path: str) -> list[str]:
    """Problems of a device or periphery model given as a mapping (missing keys are defaults)."""
    problems: list[str] = []
    for key, kind in kinds.items():
        if key in values:
            found = _kind_problems(values[key], kind, join(path, key))
            if not found and key in _RANGES:
                unit = key.rsplit("_", 1)[-1]
                if (p := range_problem(float(values[key]), join(path, key), *_RANGES[key], f" {unit}")):  # type: ignore[arg-type]
                    found.append(p)
            problems += found
    return problems


def name_problem(value: object, path: str) -> str | None:
    """The problem with `value` as a chip's name (text), if any."""
    if not isinstance(value, str):
        return f"{path}: {show(value)} is not a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{path}: {show(value)} is not valid Unicode text"
    return None


def array_problems(values: Mapping[str, object], path: str) -> list[str]:
    """Type problems of one array entry (its id, at most `MAX_ARRAY_ID`, rows and cols)."""
    problems = [int_problem(values["id"], join(path, "id"), minimum=0, maximum=MAX_ARRAY_ID)]
    problems.append(int_problem(values["rows"], join(path, "rows"), minimum=1, maximum=MAX_ARRAY_ROWS))
    problems.append(int_problem(values["cols"], join(path, "cols"), minimum=1, maximum=MAX_ARRAY_COLS))
    return [p for p in problems if p]


def defect_problems(values: Mapping[str, object], path: str) -> list[str]:
    """Type problems of one defect entry; an absent row/col is a missing key (or None)."""
    problems = [int_problem(values["array"], join(path, "array"), minimum=0)]
    for key in ("row", "col"):
        if values.get(key) is not None:
            problems.append(int_problem(values[key], join(path, key), minimum=0))
    if values.get("row") is None and values.get("col") is None:
        problems.append(f"{path}: has neither row nor col (give one, or both for one device)")
    state = values["state"]
    if state not in STATES or not isinstance(state, str):
        problems.append(f'{join(path, "state")}: {show(state)} is not "stuck_high" or "stuck_low"')
    if values.get("g_uS") is not None:
        g_problem = number_problem(values["g_uS"], join(path, "g_uS"))
        if g_problem is None:
            g_problem = conductance_problem(float(values["g_uS"]), join(path, "g_uS"))  # type: ignore[arg-type]
        problems.append(g_problem)
    return [p for p in problems if p]


def capped(problems: list[str]) -> list[str]:
    """At most `MAX_PROBLEMS` problems, and a count of the rest (`problems.Problems`, which every validator
    shares)."""
    return collected(problems, MAX_PROBLEMS).lines()
