"""Copy counts per crossbar layer: `-k 3` for every layer, or `-k fc1=4,fc2=2,default=3` layer by layer.

A count option (`k`: copies programmed, alpha; `beta`: copies averaged per output column) is an int for every
layer, or a spec naming layers as `leac inspect` prints them, with `default` for the layers not named. A spec is
kept as its canonical text (layers in name order, `default` last), which the Program records; the passes
resolve it against the graph's crossbar layers (`counts`), where a name that is no layer is a usage error
listing the layers' names.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence

from lea_compiler.errors import UsageError

DEFAULT = "default"
_DIGITS = re.compile(r"[0-9]+")
AUTO = "auto"
"""`-k auto`: the counts chosen under a device budget (`lea_compiler.allocate`)."""
AUTO_SHARE = 0.9
"""`-k auto`'s budget without --budget: this share of the chip's devices, leaving room for the blocks' packing."""
_NAME = re.compile(r"^[^=,\s]+$")

CountSpec = int | str
"""An option's value: one count for every layer, or a canonical spec text (`canonical`)."""


def canonical(value: object, what: str = "k") -> CountSpec:
    """`value` (an int, a spec text or a {layer: count} mapping, `default` included) as an option's value:
    the int, or the spec's canonical text.

    Raises:
        UsageError: not a count >= 1, or a spec that does not read `name=count,...`.
    """
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a count >= 1 or layer=count pairs, got {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise UsageError(f"{what} must be at least 1, got {value}")
        return int(value)
    if isinstance(value, Mapping):
        pairs = [(str(name), count) for name, count in value.items()]
        bad = [name for name, _ in pairs if not _NAME.match(name)]
        if bad:
            raise UsageError(f"{what}: layer name {bad[0]!r} cannot be written in a count spec (no '=', ',' or "
                             "white space); give such a layer its count through default=N")
    elif isinstance(value, str):
        text = value.strip()
        if _DIGITS.fullmatch(text):
            return canonical(int(text), what)
        if text == AUTO and what.lstrip("-") == "k":
            return AUTO
        pairs = []
        for part in text.split(","):
            name, sep, count = part.partition("=")
            if not sep or not _NAME.match(name.strip()) or not _DIGITS.fullmatch(count.strip()):
                raise UsageError(f"{what}: {value!r} is neither a count nor layer=count pairs (e.g. "
                                 f"fc1=4,fc2=2,default=3; layer names as leac inspect prints them)")
            pairs.append((name.strip(), int(count)))
    else:
        raise UsageError(f"{what} must be a count >= 1 or layer=count pairs, got {type(value).__name__}")
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"{what}: {', '.join(repeated)} given more than once")
    for name, count in pairs:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise UsageError(f"{what}: {name}={count!r} is not a count >= 1")
    pairs = [(name, int(count)) for name, count in pairs]
    if not pairs:
        raise UsageError(f"{what}: no layer=count pairs")
    ordered = sorted((p for p in pairs if p[0] != DEFAULT), key=lambda p: p[0])
    ordered += [p for p in pairs if p[0] == DEFAULT]
    return ",".join(f"{name}={count}" for name, count in ordered)


def canonical_name_problem(name: str) -> bool:
    """Whether a layer's name cannot be written in a count spec (it holds '=', ',' or white space)."""
    return not _NAME.match(name)


def pairs_of(spec: CountSpec) -> dict[str, int]:
    """A canonical spec's {name: count} (`default` included); {default: n} for an int.

    Raises:
        UsageError: `auto`, which is no counts yet (`leac compile` chooses them).
    """
    if isinstance(spec, int):
        return {DEFAULT: spec}
    if spec == AUTO:
        raise UsageError("-k auto is chosen by leac compile (under --budget); give counts here")
    return {name: int(count) for name, _, count in (part.partition("=") for part in spec.split(","))}


def counts(spec: CountSpec, layers: Sequence[str], what: str = "k",
           fallback: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every layer's count under `spec`: its own, else `default`, else `fallback`'s (beta falls back to the
    layer's alpha).

    Raises:
        UsageError: a name that is no layer (the layers are listed), or a layer with no count.
    """
    given = pairs_of(spec)
    unknown = sorted(set(given) - set(layers) - {DEFAULT})
    if unknown:
        raise UsageError(f"{what}: no crossbar layer named {', '.join(map(repr, unknown))}; the layers are "
                         f"{', '.join(layers)} (as leac inspect prints them)")
    out = {}
    for name in layers:
        if name in given:
            out[name] = given[name]
        elif DEFAULT in given:
            out[name] = given[DEFAULT]
        elif fallback is not None:
            out[name] = fallback[name]
        else:
            raise UsageError(f"{what}: layer {name!r} has no count; name it or add default=N")
    return out


def largest(spec: CountSpec) -> int:
    """The largest count a spec gives any layer (what a `k` check on the spec's scale needs)."""
    return max(pairs_of(spec).values())


def ensemble_counts(k: CountSpec, beta: CountSpec | None, layers: Sequence[str]
                    ) -> tuple[dict[str, int], dict[str, int]]:
    """Every layer's (alpha, beta) under the `k` and `beta` options: beta defaults to the layer's alpha.

    Raises:
        UsageError: what `counts` raises, or a layer whose beta exceeds its alpha.
    """
    alpha = counts(k, layers, "k")
    averaged = dict(alpha) if beta is None else counts(beta, layers, "beta", fallback=alpha)
    over = [f"{name} (beta {averaged[name]}, k {alpha[name]})" for name in layers if averaged[name] > alpha[name]]
    if over:
        raise UsageError(f"beta must be between 1 and k for every layer: {', '.join(over)}")
    return alpha, averaged


def parse_budget(text: str | int | None, chip_devices: int) -> int:
    """`--budget` as devices: a count, or a percentage of the chip's devices (`50%`); None: `AUTO_SHARE` of the
    chip (blocks never pack an array completely, so a budget of the whole chip would not place).

    Raises:
        UsageError: not a positive count or a percentage in (0, 100].
    """
    if text is None:
        return int(chip_devices * AUTO_SHARE)
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 1:
            raise UsageError(f"--budget must be a positive number of devices or a percentage, got {text}")
        return text
    value = str(text).strip()
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", value):
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise UsageError(f"--budget {value}: a percentage of the chip's devices must be in (0, 100]")
        return max(1, int(chip_devices * percent / 100))
    if _DIGITS.fullmatch(value) and int(value) >= 1:
        return int(value)
    raise UsageError(f"--budget takes a number of devices or a percentage of the chip (e.g. 12000 or 50%), "
                     f"got {text!r}")
