"""Conductance-dependent device noise and retention drift: the optional `device` sections of a chip file.

Three optional keys of `device` (docs/chip-format.md, "Conductance-dependent noise and drift"); a chip without
them behaves, saves and fingerprints exactly as before they existed.

- `write_noise_model`: the standard deviation of a write's (programming) error as a function of the target
  conductance, replacing the constant `write_noise_uS` of the "gaussian" programming model;
- `read_noise_model`: the standard deviation of the Gaussian noise one read adds to a device, as a function
  of the conductance it holds, replacing the uniform +-`read_noise_uS`;
- `drift`: retention drift, G(t) = G_prog ((t + t0) / t0)^(-nu) at a time t after programming, with nu drawn
  once per device, nu = |N(nu_mean(G), nu_sigma(G))|.

A noise model is a table, one standard deviation per level (`sigma_uS`, as measured chips report it; between
levels linear in the conductance, flat beyond the end levels), or a polynomial law
sigma(G) = max(sum_k c_k (G / g_ref)^k, 0) (`polynomial`, `g_ref_uS`). The polynomial holds:

- aihwkit's PCM programming noise (`PCMLikeNoiseModel.apply_programming_noise_to_conductance`,
  src/aihwkit/inference/noise/pcm.py; Nandakumar et al., ICECS 2019): c = [0.26348, 1.9650, -1.1731] with
  g_ref = 25 uS (aihwkit's g_max reference), sigma in uS;
- CrossSim's RRAM programming error (`RRAMMilo.programming_error`, simulator/devices/custom/RRAM_Milo.py; Milo et
  al., IRPS 2021): sigma = max(-0.009107 G + 4.782321, 0) uS, c = [4.782321, -0.009107] with g_ref = 1 uS;
- CrossSim's "NormalProportional" device (simulator/devices/generic_device.py): G (1 + N(0, a)), c = [0, a] with
  g_ref = 1 uS; "NormalIndependent": c = [a G_max].

The drift law is aihwkit's (`PCMLikeNoiseModel.apply_drift_noise_to_conductance`, t0 = 20 s there, with nu =
|N(mu, sigma)| from `generate_drift_coefficients`; `CustomDriftPCMLikeNoiseModel` interpolates mu and sigma
over a conductance table as `nu` and `nu_sigma` lists do here). A value per level is evaluated at the device's
target level; stuck devices do not drift.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lea_compiler.chip.fields import join, key_problems, number_problem, show
from lea_compiler.chip_limits import (
    DRIFT_RANGES,
    MAX_POLYNOMIAL_TERMS,
    MAX_CONDUCTANCE_uS,
    MAX_NOISE_uS,
    MIN_CONDUCTANCE_uS,
    range_problem,
)
from lea_compiler.errors import InvalidChipError

if TYPE_CHECKING:
    from lea_compiler.chip.parts import DeviceModel

NOISE_MODEL_KEYS = ("sigma_uS", "polynomial", "g_ref_uS")
"""The keys of a `write_noise_model` or `read_noise_model` object, in the order a chip file writes them."""
DRIFT_KEYS = ("t0_s", "nu", "nu_sigma")
"""The keys of a `drift` object, in the order a chip file writes them."""
VARIABILITY_KEYS = ("write_noise_model", "read_noise_model", "drift")
"""The optional `device` keys of this module, in the order a chip file writes them (after `programming`)."""
DEFAULT_T0_S = 20.0
"""aihwkit's t0 (`PCMLikeNoiseModel`): the time between programming and the reference read, in seconds."""


def _real(value: object) -> object:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    return value


