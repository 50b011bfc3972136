"""The compile options, defined once: `CompileOptions`' fields, with what users see of each in their metadata.

A compile option reaches the compiler three ways: `CompileOptions(...)` in the library, a keyword argument of
`leac.compile` / `leac.compile_many`, and a flag of `leac compile`. All three come from the fields below:

- each field's metadata holds its `Option`: the API keyword (and the flag's dest), the `--help` text, the
  flag, the choices and how `--help` states the default, which is the field's default;
- `OPTIONS` lists them in field order; `add_arguments` makes the `leac compile` flags from it, and
  `from_keywords` builds a `CompileOptions` from API keywords (or parsed flags) and names an unknown one;
- `CompileKeywords` types the API's `**options` for type checkers, which cannot read `OPTIONS`; a test checks
  that it matches.

One option may fill more than one field: `block=(rows, cols)` (`--block RxC`) is the fields `block_rows` and
`block_cols`, which the Program records as they are.

The Program records every field (`recorded_options`), except that an option added after Programs were written
(`Option.omit_default`, e.g. `reads`) is recorded only when it is not its default: a Program without the key
means the default, and a default compile stays byte-identical to one made before the option existed.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

from lea_compiler.analog_time import BALANCED_TOLERANCE, OBJECTIVES
from lea_compiler.arguments import check_keywords, int_argument, number_argument
from lea_compiler.chip_limits import time_limit_problem
from lea_compiler.errors import UsageError
from lea_compiler.layer_sizes import AUTO, CountSpec, canonical, parse_budget
from lea_compiler.passes.compensate import COMPENSATE_MODES
from lea_compiler.passes.place import PLACER_NAMES
from lea_compiler.passes.quantize import BIAS_MODES, ENCODINGS, SCALE_MODES
from lea_compiler.program.checks import MAX_READS, reads_problem

SCALE_NOISE_MODES = ("none", "chip")
"""`none`: the weight scale minimises the quantization error alone. `chip`: the quantization error plus the
chip's write and read noise (passes/quantize.py)."""

ENSEMBLE_MODES = ("layer", "network")
"""`layer`: k copies of every layer, averaged after every layer (LEA). `network`: k copies of the whole
network, averaged at the outputs (a committee machine; see passes/replicate_network.py)."""


def parse_block(text: str | None) -> tuple[int, int] | None:
    """`--block ROWSxCOLS` as (rows, cols), or None when not given.

    Raises:
        UsageError: the text is not two whole numbers of at least 1 joined by an x.
    """
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(re.fullmatch(r"[0-9]+", part.strip()) for part in parts):
        raise UsageError(f"--block takes ROWSxCOLS, e.g. 25x25, got {text!r}")
    rows, cols = int(parts[0]), int(parts[1])
    if rows < 1 or cols < 1:  # 0 would read as "not given" further on: the chip's array shape
        raise UsageError(f"--block takes ROWSxCOLS of at least 1 each, e.g. 25x25, got {text!r}")
    return rows, cols


def _split_block(block: tuple[int, int] | None) -> tuple[int | None, int | None]:
    """The fields `block_rows`, `block_cols` of an API `block` value (None, or a (rows, cols) pair).

    Raises:
        UsageError: anything else (a text such as "5x5" is `--block`'s, not the API's).
    """
    if block is None:
        return None, None
    if isinstance(block, str | bytes) or not isinstance(block, Sequence) or len(block) != 2:
        raise UsageError(f"block must be None or a pair (rows, cols) of integers >= 1, got {block!r}")
    return block[0], block[1]


_CHOICE_NAMES = {"objective": "placement objective", "scale": "scale mode", "bias": "bias mode",
                 "compensate": "compensation", "scale_noise": "scale noise"}
"""What a message calls a choice option's value (`unknown placement objective 'fast'`), where not its name."""


@dataclass(frozen=True)
class Option:
    """One compile option as users give it: `leac.compile(NAME=...)` and `leac compile FLAG ...`.

    Attributes:
        name: The API keyword; also the dest of the flag in the parsed arguments.
        help: The flag's `--help` text, without the default (which `help_text` adds).
        flag: The flag; default `-n` for a one-letter name, else `--name-with-dashes`.
        api_type: The API value's type as written in `CompileKeywords`; default the field's type.
        choices: The values the option takes, if it is one of a list.
        metavar: How `--help` names the flag's value.
        default_text: How `--help` states a default that is not a value (e.g. "k"); default the field's default.
        default_note: What `--help` adds after the default.
        parse: The flag's text -> the API value, where argparse's types do not do it (raises `UsageError`).
        split: The API value -> the values of the fields it fills (an option of more than one field).
        omit_default: The Program records the field only when it is not its default (module docstring).
    """

    name: str
    help: str
    flag: str = ""
    api_type: str = ""
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    default_text: str | None = None
    default_note: str | None = None
    parse: Callable[[Any], Any] | None = None
    split: Callable[[Any], tuple[Any, ...]] | None = None
    omit_default: bool = False

    @property
    def cli_flag(self) -> str:
        """The `leac compile` flag."""
        return self.flag or (f"-{self.name}" if len(self.name) == 1 else "--" + self.name.replace("_", "-"))


