"""The compile options are defined once (lea_compiler/options.py): the dataclass, the API keywords and the
`leac compile` flags must name the same set, with the same defaults and help texts."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing
from collections.abc import Mapping  # noqa: F401 - option types are eval()ed here

import numpy as np
import onnx
import pytest

import lea_compiler as leac
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import build_parser, main
from lea_compiler.errors import UsageError
from lea_compiler.options import (
    OPTIONS,
    CompileKeywords,
    CompileOptions,
    from_keywords,
    help_text,
    keywords_from_args,
    option_default,
    option_type,
    recorded_options,
)
from lea_compiler.program import Program
from tests.helpers import mlp_model

API_OWN = {
    "compile": {"model", "chip", "calibrate_on"},
    "compile_many": {"model", "chips", "out_dir", "jobs", "scheduler", "calibrate_on", "on_result"},
}
"""The API functions' keywords that are not compile options (inputs, and how to run)."""


def _compile_parser() -> argparse.ArgumentParser:
    subparsers = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return subparsers.choices["compile"]


def _option_actions() -> dict[str, argparse.Action]:
    """The `leac compile` flags in its "compile options" group, by dest."""
    group = next(g for g in _compile_parser()._action_groups if g.title == "compile options")
    return {action.dest: action for action in group._group_actions}


def test_the_flags_the_api_keywords_and_the_fields_are_one_set() -> None:
    names = set(OPTIONS)
    assert set(_option_actions()) == names
    for function, own in API_OWN.items():
        params = inspect.signature(getattr(leac, function)).parameters
        assert set(params) - own == names, function
        assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in names)
    assert set(CompileKeywords.__annotations__) == names
    # every field is filled by exactly one option, and the options cover every field
    fields = [f.name for f in dataclasses.fields(CompileOptions)]
    filled = [f.name for f in dataclasses.fields(CompileOptions) if f.metadata["option"].name in names]
    assert filled == fields
    assert {f.metadata["option"].name for f in dataclasses.fields(CompileOptions)} == names


def test_the_flags_outside_the_options_group_are_not_options() -> None:
    """A compile option given by hand outside the table would show up here."""
    others = {a.dest for a in _compile_parser()._actions} - set(_option_actions())
    assert others == {"help", "model", "chip", "chip_dir", "jobs", "scheduler", "output", "calibrate", "json",
                      "dump_ir", "time_passes"}


def test_the_typed_dict_has_the_options_types() -> None:
    hints = typing.get_type_hints(CompileKeywords)
    for name in OPTIONS:
        assert hints[name] == eval(option_type(name)), name  # a type as written in options.py


def test_defaults_agree_everywhere() -> None:
    args = _compile_parser().parse_args(["m.onnx", "--chip", "c.json"])
    assert from_keywords(keywords_from_args(args)) == CompileOptions()
    assert from_keywords({}) == CompileOptions()
    assert from_keywords({name: option_default(name) for name in OPTIONS}) == CompileOptions()
    signature = inspect.signature(leac.compile)
    assert {name: signature.parameters[name].default for name in OPTIONS} == {
        name: option_default(name) for name in OPTIONS}


def test_every_option_is_in_the_help_with_its_text(capsys) -> None:
    assert main(["compile", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, option in OPTIONS.items():
        assert option.cli_flag in text
        assert " ".join(help_text(name).split()) in text, name
    assert "(default 3)" in help_text("k") and "(default 10)" in help_text("time_limit_s")
    assert "(default: k; --ensemble layer only)" in help_text("beta")


def test_block_is_the_two_block_fields() -> None:
    assert from_keywords({"block": (8, 9)}) == CompileOptions(block_rows=8, block_cols=9)
    args = _compile_parser().parse_args(["m.onnx", "--block", "8x9", "--time-limit", "2", "-k", "2"])
    assert from_keywords(keywords_from_args(args)) == CompileOptions(k=2, time_limit_s=2.0, block_rows=8,
                                                                     block_cols=9)
    with pytest.raises(UsageError, match="--block takes ROWSxCOLS"):
        keywords_from_args(_compile_parser().parse_args(["m.onnx", "--block", "8by9"]))


@pytest.mark.parametrize("function", ["compile", "compile_many"])
def test_an_unknown_keyword_is_a_usage_error_naming_it_and_the_valid_ones(function, tmp_path) -> None:
    with pytest.raises(UsageError) as caught:
        if function == "compile":
            leac.compile(tmp_path / "m.onnx", tmp_path / "c.json", kk=3)  # type: ignore[call-arg]
        else:
            leac.compile_many(tmp_path / "m.onnx", [], tmp_path / "out", time_limit=3)  # type: ignore[call-arg]
    message = str(caught.value)
    assert message.startswith(f"leac.{function}: unknown keyword ")
    assert ("'kk'" if function == "compile" else "'time_limit'") in message
    assert all(name in message for name in [*OPTIONS, "calibrate_on"])
    with pytest.raises(UsageError, match="unknown keywords 'a', 'b'"):
        from_keywords({"a": 1, "b": 2, "k": 2})


def test_the_api_and_the_cli_compile_the_same_program(tmp_path) -> None:
    model, chip = tmp_path / "m.onnx", tmp_path / "c.json"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=8, rows=12, cols=12, stuck_high=0.05, stuck_low=0.01, seed=2), chip)
    options = {"k": 2, "beta": 1, "placer": "greedy", "block": (4, 6), "bias": "row", "encoding": "rme",
               "seed": 5, "time_limit_s": 3.0, "scale": "per-layer", "scale_noise": "chip", "compensate": "none",
               "reads": 3, "objective": "balanced"}
    program = leac.compile(model, chip, **options)  # type: ignore[arg-type]
    assert main(["compile", str(model), "--chip", str(chip), "-k", "2", "--beta", "1", "--placer", "greedy",
                 "--block", "4x6", "--bias", "row", "--encoding", "rme", "--seed", "5", "--time-limit", "3",
                 "--scale", "per-layer", "--scale-noise", "chip", "--compensate", "none", "--reads", "3",
                 "--objective", "balanced", "-o", str(tmp_path / "p.leac")]) == 0
    assert Program.load(tmp_path / "p.leac").to_bytes() == program.to_bytes()
    assert program.options == recorded_options(from_keywords(options))  # every field, reads too
    assert set(program.options) == set(dataclasses.asdict(from_keywords(options))) - {"budget"}  # -k auto only
    assert program.reads == 3
    assert program.options["objective"] == program.placement["objective"] == "balanced"