def _floats(value: object) -> object:
    """A list or tuple of numbers as a tuple of floats (anything else unchanged, for the checks to name)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_real(v) for v in value)
    return _real(value)


def _number_list_problems(value: object, path: str, low: float, high: float, unit: str, *,
                          most: int | None = None) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return [f"{path}: {show(value)} is not a list of numbers"]
    if not value:
        return [f"{path}: [] lists no numbers"]
    if most is not None and len(value) > most:
        return [f"{path}: {len(value)} numbers is more than leac supports ({most})"]
    if all(type(v) is float or (type(v) is int and abs(v) <= _EXACT_INT) for v in value):  # the usual file
        numbers_ = np.asarray(value, dtype=np.float64)  # at once: a 65,535-level table is checked in numpy
        if np.isfinite(numbers_).all() and low <= numbers_.min() and numbers_.max() <= high:
            return []
    problems = []  # something is wrong: say what, number by number
    for i, v in enumerate(value):
        p = number_problem(v, f"{path}[{i}]", positive=False) if low >= 0 else _finite_problem(v, f"{path}[{i}]")
        if p is None:
            p = range_problem(float(v), f"{path}[{i}]", low, high, unit)  # type: ignore[arg-type]
        if p is not None:
            problems.append(p)
    return problems


_EXACT_INT = 2**53
"""Integers up to this are exact in float64 (`number_problem` names larger ones)."""


def _finite_problem(value: object, path: str) -> str | None:
    """The problem with `value` as a finite number of either sign, if any."""
    problem = number_problem(value, path, positive=False)
    if problem is not None and problem.endswith("is negative"):
        return None
    return problem


def noise_model_problems(value: object, path: str) -> list[str]:
    """Every problem of a `write_noise_model` / `read_noise_model` object, but its table's length (which needs
    the levels: `level_table_problems`). Exactly one of `sigma_uS` (a list of standard deviations, 0 to
    `MAX_NOISE_uS` uS) and `polynomial` (1 to `MAX_POLYNOMIAL_TERMS` finite coefficients c_0, c_1, ...);
    `g_ref_uS` (a conductance, default 1) only with `polynomial`."""
    if not isinstance(value, Mapping):
        return [f"{path}: {show(value)} is not a JSON object"]
    problems = key_problems(value, path, NOISE_MODEL_KEYS, ())
    if ("sigma_uS" in value) == ("polynomial" in value):
        problems.append(f"{path}: give exactly one of sigma_uS (a standard deviation per level) and polynomial "
                        "(coefficients of sigma(G))")
    if "sigma_uS" in value:
        problems += _number_list_problems(value["sigma_uS"], join(path, "sigma_uS"), 0.0, MAX_NOISE_uS, " uS")
        if "g_ref_uS" in value:
            problems.append(f"{join(path, 'g_ref_uS')}: {show(value['g_ref_uS'])} is given, but only a polynomial "
                            "has a reference conductance")
    if "polynomial" in value:
        problems += _number_list_problems(value["polynomial"], join(path, "polynomial"), -MAX_NOISE_uS,
                                          MAX_NOISE_uS, " uS", most=MAX_POLYNOMIAL_TERMS)
    if "g_ref_uS" in value and "polynomial" in value:
        ref_path = join(path, "g_ref_uS")
        p = number_problem(value["g_ref_uS"], ref_path)
        if p is None:
            p = range_problem(float(value["g_ref_uS"]), ref_path, MIN_CONDUCTANCE_uS, MAX_CONDUCTANCE_uS, " uS")
        if p is not None:
            problems.append(p)
    return problems


def _per_level_problems(value: object, path: str, low: float, high: float) -> list[str]:
    """A number, or a list of numbers (one per level; the length is `level_table_problems`'), in [low, high]."""
    if isinstance(value, (list, tuple)):
        return _number_list_problems(value, path, low, high, "")
    p = number_problem(value, path, positive=False)
    if p is None:
        p = range_problem(float(value), path, low, high)  # type: ignore[arg-type]
    return [p] if p else []


def drift_problems(value: object, path: str) -> list[str]:
    """Every problem of a `drift` object but its tables' lengths: `nu` required (a number or one per level),
    `nu_sigma` (the same, default 0) and `t0_s` (seconds, default 20) inside `DRIFT_RANGES`."""
    if not isinstance(value, Mapping):
        return [f"{path}: {show(value)} is not a JSON object"]
    problems = key_problems(value, path, DRIFT_KEYS, ("nu",))
    for key in ("nu", "nu_sigma"):
        if key in value:
            problems += _per_level_problems(value[key], join(path, key), *DRIFT_RANGES[key])
    if "t0_s" in value:
        t0_path = join(path, "t0_s")
        p = number_problem(value["t0_s"], t0_path)
        if p is None:
            p = range_problem(float(value["t0_s"]), t0_path, *DRIFT_RANGES["t0_s"], " s")
        if p is not None:
            problems.append(p)
    return problems


def level_table_problems(values: Mapping[str, object], levels: int, path: str) -> list[str]:
    """Tables of the variability keys in `values` (a `device` mapping) whose length is not `levels`."""
    problems = []
    tables = [("write_noise_model", "sigma_uS"), ("read_noise_model", "sigma_uS"), ("drift", "nu"),
              ("drift", "nu_sigma")]
    for key, inner in tables:
        section = values.get(key)
        if isinstance(section, Mapping):
            table = section.get(inner)
        elif isinstance(section, (NoiseModel, DriftModel)):
            table = getattr(section, inner, None)
        else:
            continue
        if isinstance(table, (list, tuple)) and table and len(table) != levels:
            either = ", or one number" if key == "drift" else ""
            problems.append(f"{join(join(path, key), inner)}: {len(table)} values for {levels} levels "
                            f"(give one per level of levels_uS{either})")
    return problems


def _interpolated(g: np.ndarray, levels: Sequence[float], table: Sequence[float]) -> np.ndarray:
    """A per-level table at conductances g: linear between the levels, the end values beyond them."""
    return np.interp(g, np.asarray(levels, dtype=np.float64), np.asarray(table, dtype=np.float64))


@dataclass(frozen=True)
class NoiseModel:
    """A standard deviation (uS) as a function of conductance: a table per level, or a polynomial law.

    Attributes:
        sigma_uS: One standard deviation per level of `levels_uS` (None for a polynomial).
        polynomial: Coefficients c_0, c_1, ... of sigma(G) = max(sum_k c_k (G / g_ref_uS)^k, 0) (None for a table).
        g_ref_uS: The polynomial's reference conductance.
    """

    sigma_uS: tuple[float, ...] | None = None
    polynomial: tuple[float, ...] | None = None
    g_ref_uS: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sigma_uS", "polynomial", "g_ref_uS"):
            object.__setattr__(self, name, _floats(getattr(self, name)))
        given: dict[str, object] = {k: v for k, v in (("sigma_uS", self.sigma_uS), ("polynomial", self.polynomial))
                                    if v is not None}
        if self.polynomial is not None:
            given["g_ref_uS"] = self.g_ref_uS
        elif self.g_ref_uS != 1.0:
            given["g_ref_uS"] = self.g_ref_uS
        if problems := noise_model_problems(given, "noise model"):
            raise InvalidChipError("noise model", problems)

    def sigma(self, g_uS: np.ndarray, levels_uS: Sequence[float]) -> np.ndarray:
        """The standard deviation (uS, 0 to `MAX_NOISE_uS`) at conductances `g_uS` (float64, g's shape).

        A polynomial is clipped to `MAX_NOISE_uS`: validation bounds it over the chip's conductances
        (`law_problems`), but a device can hold more (a defect's own g_uS, a write-noisy device above the top
        level, a Program compiled for higher levels), where a law of high degree can reach ~1e64 uS and
        overflow the simulator's float32 currents. (A table is within the limit by validation.)"""
        g = np.asarray(g_uS, dtype=np.float64)
        if self.sigma_uS is not None:
            return _interpolated(g, levels_uS, self.sigma_uS)
        assert self.polynomial is not None
        with np.errstate(over="ignore", invalid="ignore"):
            law = np.polynomial.polynomial.polyval(g / self.g_ref_uS, self.polynomial)
        return np.clip(np.nan_to_num(law, nan=MAX_NOISE_uS), 0.0, MAX_NOISE_uS)

    def to_json(self) -> dict[str, Any]:
        """The chip file's object: the table, or the law and its reference conductance."""
        if self.sigma_uS is not None:
            return {"sigma_uS": list(self.sigma_uS)}
        return {"polynomial": list(self.polynomial or ()), "g_ref_uS": self.g_ref_uS}

    @classmethod
    def from_json(cls, value: Mapping[str, Any], *, checked: bool = False) -> NoiseModel:
        """The model of a valid `write_noise_model` / `read_noise_model` object (`checked`: its values are
        known valid, `noise_model_problems` is not run again)."""
        table, law = value.get("sigma_uS"), value.get("polynomial")
        fields = {"sigma_uS": None if table is None else tuple(table),
                  "polynomial": None if law is None else tuple(law), "g_ref_uS": value.get("g_ref_uS", 1.0)}
        return _unchecked(cls, fields) if checked else cls(**fields)


@dataclass(frozen=True)
class DriftModel:
    """Retention drift: G(t) = G_prog ((t + t0_s) / t0_s)^(-nu), nu = |N(nu_mean, nu_sigma)| once per device.

    Attributes:
        nu: The mean drift exponent: one number, or one per level (at the device's target level).
        nu_sigma: Its standard deviation over devices: one number, or one per level.
        t0_s: Seconds from programming to the reference read at which a device holds G_prog.
    """

    nu: float | tuple[float, ...]
    nu_sigma: float | tuple[float, ...] = 0.0
    t0_s: float = DEFAULT_T0_S

    def __post_init__(self) -> None:
        for name in ("nu", "nu_sigma", "t0_s"):
            object.__setattr__(self, name, _floats(getattr(self, name)))
        if problems := drift_problems({"nu": self.nu, "nu_sigma": self.nu_sigma, "t0_s": self.t0_s}, "drift"):
            raise InvalidChipError("drift model", problems)

    def exponents(self, target_uS: np.ndarray, levels_uS: Sequence[float], rng: np.random.Generator) -> np.ndarray:
        """Each device's drift exponent nu = |N(nu(target), nu_sigma(target))|: exactly one normal draw per device."""
        target = np.asarray(target_uS, dtype=np.float64)
        mean = _interpolated(target, levels_uS, self.nu) if isinstance(self.nu, tuple) else np.full(
            target.shape, self.nu)
        spread = (_interpolated(target, levels_uS, self.nu_sigma) if isinstance(self.nu_sigma, tuple)
                  else self.nu_sigma)
        return np.abs(mean + spread * rng.standard_normal(target.shape))

    def factor(self, nu: np.ndarray, after_s: float) -> np.ndarray:
        """G(t) / G_prog = ((t + t0) / t0)^(-nu) at t = `after_s` seconds after programming (1 at t = 0)."""
        return np.power((after_s + self.t0_s) / self.t0_s, -np.asarray(nu, dtype=np.float64))

    def to_json(self) -> dict[str, Any]:
        """The chip file's `drift` object, every key written."""
        def value(v: float | tuple[float, ...]) -> float | list[float]:
            return list(v) if isinstance(v, tuple) else v

        return {"t0_s": self.t0_s, "nu": value(self.nu), "nu_sigma": value(self.nu_sigma)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any], *, checked: bool = False) -> DriftModel:
        """The model of a valid `drift` object (`checked`: its values are known valid, `drift_problems` is not
        run again)."""
        def per_level(v: Any) -> float | tuple[float, ...]:
            return tuple(v) if isinstance(v, list) else v

        fields = {"nu": per_level(value["nu"]), "nu_sigma": per_level(value.get("nu_sigma", 0.0)),
                  "t0_s": value.get("t0_s", DEFAULT_T0_S)}
        return _unchecked(cls, fields) if checked else cls(**fields)