def _option(option: Option) -> dict[str, Option]:
    """A field's metadata holding its option."""
    return {"option": option}


def _count_parser(what: str, default: int | None) -> Callable[[str | None], CountSpec | None]:
    """A count flag's text (`-k 3`, `-k fc1=4,default=2`) as its API value; `default` when not given."""
    return lambda text: default if text is None else canonical(text, what)


def _parse_budget(text: str | None) -> int | str | None:
    """`--budget`'s text: a number of devices as an int, a percentage as its text (checked with the chip)."""
    if text is None:
        return None
    return int(text) if re.fullmatch(r"[0-9]+", text.strip()) else text.strip()


_BLOCK = Option(
    "block", "block shape", api_type="tuple[int, int] | None", metavar="ROWSxCOLS",
    default_text="the chip's main array shape", parse=parse_block, split=_split_block,
)


@dataclass(frozen=True)
class CompileOptions:
    """Everything a compile depends on besides the model and the chip (the module docstring says how the API and
    the command line read these fields)."""

    k: int | str = field(default=3, metadata=_option(Option(
        "k", "copies of every block, alpha: one count for every layer, layer=count pairs with default=N for "
        "the layers not named (e.g. fc1=4,fc2=2,default=3; names as leac inspect prints them), or auto: chosen "
        "per layer within --budget on the --calibrate data; with --ensemble network, copies of the network "
        "(one count)",
        api_type="int | str | Mapping[str, int]", metavar="K", parse=_count_parser("-k", 3))))
    beta: int | str | None = field(default=None, metadata=_option(Option(
        "beta", "copies averaged per output column: one count, or layer=count pairs (a layer not named: "
        "default=N, else its k)", api_type="int | str | Mapping[str, int] | None", metavar="B",
        default_text="k; --ensemble layer only", parse=_count_parser("--beta", None))))
    encoding: str = field(default="joint", metadata=_option(Option(
        "encoding",
        "level pairs for a weight: joint (the averaged copies of each column encoded together, a sigma-delta "
        "across copies: their mean is about k times finer than one copy, and healthy copies make up for known "
        "stuck devices; at k = 1 it is simple's pairs with rme's partner rule); simple (one device at the lowest "
        "level, every copy the same); rme (reduced mapping error: any pair, and stuck devices' partners re-chosen)",
        choices=ENCODINGS)))
    placer: str = field(default="cpsat", metadata=_option(Option(
        "placer", "cpsat: OR-Tools, exact where it can prove it; greedy / random: the paper's baselines",
        choices=tuple(sorted(PLACER_NAMES)))))
    time_limit_s: float = field(default=10.0, metadata=_option(Option(
        "time_limit_s", "solver time budget in seconds (deterministic time for CP-SAT), above 0 and at most 86400",
        flag="--time-limit", metavar="S")))
    seed: int = field(default=0, metadata=_option(Option("seed", "seed for the solver and the random placer")))
    objective: str = field(default="error", metadata=_option(Option(
        "objective",
        "what placement minimises: error (the mapping error); latency (first the minimum mapping error, then, "
        "at that error, the analog time: every layer's busiest array's serial reads, so copies spread over idle "
        "arrays and their reads overlap); balanced (the analog time, with the mapping error allowed "
        f"{100 * BALANCED_TOLERANCE:g}% above that minimum)",
        choices=OBJECTIVES, omit_default=True)))
    block_rows: int | None = field(default=None, metadata=_option(_BLOCK))
    block_cols: int | None = field(default=None, metadata=_option(_BLOCK))
    scale: str = field(default="per-column", metadata=_option(Option(
        "scale", "one weight scale per output column or per layer", choices=SCALE_MODES)))
    bias: str = field(default="digital", metadata=_option(Option(
        "bias", "bias added digitally, or as one more crossbar row", choices=BIAS_MODES)))
    ensemble: str = field(default="layer", metadata=_option(Option(
        "ensemble",
        "layer: k copies of every layer, averaged after every layer (LEA); network: k copies of the whole network, "
        "each run end to end on its own devices, averaged only at the outputs (a committee machine; layers appear "
        "as LAYER@0 .. LAYER@k-1, each with alpha = beta = 1; an ArgMax label output is re-applied to the mean of "
        "its float input). Both use 2*k*m*n devices per m x n layer",
        choices=ENSEMBLE_MODES)))
    compensate: str = field(default="columns", metadata=_option(Option(
        "compensate",
        "columns: with --calibrate, fit a digital gain and offset per output column that cancel the coherent error "
        "of the chip's known stuck devices (2 digital ops per column); none: the paper's LEA alone",
        choices=COMPENSATE_MODES, default_note="without --calibrate nothing is fitted")))
    scale_noise: str = field(default="none", metadata=_option(Option(
        "scale_noise",
        "none: the weight scale minimises the quantization error; chip: the quantization error plus the chip's "
        "write and read noise, clipping more of the largest weights where the noise is the larger error",
        choices=SCALE_NOISE_MODES)))
    budget: int | str | None = field(default=None, metadata=_option(Option(
        "budget",
        "with -k auto: the devices all copies may use, a number or a percentage of the chip's devices (e.g. 50%); "
        "every layer's k is then chosen to keep the model's answers on the --calibrate data (docs/cli.md)",
        api_type="int | str | None", metavar="DEVICES", default_text="90% of the chip", parse=_parse_budget,
        omit_default=True)))
    reads: int = field(default=1, metadata=_option(Option(
        "reads",
        f"reads per inference, 1 to {MAX_READS}: each copy half's region is read N times and the N digitised "
        "column currents averaged, which divides the read noise's variance by about N, for N times the reads, "
        "ADC conversions, device reads and analog time (the DAC holds its voltages over the N reads)",
        metavar="N", omit_default=True)))

    def __post_init__(self) -> None:
        """Check every field as the caller gave it (a wrong value is a wrong call: UsageError, before any work),
        and hold numbers as Python's own (a numpy integer would not go into the Program's JSON).

        Raises:
            UsageError: a count, a choice, the seed, the time limit, the block shape or the reads out of range, or
                per-layer counts or beta with the network ensemble.
        """
        object.__setattr__(self, "k", canonical(self.k, "k"))
        if self.beta is not None:
            object.__setattr__(self, "beta", canonical(self.beta, "beta"))
        for f in dataclasses.fields(self):
            choices = f.metadata["option"].choices
            value = getattr(self, f.name)
            if choices is not None and (not isinstance(value, str) or value not in choices):
                raise UsageError(f"unknown {_CHOICE_NAMES.get(f.name, f.name)} {value!r}; choose one of "
                                 f"{', '.join(choices)}")
        if self.budget is not None:
            if self.k != AUTO:
                raise UsageError(f"--budget is the device budget of -k auto; with -k {self.k} the counts are given")
            parse_budget(self.budget, 1)  # its form (a count or a percentage); its size is the chip's to judge
        object.__setattr__(self, "seed", int_argument(self.seed, "seed", 0))
        limit = number_argument(self.time_limit_s, "time_limit_s")
        if (problem := time_limit_problem(limit)) is not None:
            raise UsageError(f"time_limit_s {problem}")
        object.__setattr__(self, "time_limit_s", limit)
        for name in ("block_rows", "block_cols"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int_argument(getattr(self, name),
                                                            f"block's {name.removeprefix('block_')}", 1))
        if (problem := reads_problem(self.reads)) is not None:
            raise UsageError(f"reads (reads per inference) {problem}")
        object.__setattr__(self, "reads", int(self.reads))
        if self.ensemble == "network" and not isinstance(self.k, int):
            raise UsageError(f"the network ensemble takes one k for the whole network, not per-layer counts "
                             f"({self.k})")
        if self.ensemble == "network" and self.beta is not None:
            raise UsageError("beta (copies averaged per output column) applies to the layer ensemble only; "
                             "the network ensemble averages all k copies at the outputs")

    @property
    def effective_beta(self) -> CountSpec:
        return self.k if self.beta is None else self.beta