def test_an_option_at_its_default_that_programs_did_not_have_is_not_recorded() -> None:
    """`objective`, `budget` and `reads` came after Programs were written: at their defaults the Program has no
    key for them, so a default compile is byte-identical to one from before; any other value is recorded. Every
    other option is always recorded."""
    late = ["objective", "budget", "reads"]
    assert [name for name, option in OPTIONS.items() if option.omit_default] == late
    default = recorded_options(CompileOptions())
    assert not set(late) & set(default)
    assert default == {key: value for key, value in dataclasses.asdict(CompileOptions()).items() if key not in late}
    assert recorded_options(CompileOptions(reads=2))["reads"] == 2
    assert recorded_options(CompileOptions(k="auto", budget="50%"))["budget"] == "50%"
    assert recorded_options(CompileOptions(objective="latency"))["objective"] == "latency"
    assert list(recorded_options(CompileOptions(k="auto", reads=2, budget=10, objective="balanced"))) == [
        f.name for f in dataclasses.fields(CompileOptions)]


@pytest.mark.parametrize("keywords, message", [
    ({"placer": "foo"}, "unknown placer 'foo'; choose one of cpsat, greedy, random"),
    ({"objective": "fast"}, "unknown placement objective 'fast'; choose one of error, latency, balanced"),
    ({"encoding": None}, "unknown encoding None; choose one of simple, rme, joint"),
    ({"compensate": "rows"}, "unknown compensation 'rows'; choose one of columns, none"),
    ({"seed": "a"}, "seed must be an integer >= 0, got 'a'"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"seed": 1.5}, "seed must be an integer >= 0, got 1.5"),
    ({"seed": True}, "seed must be an integer >= 0, got True"),
    ({"time_limit_s": "x"}, "time_limit_s must be a number, got 'x'"),
    ({"time_limit_s": float("nan")}, "time_limit_s must be a finite number of seconds above 0"),
    ({"block": (2.5, 3)}, "block's rows must be an integer >= 1, got 2.5"),
    ({"block": (5, 5, 5)}, "block must be None or a pair (rows, cols) of integers >= 1, got (5, 5, 5)"),
    ({"block": "5x5"}, "block must be None or a pair (rows, cols) of integers >= 1, got '5x5'"),
    ({"block": 5}, "block must be None or a pair (rows, cols) of integers >= 1, got 5"),
    ({"reads": "2"}, "reads (reads per inference) must be an integer from 1 to 64, got '2'"),
    ({"ensemble": "network", "k": "fc1=2,default=1"}, "the network ensemble takes one k for the whole network"),
    # review: these failed only after the model was imported and canonicalized
    ({"budget": 10}, "--budget is the device budget of -k auto; with -k 3 the counts are given"),
    ({"k": "auto", "budget": True}, "--budget takes a number of devices or a percentage of the chip"),
    ({"k": "auto", "budget": -5}, "--budget must be a positive number of devices or a percentage, got -5"),
    ({"k": "auto", "budget": "150%"}, "--budget 150%: a percentage of the chip's devices must be in (0, 100]"),
])
def test_a_wrong_api_value_is_a_usage_error_before_any_work(keywords, message) -> None:
    """Wrong compile keywords were CompileErrors from the passes (exit 1, "a pass cannot do its job"), bare
    TypeErrors (block="5x5", block=5, time_limit_s="x"), or recorded in the Program as given (seed "a", 1.5, -1,
    block (2.5, 3)): each is now a UsageError naming the keyword, as the CLI's flags are."""
    with pytest.raises(UsageError) as info:
        from_keywords(keywords)
    assert message in str(info.value)


def test_numpy_numbers_are_taken_as_python_ones_and_the_program_saves(tmp_path) -> None:
    """seed=np.int64(1) compiled, then Program.save failed: 'Object of type int64 is not JSON serializable'."""
    options = from_keywords({"seed": np.int64(1), "reads": np.int64(2), "block": (np.int64(5), np.int64(4)),
                             "time_limit_s": np.float32(2.0)})
    assert (options.seed, options.reads, options.block_rows, options.block_cols, options.time_limit_s) == (1, 2, 5, 4,
                                                                                                         2.0)
    assert all(type(value) in (int, float) for value in (options.seed, options.reads, options.block_rows,
                                                          options.block_cols, options.time_limit_s))
    model, chip = tmp_path / "m.onnx", tmp_path / "c.json"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=16, rows=16, cols=16, seed=0), chip)
    program = leac.compile(model, chip, k=1, placer="greedy", seed=np.int64(1))
    program.save(tmp_path / "p.leac")
    assert Program.load(tmp_path / "p.leac").options["seed"] == 1