def law_problems(model: NoiseModel | Mapping[str, object], top_uS: float, path: str) -> list[str]:
    """The problem of a polynomial noise law whose sigma exceeds `MAX_NOISE_uS` somewhere on [0, top_uS], the
    conductances a device of the chip holds (`top_uS`: the largest of the top level and `stuck_high_uS`), if
    any; the message names the worst conductance. A valid table (or a `model` with other problems) has none.

    The law's maximum on the interval is at an end or where its derivative is 0: those candidates (and a
    grid, for roots that numpy finds inexactly) are evaluated."""
    law = model.polynomial if isinstance(model, NoiseModel) else model.get("polynomial")
    g_ref = model.g_ref_uS if isinstance(model, NoiseModel) else model.get("g_ref_uS", 1.0)
    if not isinstance(law, (list, tuple)) or not law:
        return []
    coefficients = np.trim_zeros(np.asarray(law, dtype=np.float64), "b")
    if coefficients.size == 0:
        return []
    # in u = G / top_uS on [0, 1]: d_k = c_k (top / g_ref)^k (at most 1e6 x 1e12^7, finite)
    scaled = coefficients * (float(top_uS) / float(g_ref)) ** np.arange(coefficients.size)  # type: ignore[arg-type]
    if not np.any(scaled):  # the law underflows to 0 everywhere on the interval
        return []
    u = np.linspace(0.0, 1.0, 1025)
    # the roots without terms negligible on [0, 1] (a subnormal top coefficient overflowed the companion matrix)
    size = int(np.flatnonzero(np.abs(scaled) > 1e-12 * np.abs(scaled).max())[-1]) + 1
    if size > 2:
        try:
            with np.errstate(all="ignore"):
                roots = np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(scaled[:size]))
            u = np.concatenate([u, np.clip(roots[np.abs(roots.imag) <= 1e-9 * (1 + np.abs(roots.real))].real, 0, 1)])
        except np.linalg.LinAlgError:  # the grid alone
            pass
    with np.errstate(over="ignore", invalid="ignore"):
        sigma = np.nan_to_num(np.polynomial.polynomial.polyval(u, scaled), nan=np.inf)
    worst = int(np.argmax(sigma))
    if sigma[worst] <= MAX_NOISE_uS:
        return []
    return [f"{join(path, 'polynomial')}: sigma({u[worst] * top_uS:.6g} uS) = {sigma[worst]:.3g} uS is "
            f"more than leac accepts ({MAX_NOISE_uS:g} uS); the law must stay within it from 0 to {top_uS:g} uS "
            "(the top level or stuck_high_uS, the conductances the chip's devices hold)"]