@dataclass(frozen=True)
class _Entry:
    """An option with the fields it fills and its default as an API value."""

    option: Option
    fields: tuple[dataclasses.Field[Any], ...]

    @property
    def default(self) -> Any:
        """The API value that leaves the fields at their defaults."""
        return None if self.option.split is not None else self.fields[0].default

    @property
    def api_type(self) -> str:
        return self.option.api_type or str(self.fields[0].type)


def _entries() -> dict[str, _Entry]:
    fields: dict[str, list[dataclasses.Field[Any]]] = {}
    options: dict[str, Option] = {}
    for f in dataclasses.fields(CompileOptions):
        option = f.metadata["option"]
        options.setdefault(option.name, option)
        fields.setdefault(option.name, []).append(f)
    return {name: _Entry(options[name], tuple(fields[name])) for name in options}


_ENTRIES = _entries()

OPTIONS: dict[str, Option] = {name: entry.option for name, entry in _ENTRIES.items()}
"""The compile options by API keyword, in field order: `leac compile`'s flags and `leac.compile`'s keywords."""


class CompileKeywords(TypedDict, total=False):
    """The compile options as the keyword arguments of `leac.compile` and `leac.compile_many`, for type checkers
    (which cannot read `OPTIONS`; tests/test_options.py checks that the two agree, types included)."""

    k: int | str | Mapping[str, int]
    beta: int | str | Mapping[str, int] | None
    encoding: str
    placer: str
    time_limit_s: float
    seed: int
    objective: str
    block: tuple[int, int] | None
    scale: str
    bias: str
    ensemble: str
    compensate: str
    scale_noise: str
    budget: int | str | None
    reads: int