def top_conductance_uS(levels_uS: object, stuck_high_uS: object) -> float | None:
    """The largest conductance a device of the chip is meant to hold: the top level or `stuck_high_uS` (None
    when either is not a valid number, which its own check names)."""
    if not isinstance(levels_uS, (list, tuple)) or not levels_uS:
        return None
    values = [levels_uS[-1], stuck_high_uS]
    if any(number_problem(v, "") is not None for v in values):
        return None
    return max(float(v) for v in values)  # type: ignore[arg-type]


def variability_problems(values: Mapping[str, object], path: str, *, levels_uS: object,
                         stuck_high_uS: object) -> list[str]:
    """Problems of the variability keys of a `device` mapping (given as JSON), their tables' lengths and the
    noise laws' bound over the chip's conductances (`law_problems`) included; `levels_uS` and `stuck_high_uS`
    are the device's (the file's, or the defaults), checked elsewhere."""
    problems: list[str] = []
    for key in VARIABILITY_KEYS:
        if key in values:
            check = drift_problems if key == "drift" else noise_model_problems
            problems += check(values[key], join(path, key))
    programming = values.get("programming")
    model = programming.get("model") if isinstance(programming, Mapping) else None
    if "write_noise_model" in values and model is not None and model != "gaussian":
        problems.append(f'{join(path, "write_noise_model")}: given, but the {show(model)} programming model makes '
                        'its own write error (leave it out, or use "gaussian")')
    if not problems and isinstance(levels_uS, (list, tuple)):
        problems += level_table_problems(values, len(levels_uS), path)
        top = top_conductance_uS(levels_uS, stuck_high_uS)
        for key in ("write_noise_model", "read_noise_model"):
            if key in values and top is not None:
                problems += law_problems(values[key], top, join(path, key))  # type: ignore[arg-type]
    return problems


_Model = TypeVar("_Model", "NoiseModel", "DriftModel")


def _unchecked(cls: type[_Model], values: Mapping[str, Any]) -> _Model:
    """A `NoiseModel` or `DriftModel` of `values` without its constructor's checks: for `parse_variability`,
    whose values `variability_problems` has checked (a chip file's tables are checked once, not twice)."""
    model: _Model = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(model, name, _floats(value))
    return model


def parse_variability(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `DeviceModel` keyword arguments of a valid `device` mapping's variability keys (checked by
    `variability_problems`, so not again)."""
    out: dict[str, Any] = {}
    for key in VARIABILITY_KEYS:
        if key in values:
            out[key] = (DriftModel.from_json(values[key], checked=True) if key == "drift"
                        else NoiseModel.from_json(values[key], checked=True))
    return out


def noise_figures_uS(device: DeviceModel) -> tuple[float, float]:
    """The device's noise as the two constants of the plain model, for what needs one figure each (compile's
    noise-aware scale, `passes.quantize.pair_noise_variance`): the write sigma and the uniform read half-width r
    with the same variance, averaged over the levels, as the noise models give them: sqrt(mean sigma_w^2) and
    sqrt(3 mean sigma_r^2) (a uniform +-r has variance r^2 / 3). Without the models, `write_noise_uS` and
    `read_noise_uS` exactly."""
    levels = np.asarray(device.levels_uS, dtype=np.float64)
    write, read = device.write_noise_uS, device.read_noise_uS
    if device.write_noise_model is not None:
        write = float(np.sqrt(np.mean(np.square(device.write_noise_model.sigma(levels, device.levels_uS)))))
    if device.read_noise_model is not None:
        read = float(np.sqrt(3.0 * np.mean(np.square(device.read_noise_model.sigma(levels, device.levels_uS)))))
    return write, read


MAX_AFTER_S = 1e10
"""The latest time after programming leac simulates (seconds, about 317 years)."""
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 365.25 * 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a duration: a number of seconds, or text such as "10s", "1.5h", "2d", "30min", "1y" (units
    s, m or min, h, d, w, y = 365.25 d; a bare number is seconds). The one parser of `--after` and `after=`.

    Raises:
        ValueError: not a duration, negative, not finite or beyond `MAX_AFTER_S` (the message says which).
    """
    if isinstance(value, str):
        text = value.strip().lower()
        number, unit = text, "s"
        for name in sorted(_UNITS, key=len, reverse=True):
            if text.endswith(name):
                number, unit = text[: -len(name)].strip(), name
                break
        try:
            seconds = float(number) * _UNITS[unit]
        except ValueError:
            raise ValueError(f"{value!r} is not a duration (a number and a unit: s, min, h, d, w or y, "
                             "e.g. 10s, 1h, 2d)") from None
    elif isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        seconds = float(value)
    else:
        raise ValueError(f"{value!r} is not a duration (seconds, or text such as 1h)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration of at least 0 seconds")
    if seconds > MAX_AFTER_S:
        raise ValueError(f"{value!r} is more than leac simulates ({MAX_AFTER_S:g} s, about 317 years)")
    return seconds