def recorded_options(options: CompileOptions) -> dict[str, Any]:
    """The options as the Program records them (`Program.options`): every field, in field order, except an
    `omit_default` option's at its default (the module docstring says why)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
            if not (f.metadata["option"].omit_default and getattr(options, f.name) == f.default)}


def option_default(name: str) -> Any:
    """The API default of option `name` (the value that leaves its fields at their defaults)."""
    return _ENTRIES[name].default


def option_type(name: str) -> str:
    """The type of option `name`'s API value, as written in `CompileKeywords`."""
    return _ENTRIES[name].api_type


def help_text(name: str) -> str:
    """The `--help` text of option `name`: its help, then its default (the field's, unless stated otherwise)."""
    option = _ENTRIES[name].option
    default = _ENTRIES[name].default
    if option.default_text is not None:
        stated = f"default: {option.default_text}"
    else:
        stated = f"default {default:g}" if isinstance(default, float) else f"default {default}"
    note = f"; {option.default_note}" if option.default_note else ""
    return f"{option.help} ({stated}{note})"


_CLI_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "int | None": int, "float": float, "str": str}


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add a flag for every compile option to `parser` (their dests are the API keywords)."""
    for name, entry in _ENTRIES.items():
        option = entry.option
        kwargs: dict[str, Any] = {"dest": name, "default": None if option.parse else entry.default,
                                  "help": help_text(name).replace("%", "%%")}  # argparse formats help with %
        if option.parse is None:
            kwargs["type"] = _CLI_TYPES[entry.api_type]
        if option.choices is not None:
            kwargs["choices"] = option.choices
        if option.metavar is not None:
            kwargs["metavar"] = option.metavar
        parser.add_argument(option.cli_flag, **kwargs)


def keywords_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The API keywords of parsed `leac compile` flags (`add_arguments`), each flag's text parsed.

    Raises:
        UsageError: a flag's text cannot be parsed (e.g. `--block 3by4`).
    """
    keywords = {}
    for name, option in OPTIONS.items():
        value = getattr(args, name)
        keywords[name] = option.parse(value) if option.parse is not None else value
    return keywords


def from_keywords(keywords: Mapping[str, Any], *, where: str = "compile options",
                  others: tuple[str, ...] = ()) -> CompileOptions:
    """`CompileOptions` from API keywords (any subset of `OPTIONS`; the rest keep their defaults).

    Args:
        keywords: Option name -> API value.
        where: Who was given them, for the message (e.g. "leac.compile").
        others: The caller's own keywords, listed in the message too.

    Raises:
        UsageError: a keyword is not a compile option; the message names it and lists the valid ones.
    """
    check_keywords(list(keywords), [*OPTIONS, *others], where)
    values: dict[str, Any] = {}
    for name, value in keywords.items():
        entry = _ENTRIES[name]
        split = entry.option.split
        parts = split(value) if split is not None else (value,)
        values.update({f.name: part for f, part in zip(entry.fields, parts, strict=True)})
    return CompileOptions(**values)


F = TypeVar("F", bound=Callable[..., Any])


def takes_options(func: F) -> F:
    """`func`, whose `**options` are compile options, with a signature that lists them (`help()`, IDEs,
    `inspect.signature`): keyword-only, each with its default and type, in `OPTIONS` order."""
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option_default(name),
                                 annotation=option_type(name)) for name in OPTIONS]
    func.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return func
