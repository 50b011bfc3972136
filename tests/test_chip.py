"""Tests of lea_compiler/chip/: the leac-chip format, stuck maps, synthetic chips, map import."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lea_compiler.chip import (
    MAX_DEVICES,
    Array,
    Chip,
    Defect,
    DeviceModel,
    LineModel,
    Periphery,
    ProgrammingModel,
    chip_to_json,
    chip_to_text,
    decode_chip_json,
    import_maps,
    load_chip,
    load_conductance_map,
    parse_chip,
    save_chip,
    synth_chip,
)
from lea_compiler.chip.variability import DriftModel, NoiseModel
from lea_compiler.chip_limits import (
    LINE_RANGES,
    MIN_LEVEL_GAP,
    MIN_LINE_SEGMENT_OHM,
    PERIPHERY_RANGES,
    MAX_CONDUCTANCE_uS,
    MIN_CONDUCTANCE_uS,
)
from lea_compiler.errors import (
    BadDataError,
    InvalidChipError,
    InvalidInputError,
    UsageError,
)

MEASURED = Path(__file__).resolve().parents[2] / "shared" / "data" / "measured"
HIGH, LOW = "stuck_high", "stuck_low"

# --------------------------------------------------------------------------
# Strategies: valid random chips

_positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
_g = st.none() | st.floats(min_value=1e-3, max_value=1e4, allow_nan=False)
# Levels: a start and increments of at least 1e-3 of the largest possible top (1e6 / 1e6 = 1 ppm).
_levels = st.tuples(
    st.floats(min_value=1e-3, max_value=1e3, allow_nan=False),
    st.lists(st.floats(min_value=1.0, max_value=1e3, allow_nan=False), min_size=1, max_size=4),
).map(lambda t: tuple(np.cumsum([t[0], *t[1]]).tolist()))


# Programming models: the default (left out of the file), a gaussian one with more reads, a pulse one.
_programmings = st.one_of(
    st.just(ProgrammingModel()),
    st.integers(1, 64).map(lambda reads: ProgrammingModel(readback_reads=reads)),
    st.builds(
        ProgrammingModel, st.just("pulse"), st.floats(min_value=1e-6, max_value=1e6),
        st.floats(min_value=0.0, max_value=1e6), st.integers(1, 64),
    ),
)


# Line resistance: absent (ideal lines, left out of the file) or any values inside their ranges (a segment 0 or at
# least MIN_LINE_SEGMENT_OHM).
_segment = st.just(0.0) | st.floats(min_value=MIN_LINE_SEGMENT_OHM, max_value=LINE_RANGES["word_line_segment_ohm"][1])
_lines = st.one_of(
    st.just(LineModel()),
    st.builds(LineModel, _segment, _segment,
              *(st.floats(min_value=LINE_RANGES[key][0], max_value=LINE_RANGES[key][1])
                for key in ("driver_ohm", "sense_ohm"))),
)


def _noise_tables(levels: int) -> st.SearchStrategy[NoiseModel | None]:
    """No model (left out of the file), or a standard deviation per level."""
    sigma = st.floats(0.0, 1e3, allow_nan=False)
    return st.none() | st.lists(sigma, min_size=levels, max_size=levels).map(lambda t: NoiseModel(sigma_uS=t))


def _drifts(levels: int) -> st.SearchStrategy[DriftModel | None]:
    """No drift (left out of the file), or one with a number or a value per level for nu and nu_sigma."""
    exponent = st.floats(0.0, 1.0, allow_nan=False)
    either = exponent | st.lists(exponent, min_size=levels, max_size=levels).map(tuple)
    return st.none() | st.builds(DriftModel, either, either, st.floats(1e-9, 1e9, allow_nan=False))


def _in_range(key: str) -> st.SearchStrategy[float]:
    low, high = PERIPHERY_RANGES[key]
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


@st.composite
def chips(draw: st.DrawFn) -> Chip:
    """A valid chip: grid or list arrays, device and line defects without conflicts.

    Conflicts are avoided by construction: every line of an array has that
    array's line state, a device on a marked line takes that state, and a
    device marked twice keeps the state drawn the first time.
    """
    grid = draw(st.booleans())
    if grid:
        n, rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
        arrays = [Array(i, rows, cols) for i in range(n)]
    else:
        ids = draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=4, unique=True))
        arrays = [Array(i, draw(st.integers(1, 6)), draw(st.integers(1, 6))) for i in ids]
    defects: list[Defect] = []
    for arr in arrays:
        line_state = draw(st.sampled_from((HIGH, LOW)))
        marked_rows = draw(st.lists(st.integers(0, arr.rows - 1), max_size=2))
        marked_cols = draw(st.lists(st.integers(0, arr.cols - 1), max_size=2))
        defects += [Defect(arr.id, r, None, line_state, draw(_g)) for r in marked_rows]
        defects += [Defect(arr.id, None, c, line_state, draw(_g)) for c in marked_cols]
        states: dict[tuple[int, int], str] = {}
        for _ in range(draw(st.integers(0, 6))):
            r, c = draw(st.integers(0, arr.rows - 1)), draw(st.integers(0, arr.cols - 1))
            if r in marked_rows or c in marked_cols:
                state = line_state
            else:
                state = states.setdefault((r, c), draw(st.sampled_from((HIGH, LOW))))
            defects.append(Defect(arr.id, r, c, state, draw(_g)))
    levels = draw(_levels)
    programming = draw(_programmings)
    device = DeviceModel(
        levels_uS=levels,
        stuck_high_uS=draw(_positive),
        stuck_low_uS=draw(_positive),
        write_noise_uS=draw(st.floats(0, 100)),
        read_noise_uS=draw(st.floats(0, 100)),
        programming=programming,
        write_noise_model=draw(_noise_tables(len(levels))) if programming.model == "gaussian" else None,
        read_noise_model=draw(_noise_tables(len(levels))),
        drift=draw(_drifts(len(levels))),
    )
    periphery = Periphery(
        v_read_V=draw(_in_range("v_read_V")),
        dac_bits=draw(st.integers(2, 32)),
        adc_bits=draw(st.integers(2, 32)),
        adcs_per_array=draw(st.integers(1, 64)),
        clock_MHz=draw(_in_range("clock_MHz")),
        t_mvm_ns=draw(_in_range("t_mvm_ns")),
        t_adc_ns=draw(_in_range("t_adc_ns")),
        t_write_pulse_ns=draw(_in_range("t_write_pulse_ns")),
        e_device_read_pJ=draw(_in_range("e_device_read_pJ")),
        e_adc_pJ=draw(_in_range("e_adc_pJ")),
        e_dac_pJ=draw(_in_range("e_dac_pJ")),
        e_write_pulse_pJ=draw(_in_range("e_write_pulse_pJ")),
        lines=draw(_lines),
    )
    return Chip(
        arrays=tuple(arrays),
        defects=tuple(draw(st.permutations(defects))),
        device=device,
        periphery=periphery,
        name=draw(st.none() | st.text(max_size=20)),
        grid=grid,
    )


def _paths(obj: Any, path: str = "") -> list[tuple[str, list[Any]]]:
    """Every node below the root of a JSON document as (printed path, key path)."""
    out: list[tuple[str, list[Any]]] = []

    def walk(node: Any, printed: str, keys: list[Any]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                p = f"{printed}.{k}" if printed else k
                out.append((p, [*keys, k]))
                walk(v, p, [*keys, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                p = f"{printed}[{i}]"
                out.append((p, [*keys, i]))
                walk(v, p, [*keys, i])

    walk(obj, path, [])
    return out


def _set(obj: Any, keys: list[Any], value: Any) -> None:
    for k in keys[:-1]:
        obj = obj[k]
    obj[keys[-1]] = value


# --------------------------------------------------------------------------
# Round trip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chip=chips())
def test_valid_chips_round_trip_unchanged(chip: Chip, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("roundtrip")
    first, second = folder / "a.json", folder / "b.json"
    save_chip(chip, first)
    loaded = load_chip(first)
    assert loaded == chip
    save_chip(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    assert loaded.fingerprint() == chip.fingerprint()
    assert parse_chip(json.loads(chip_to_text(chip)), "text") == chip


@settings(max_examples=60, deadline=None)
@given(chip=chips(), data=st.data())
def test_any_corrupted_node_is_reported_with_its_path(chip: Chip, data: st.DataObject):
    document = chip_to_json(chip)
    printed, keys = data.draw(st.sampled_from(_paths(document)), label="path")
    bad = data.draw(st.sampled_from([True, None, float("nan"), [1], {"k": 1}]), label="value")
    _set(document, keys, bad)
    with pytest.raises(InvalidChipError) as info:
        parse_chip(document, "corrupt.json")
    # The node itself, or (for a replaced container) something inside it, is named.
    named = [p for p in info.value.problems if p.startswith(printed) and p[len(printed)] in ":.["]
    assert named, info.value.problems


def test_saved_file_layout_is_the_spec_order_with_models_in_full(tmp_path: Path):
    chip = Chip(arrays=(Array(3, 2, 2),), defects=(Defect(3, 1, None, LOW, 4.5),), name="n")
    save_chip(chip, tmp_path / "c.json")
    text = (tmp_path / "c.json").read_text(encoding="utf-8")
    document = json.loads(text)
    assert list(document) == [
        "format", "version", "name", "device", "periphery", "arrays", "defects",
    ]  # fmt: skip
    assert document["device"] == {
        "levels_uS": [133.0, 167.0, 200.0, 233.0],
        "stuck_high_uS": 500.0,
        "stuck_low_uS": 10.0,
        "write_noise_uS": 16.66,
        "read_noise_uS": 10.0,
    }
    assert list(document["periphery"]) == [
        "v_read_V", "dac_bits", "adc_bits", "adcs_per_array", "clock_MHz", "t_mvm_ns",
        "t_adc_ns", "t_write_pulse_ns", "e_device_read_pJ", "e_adc_pJ", "e_dac_pJ",
        "e_write_pulse_pJ",
    ]  # fmt: skip
    assert document["arrays"] == [{"id": 3, "rows": 2, "cols": 2}]
    assert '    {"array": 3, "row": 1, "state": "stuck_low", "g_uS": 4.5}' in text.splitlines()
    assert text.startswith('{\n  "format": "leac-chip",\n  "version": 1,\n')


def test_integers_in_float_fields_load_equal_to_floats(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "format": "leac-chip",
                "version": 1,
                "device": {"levels_uS": [133, 167, 200, 233], "stuck_high_uS": 500},
                "periphery": {"clock_MHz": 100, "dac_bits": 12},
                "arrays": {"count": 2, "rows": 25, "cols": 25},
                "defects": [{"array": 1, "row": 0, "col": 0, "state": "stuck_high", "g_uS": 900}],
            }
        ),
        encoding="utf-8",
    )
    chip = load_chip(path)
    assert chip == Chip(
        arrays=(Array(0, 25, 25), Array(1, 25, 25)),
        defects=(Defect(1, 0, 0, HIGH, 900.0),),
        grid=True,
    )
    assert isinstance(chip.device.levels_uS[0], float) and isinstance(chip.periphery.dac_bits, int)
    assert '"count": 2' in chip_to_text(chip) and '"g_uS": 900.0' in chip_to_text(chip)


def test_fingerprint_ignores_name_and_array_form_but_not_defects():
    grid = Chip(arrays=(Array(0, 3, 3), Array(1, 3, 3)), grid=True, name="a")
    listed = Chip(arrays=(Array(0, 3, 3), Array(1, 3, 3)), grid=False, name="b")
    assert grid.fingerprint() == listed.fingerprint()
    assert len(grid.fingerprint()) == 64
    broken = Chip(arrays=listed.arrays, defects=(Defect(0, 0, 0, HIGH),))
    assert broken.fingerprint() != listed.fingerprint()


# --------------------------------------------------------------------------
# The programming model (device.programming)

PAPER_CHIP = Path(__file__).resolve().parents[1] / "lea_compiler" / "data" / "paper_chip.json"
PAPER_CHIP_FINGERPRINT = "414fc2f663898671880190cc5971813e268db2c946faa4347dcd6add834cbb80"
"""The bundled chip's fingerprint as leac computed it before chips had a programming model (commit 96ee540)."""


def test_the_default_programming_model_leaves_the_bundled_chip_as_it_was():
    chip = load_chip(PAPER_CHIP)
    assert chip.device.programming == ProgrammingModel()
    assert chip_to_text(chip) == PAPER_CHIP.read_text(encoding="utf-8")
    assert chip.fingerprint() == PAPER_CHIP_FINGERPRINT
    assert "programming" not in chip_to_json(chip)["device"]
    # A default model given explicitly (in the file or in the constructor) is the same chip.
    document = json.loads(PAPER_CHIP.read_text(encoding="utf-8"))
    document["device"]["programming"] = {"model": "gaussian", "readback_reads": 1, "step_sigma_uS": 0}
    explicit = parse_chip(document, "c.json")
    assert explicit == chip and explicit.fingerprint() == PAPER_CHIP_FINGERPRINT
    rebuilt = DeviceModel(programming=ProgrammingModel("gaussian", None, 0.0, 1))
    assert rebuilt == DeviceModel()


def test_a_pulse_model_round_trips_with_its_fingerprint(tmp_path: Path):
    programming = ProgrammingModel("pulse", step_uS=4, step_sigma_uS=1.5, readback_reads=4)
    chip = Chip(arrays=(Array(0, 3, 3),), defects=(Defect(0, 1, 1, HIGH),), name="p",
                device=DeviceModel(programming=programming))
    assert programming.step_uS == 4.0 and type(programming.step_uS) is float
    save_chip(chip, tmp_path / "c.json")
    text = (tmp_path / "c.json").read_text(encoding="utf-8")
    assert '    "programming": {"model": "pulse", "step_uS": 4.0, "step_sigma_uS": 1.5, "readback_reads": 4}' \
        in text.splitlines()
    loaded = load_chip(tmp_path / "c.json")
    assert loaded == chip and loaded.device.programming == programming
    assert loaded.fingerprint() == chip.fingerprint()
    # The programming model is part of the chip: it changes the fingerprint, as the noise figures do.
    plain = Chip(arrays=chip.arrays, defects=chip.defects, name="p")
    assert plain.fingerprint() != chip.fingerprint()
    canonical = chip_to_json(chip)
    canonical.pop("name")
    expected = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    assert '"programming":{"model":"pulse","readback_reads":4,"step_sigma_uS":1.5,"step_uS":4.0}' in expected
    assert chip.fingerprint() == hashlib.sha256(expected.encode("utf-8")).hexdigest()


def test_a_gaussian_model_with_more_reads_writes_only_its_model_and_reads():
    chip = Chip(arrays=(Array(0, 2, 2),), device=DeviceModel(programming=ProgrammingModel(readback_reads=8)))
    assert chip_to_json(chip)["device"]["programming"] == {"model": "gaussian", "readback_reads": 8}
    assert parse_chip(json.loads(chip_to_text(chip)), "c.json") == chip


@pytest.mark.parametrize(
    ("programming", "expected"),
    [
        ({"model": "ideal"}, ['device.programming.model: "ideal" is not "gaussian" or "pulse"']),
        ({"model": 1}, ['device.programming.model: 1 is not "gaussian" or "pulse"']),
        ({"model": "pulse"}, ['device.programming.step_uS: missing (required by the "pulse" model)']),
        ({"model": "pulse", "step_uS": 0}, ["device.programming.step_uS: 0 is not positive"]),
        ({"model": "pulse", "step_uS": -4.0}, ["device.programming.step_uS: -4.0 is not positive"]),
        ({"model": "pulse", "step_uS": "4"}, ['device.programming.step_uS: "4" is not a number']),
        ({"model": "pulse", "step_uS": None}, ["device.programming.step_uS: null is not a number"]),
        ({"model": "pulse", "step_uS": 1e7},
         ["device.programming.step_uS: 1e+07 is outside the range leac accepts (1e-06 to 1e+06 uS)"]),
        ({"model": "pulse", "step_uS": 4, "step_sigma_uS": -1},
         ["device.programming.step_sigma_uS: -1 is negative"]),
        ({"model": "pulse", "step_uS": 4, "step_sigma_uS": 1e300},
         ["device.programming.step_sigma_uS: 1e+300 is outside the range leac accepts (0 to 1e+06 uS)"]),
        ({"step_uS": 4}, ['device.programming.step_uS: 4 is given, but the "gaussian" model has no pulse step '
                          '(leave it out, or use "pulse")']),
        ({"model": "gaussian", "step_sigma_uS": 1.5},
         ['device.programming.step_sigma_uS: 1.5 is given, but the "gaussian" model has no pulse step '
          '(leave it out, or use "pulse")']),
        ({"readback_reads": 0}, ["device.programming.readback_reads: 0 is not positive"]),
        ({"readback_reads": 65}, ["device.programming.readback_reads: 65 is more than leac supports (64)"]),
        ({"readback_reads": 4.0}, ["device.programming.readback_reads: 4.0 is not an integer"]),
        ({"readback_reads": True}, ["device.programming.readback_reads: true is not an integer"]),
        ({"modle": "pulse"}, ["device.programming.modle: unknown key (did you mean 'model'?)"]),
        ("pulse", ['device.programming: "pulse" is not a JSON object']),
        (None, ["device.programming: null is not a JSON object"]),
        ({"model": "pulse", "step_uS": -1, "step_sigma_uS": "x", "readback_reads": 0, "extra": 1},
         ["device.programming.extra: unknown key", "device.programming.step_uS: -1 is not positive",
          'device.programming.step_sigma_uS: "x" is not a number',
          "device.programming.readback_reads: 0 is not positive"]),
    ],
)  # fmt: skip
def test_each_bad_programming_value_is_refused_with_its_path(programming: Any, expected: list[str]):
    assert _problems({**_base(), "device": {"programming": programming}}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"model": "pulse", "step_uS": NaN}', "device.programming.step_uS: NaN is not a finite number"),
        ('{"model": "pulse", "step_uS": 4, "step_sigma_uS": Infinity}',
         "device.programming.step_sigma_uS: Infinity is not a finite number"),
        ('{"model": "pulse", "step_uS": 1e999}', "device.programming.step_uS: 1e999 is not a finite number"),
        ('{"model": "pulse", "model": "gaussian"}', "device.programming.model: key appears more than once"),
    ],
)
def test_non_finite_and_repeated_programming_values_in_a_file_are_refused(text: str, expected: str):
    base = json.dumps(_base())
    document = decode_chip_json(base[:-1] + f', "device": {{"programming": {text}}}}}', "c.json")
    assert expected in _problems(document)


def test_the_constructors_refuse_bad_programming_models_with_the_files_messages():
    with pytest.raises(InvalidChipError) as info:
        ProgrammingModel("pulse")
    assert info.value.problems == ['device.programming.step_uS: missing (required by the "pulse" model)']
    with pytest.raises(InvalidChipError) as info:
        ProgrammingModel("pulse", step_uS=float("nan"), step_sigma_uS=-2.0, readback_reads=np.int64(99))
    assert info.value.problems == [
        "device.programming.step_uS: NaN is not a finite number",
        "device.programming.step_sigma_uS: -2.0 is negative",
        "device.programming.readback_reads: 99 is more than leac supports (64)",
    ]
    with pytest.raises(InvalidChipError) as info:
        DeviceModel(programming={"model": "pulse", "step_uS": 4.0})  # type: ignore[arg-type]
    assert info.value.problems == ["device.programming: {'model': 'pulse', 'step_uS': 4.0} is not a ProgrammingModel"]
    assert ProgrammingModel(readback_reads=np.int16(3)).readback_reads == 3
    assert type(ProgrammingModel(readback_reads=np.int16(3)).readback_reads) is int


_PROGRAMMING_VALUES = [True, None, -1, 0, 0.0, -0.0, 1, 2.5, 4, 64, 65, 1e6, 1e7, 10**400, "x", "pulse",
                       "gaussian", [1], {"k": 1}, float("nan"), float("inf")]  # fmt: skip


def _bad_programming_keys(programming: dict[str, Any]) -> set[str]:
    """The keys of a `device.programming` object that docs/chip-format.md's rules refuse, written out plainly."""

    def real(v: Any, low: float, high: float) -> bool:
        return type(v) in (int, float) and low <= v <= high and math.isfinite(v)

    bad = {k for k in programming if k not in ("model", "step_uS", "step_sigma_uS", "readback_reads")}
    model = programming.get("model", "gaussian")
    if model not in ("gaussian", "pulse") or type(model) is not str:
        bad.add("model")
    if "step_uS" in programming:
        if model == "gaussian" or not real(programming["step_uS"], 1e-6, 1e6):
            bad.add("step_uS")
    elif model == "pulse":
        bad.add("step_uS")
    if "step_sigma_uS" in programming:
        sigma = programming["step_sigma_uS"]
        if not real(sigma, 0.0, 1e6) or (model == "gaussian" and sigma != 0):
            bad.add("step_sigma_uS")
    reads = programming.get("readback_reads", 1)
    if type(reads) is not int or not 1 <= reads <= 64:
        bad.add("readback_reads")
    return bad


@settings(max_examples=300, deadline=None)
@given(programming=st.dictionaries(
    st.sampled_from(["model", "step_uS", "step_sigma_uS", "readback_reads", "step"]),
    st.sampled_from(_PROGRAMMING_VALUES) | st.floats(allow_nan=False, allow_infinity=False) | st.integers(0, 100),
))
def test_a_programming_object_loads_exactly_when_the_rules_allow_it(programming: dict[str, Any]):
    document = {**_base(), "device": {"programming": programming}}
    bad = _bad_programming_keys(programming)
    if not bad:
        loaded = parse_chip(document, "c.json").device.programming
        assert loaded.model == programming.get("model", "gaussian")
        assert loaded.step_uS == programming.get("step_uS")
        assert loaded.step_sigma_uS == programming.get("step_sigma_uS", 0.0)
        assert loaded.readback_reads == programming.get("readback_reads", 1)
        return
    problems = _problems(document)
    named = {p.split(":", 1)[0] for p in problems}
    assert named == {f"device.programming.{k}" for k in bad}, problems
    if "step" not in programming and None not in programming.values():  # the constructor's form: same paths
        with pytest.raises(InvalidChipError) as info:
            ProgrammingModel(**programming)
        assert {p.split(":", 1)[0] for p in info.value.problems} == named


# --------------------------------------------------------------------------
# Validation


def _base() -> dict[str, Any]:
    return {
        "format": "leac-chip",
        "version": 1,
        "arrays": [{"id": 0, "rows": 25, "cols": 25}, {"id": 4, "rows": 25, "cols": 25}],
        "defects": [
            {"array": 0, "row": 3, "col": 7, "state": "stuck_high"},
            {"array": 4, "row": 24, "state": "stuck_low"},
        ],
    }


def _problems(document: object) -> list[str]:
    with pytest.raises(InvalidChipError) as info:
        parse_chip(document, "c.json")
    assert str(info.value).startswith("c.json: invalid chip file")
    return info.value.problems


def test_the_base_document_is_valid():
    chip = parse_chip(_base(), "c.json")
    assert [a.id for a in chip.arrays] == [0, 4] and not chip.grid


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"defects": [{"array": 4, "row": 30, "col": 0, "state": HIGH}]},
         "defects[0].row: 30 is outside array 4 (25 rows)"),
        ({"defects": [{"array": 4, "row": 0, "col": 25, "state": HIGH}]},
         "defects[0].col: 25 is outside array 4 (25 columns)"),
        ({"defects": [{"array": 0, "row": -1, "col": 0, "state": HIGH}]},
         "defects[0].row: -1 is negative"),
        ({"defects": [{"array": 9, "row": 0, "col": 0, "state": HIGH}]},
         "defects[0].array: 9 is not the id of any array"),
        ({"defects": [{"array": 0, "state": HIGH}]},
         "defects[0]: has neither row nor col"),
        ({"defects": [{"array": 0, "row": 0, "col": None, "state": HIGH}]},
         "defects[0].col: null is not allowed"),
        ({"defects": [{"array": 0, "row": 0, "col": 0, "state": "stuck_on"}]},
         'defects[0].state: "stuck_on" is not "stuck_high" or "stuck_low"'),
        ({"defects": [{"array": 0, "row": 0, "col": 0, "state": HIGH, "g_uS": -3}]},
         "defects[0].g_uS: -3 is not positive"),
        ({"defects": [{"row": 0, "col": 0, "state": HIGH}]},
         "defects[0].array: missing (required)"),
        ({"defects": {"array": 0}}, 'defects: {"array": 0} is not a list'),
        ({"device": {"levels_uS": [133, 120]}},
         "device.levels_uS: [133, 120] is not strictly ascending"),
        ({"device": {"levels_uS": [133]}}, "device.levels_uS: [133] has fewer than 2 levels"),
        ({"device": {"levels_uS": [133, "x"]}}, 'device.levels_uS[1]: "x" is not a number'),
        ({"device": {"stuck_low_uS": 0}}, "device.stuck_low_uS: 0 is not positive"),
        ({"device": {"read_noise_uS": -1}}, "device.read_noise_uS: -1 is negative"),
        ({"device": {"levels": [1, 2]}}, "device.levels: unknown key (did you mean 'levels_uS'?)"),
        ({"periphery": {"dac_bits": True}}, "periphery.dac_bits: true is not an integer"),
        ({"periphery": {"adc_bits": 12.0}}, "periphery.adc_bits: 12.0 is not an integer"),
        ({"periphery": {"adc_bits": 10**100}}, "periphery.adc_bits: 1000"),
        ({"periphery": {"t_mvm_ns": 0}}, "periphery.t_mvm_ns: 0 is not positive"),
        ({"periphery": {"e_adc_pJ": "2"}}, 'periphery.e_adc_pJ: "2" is not a number'),
        ({"periphery": {"e_digital_op_pJ": 0}}, "periphery.e_digital_op_pJ: 0 is not positive"),
        ({"periphery": {"e_digital_op_pJ": "1"}}, 'periphery.e_digital_op_pJ: "1" is not a number'),
        ({"periphery": []}, "periphery: [] is not a JSON object"),
        ({"foo": 1}, "foo: unknown key"),
        ({"name": 7}, "name: 7 is not a string"),
        ({"version": 0}, "version: 0 is not positive"),
        ({"version": "1"}, 'version: "1" is not an integer'),
        ({"arrays": [{"id": 0, "rows": 25, "cols": 25}, {"id": 0, "rows": 2, "cols": 2}]},
         "arrays[1].id: 0 is used twice"),
        ({"arrays": [{"id": 0, "rows": 0, "cols": 25}]}, "arrays[0].rows: 0 is not positive"),
        ({"arrays": [{"id": 0, "rows": 25}]}, "arrays[0].cols: missing (required)"),
        ({"arrays": []}, "arrays: [] lists no arrays"),
        ({"arrays": {"count": 2, "rows": 5}}, "arrays.cols: missing (required)"),
        ({"arrays": 3}, "arrays: 3 is neither a grid"),
        ({"arrays": {"count": 65536, "rows": 4096, "cols": 4096}},
         f"devices in total is more than leac accepts ({MAX_DEVICES})"),
        ({"arrays": {"count": 1, "rows": 10**5, "cols": 10**5}},
         "arrays.rows: 100000 is more than leac accepts (4096)"),
        ({"arrays": {"count": 1, "rows": 4096, "cols": 4097}},
         "arrays.cols: 4097 is more than leac accepts (4096)"),
        ({"arrays": {"count": 14, "rows": 8192, "cols": 8192}},
         "arrays.rows: 8192 is more than leac accepts (4096)"),
        ({"arrays": {"count": 10**6, "rows": 1, "cols": 1000}},
         "arrays.count: 1000000 is more than leac accepts (65536)"),
        ({"arrays": [{"id": 0, "rows": 8192, "cols": 8192}]},
         "arrays[0].rows: 8192 is more than leac supports (4096)"),
        ({"arrays": {"count": 10**7, "rows": 1, "cols": 1}}, "arrays.count: 10000000 is more"),
    ],
)  # fmt: skip
def test_each_rule_is_reported_with_path_and_value(change: dict[str, Any], expected: str):
    document = {**_base(), **change}
    problems = _problems(document)
    assert any(expected in p for p in problems), problems


# Numbers a chip may hold: every one the compiler and the simulator cannot handle is refused at load
# (issue 13, items 16 and 17: levels 1e-300 and 2e-300 made compile fail as "a bug in leac"; extreme
# periphery values made `simulate --json` print Infinity).
@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("device", {"levels_uS": [1e-300, 2e-300]},
         "device.levels_uS[0]: 1e-300 is outside the range leac accepts (1e-06 to 1e+06 uS)"),
        ("device", {"levels_uS": [100.0, 1e300]},
         "device.levels_uS[1]: 1e+300 is outside the range leac accepts (1e-06 to 1e+06 uS)"),
        ("device", {"levels_uS": [100.0, 100.00000001]},
         "device.levels_uS: levels 100 and 100 are closer than leac resolves"),
        ("device", {"stuck_high_uS": 1e300},
         "device.stuck_high_uS: 1e+300 is outside the range leac accepts (1e-06 to 1e+06 uS)"),
        ("device", {"stuck_low_uS": 1e-300},
         "device.stuck_low_uS: 1e-300 is outside the range leac accepts (1e-06 to 1e+06 uS)"),
        ("device", {"write_noise_uS": 1e300},
         "device.write_noise_uS: 1e+300 is outside the range leac accepts (0 to 1e+06 uS)"),
        ("device", {"read_noise_uS": 1e10},
         "device.read_noise_uS: 1e+10 is outside the range leac accepts (0 to 1e+06 uS)"),
        ("periphery", {"clock_MHz": 1e-300},
         "periphery.clock_MHz: 1e-300 is outside the range leac accepts (0.001 to 1e+06 MHz)"),
        ("periphery", {"e_adc_pJ": 1e300},
         "periphery.e_adc_pJ: 1e+300 is outside the range leac accepts (1e-09 to 1e+09 pJ)"),
        ("periphery", {"e_digital_op_pJ": 1e-12},
         "periphery.e_digital_op_pJ: 1e-12 is outside the range leac accepts (1e-09 to 1e+09 pJ)"),
        ("periphery", {"t_mvm_ns": 1e308},
         "periphery.t_mvm_ns: 1e+308 is outside the range leac accepts (0.001 to 1e+09 ns)"),
        ("periphery", {"v_read_V": 1e-9},
         "periphery.v_read_V: 1e-09 is outside the range leac accepts (0.001 to 100 V)"),
        ("periphery", {"dac_bits": 1}, "periphery.dac_bits: 1 is less than 2"),
        ("periphery", {"adc_bits": 33}, "periphery.adc_bits: 33 is more than leac supports (32)"),
        ("periphery", {"adcs_per_array": 10**30},
         "periphery.adcs_per_array: 1000000000000000000000000000000 is more than leac supports (4096)"),
    ],
)  # fmt: skip
def test_numbers_outside_their_range_are_refused(section: str, values: dict[str, Any], expected: str):
    problems = _problems({**_base(), section: values})
    assert problems == [expected] or any(expected in p for p in problems), problems
    assert len(problems) == 1


@pytest.mark.parametrize("g", [1e-300, 1e300, 1e7, 5e-7])
def test_a_defect_conductance_outside_the_range_is_refused(g: float):
    document = _base()
    document["defects"] = [{"array": 0, "row": 3, "col": 7, "state": "stuck_high", "g_uS": g}]
    assert _problems(document) == [
        f"defects[0].g_uS: {g:g} is outside the range leac accepts (1e-06 to 1e+06 uS)"]
    # The same on the bulk path (many plain entries) and through the constructor.
    document["defects"] += [{"array": 4, "row": r, "col": 0, "state": "stuck_low"} for r in range(25)]
    assert _problems(document) == [
        f"defects[0].g_uS: {g:g} is outside the range leac accepts (1e-06 to 1e+06 uS)"]
    with pytest.raises(InvalidChipError, match="outside the range"):
        Chip(arrays=(Array(0, 4, 4),), defects=(Defect(0, 1, 1, "stuck_high", g),))


_FINITE = st.floats(allow_nan=False, allow_infinity=False)


@given(key=st.sampled_from(sorted(PERIPHERY_RANGES)), value=_FINITE.filter(lambda v: v > 0))
@settings(max_examples=200, deadline=None)
def test_a_periphery_value_loads_exactly_when_it_is_in_its_range(key: str, value: float):
    low, high = PERIPHERY_RANGES[key]
    document = {**_base(), "periphery": {key: value}}
    if low <= value <= high:
        assert getattr(parse_chip(document, "c.json").periphery, key) == value
    else:
        assert _problems(document) == [
            f"periphery.{key}: {value:g} is outside the range leac accepts ({low:g} to {high:g} "
            f"{key.rsplit('_', 1)[-1]})"]


@given(levels=st.lists(_FINITE.filter(lambda v: v > 0), min_size=2, max_size=6, unique=True).map(sorted))
@settings(max_examples=200, deadline=None)
def test_levels_load_exactly_when_in_range_and_resolvable(levels: list[float]):
    document = {**_base(), "device": {"levels_uS": levels}}
    in_range = all(MIN_CONDUCTANCE_uS <= v <= MAX_CONDUCTANCE_uS for v in levels)
    resolvable = min(b - a for a, b in zip(levels[:-1], levels[1:], strict=True)) >= MIN_LEVEL_GAP * levels[-1]
    if in_range and resolvable:
        assert parse_chip(document, "c.json").device.levels_uS == tuple(levels)
    else:
        problems = _problems(document)
        assert len(problems) == 1 and problems[0].startswith("device.levels_uS"), problems
        assert ("outside the range" in problems[0]) == (not in_range), problems


@pytest.mark.parametrize(
    ("defects", "expected"),
    [
        ([{"array": 0, "row": 3, "col": 7, "state": HIGH},
          {"array": 0, "row": 3, "col": 7, "state": LOW}],
         "defects[1]: device (array 0, row 3, col 7) is marked stuck_low here and stuck_high "
         "in defects[0]"),
        ([{"array": 0, "row": 3, "state": LOW},
          {"array": 0, "row": 3, "col": 7, "state": HIGH}],
         "defects[1]: device (array 0, row 3, col 7) is marked stuck_high here and lies in row 3, "
         "marked stuck_low in defects[0]"),
        ([{"array": 0, "row": 3, "col": 7, "state": HIGH},
          {"array": 0, "col": 7, "state": LOW}],
         "defects[1]: column 7 of array 0 is marked stuck_low here but device (row 3, col 7) is "
         "marked stuck_high in defects[0]"),
        ([{"array": 0, "col": 2, "state": HIGH}, {"array": 0, "row": 9, "state": LOW}],
         "defects[1]: row 9 of array 0 is marked stuck_low here and crosses column 2, marked "
         "stuck_high in defects[0]"),
        ([{"array": 0, "row": 9, "state": HIGH}, {"array": 0, "row": 9, "state": LOW}],
         "defects[1]: row 9 of array 0 is marked stuck_low here and stuck_high in defects[0]"),
    ],
)  # fmt: skip
def test_one_device_with_two_states_is_an_error(defects: list[dict[str, Any]], expected: str):
    assert _problems({**_base(), "defects": defects}) == [expected]


def test_the_same_state_twice_is_allowed_and_other_arrays_do_not_clash():
    defects = [
        {"array": 0, "row": 3, "col": 7, "state": HIGH},
        {"array": 0, "row": 3, "col": 7, "state": HIGH, "g_uS": 800},
        {"array": 0, "row": 5, "state": LOW},
        {"array": 0, "col": 1, "state": LOW},
        {"array": 0, "row": 5, "col": 1, "state": LOW},
        {"array": 4, "row": 3, "col": 7, "state": LOW},
        {"array": 4, "col": 2, "state": HIGH},
    ]
    chip = parse_chip({**_base(), "defects": defects}, "c.json")
    assert len(chip.defects) == 7


def test_every_problem_is_collected_not_only_the_first():
    document = {
        **_base(),
        "foo": 1,
        "device": {"levels_uS": [133, 120], "stuck_high_uS": float("nan")},
        "periphery": {"dac_bits": True},
        "defects": [
            {"array": 0, "row": 3, "col": 7, "state": HIGH},
            {"array": 0, "row": 3, "col": 7, "state": LOW},
            {"array": 4, "row": 30, "col": 0, "state": LOW},
        ],
    }
    assert _problems(document) == [
        "foo: unknown key",
        "device.levels_uS: [133, 120] is not strictly ascending",
        "device.stuck_high_uS: NaN is not a finite number",
        "periphery.dac_bits: true is not an integer",
        "defects[1]: device (array 0, row 3, col 7) is marked stuck_low here and stuck_high "
        "in defects[0]",
        "defects[2].row: 30 is outside array 4 (25 rows)",
    ]


def test_a_newer_version_or_another_format_is_refused_alone():
    assert _problems({**_base(), "version": 2, "extra": 1}) == [
        "version: 2 is newer than this leac understands (1)"
    ]
    assert _problems({**_base(), "format": "leac-program"}) == [
        'format: "leac-program" is not "leac-chip"'
    ]
    assert _problems([1, 2]) == ["top level: [1, 2] is not a JSON object"]
    assert "version: missing (required)" in _problems({"format": "leac-chip", "arrays": []})


def test_problem_lists_are_capped():
    defects = [{"array": 0, "row": 99, "col": 0, "state": HIGH}] * 500
    problems = _problems({**_base(), "defects": defects})
    assert len(problems) == 201 and problems[-1] == "... and 300 more problems"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("  \n", "the file is empty"),
        ('{"format": "leac-chip", "version": 1, "arr', "truncated"),
        ('{"format": "leac-chip", "version": 1', "truncated"),
        ("format: leac-chip", "not valid JSON: Expecting value (line 1, column 1)"),
        ('{"format": "leac-chip", "version": 1, "arrays": {"count": NaN, "rows": 1, "cols": 1}}',
         "arrays.count: NaN is not an integer"),
        ('{"format": "leac-chip", "version": 1, "device": {"stuck_low_uS": -Infinity},'
         ' "arrays": {"count": 1, "rows": 1, "cols": 1}}',
         "device.stuck_low_uS: -Infinity is not a finite number"),
        ('{"format": "leac-chip", "version": 1, "device": {"stuck_low_uS": 1e400},'
         ' "arrays": {"count": 1, "rows": 1, "cols": 1}}',
         "device.stuck_low_uS: 1e400 is not a finite number"),
        ('{"format": "leac-chip", "version": 1, "version": 1,'
         ' "arrays": {"count": 1, "rows": 1, "cols": 1}}',
         "version: key appears more than once"),
        ("[" * 100000, "nested too deeply"),
        # Python's own message told the user to call sys.set_int_max_str_digits()
        ('{"format": "leac-chip", "version": 1' + "0" * 5000 + "}",
         "not valid JSON: a number of more than 4300 digits"),
    ],
)  # fmt: skip
def test_load_refuses_bad_json_text(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidChipError) as info:
        load_chip(path)
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert info.value.exit_status == 3


def test_load_refuses_unreadable_files(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="no such chip file"):
        load_chip(tmp_path / "missing.json")
    with pytest.raises(InvalidInputError, match="is a directory"):
        load_chip(tmp_path)
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(InvalidInputError, match=r"not UTF-8 text \(byte 0xe9 at offset 13\)"):
        load_chip(tmp_path / "latin1.json")


def test_a_byte_order_mark_is_accepted(tmp_path: Path):
    chip = synth_chip(arrays=1, rows=2, cols=2, seed=0)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + chip_to_text(chip).encode())
    assert load_chip(tmp_path / "bom.json") == chip


# --------------------------------------------------------------------------
# The data model


def test_constructing_an_invalid_chip_raises():
    with pytest.raises(InvalidChipError, match=r"defects\[0\].row: 5 is outside array 0"):
        Chip(arrays=(Array(0, 2, 2),), defects=(Defect(0, 5, 0, HIGH),))
    with pytest.raises(InvalidChipError, match="is not strictly ascending"):
        DeviceModel(levels_uS=(200.0, 100.0))
    with pytest.raises(InvalidChipError, match=r"periphery.adc_bits: 0 is less than 2"):
        Periphery(adc_bits=0)
    with pytest.raises(InvalidChipError, match="the chip has no arrays"):
        Chip(arrays=())
    with pytest.raises(InvalidChipError, match="not a uniform grid"):
        Chip(arrays=(Array(0, 2, 2), Array(1, 3, 2)), grid=True)


def test_numpy_numbers_are_normalised():
    chip = Chip(
        arrays=[Array(np.int64(0), np.int64(3), np.int32(3))],
        defects=[Defect(np.int64(0), np.int64(1), None, LOW, np.float32(2.5))],
        device=DeviceModel(levels_uS=np.array([100, 200])),
    )
    assert type(chip.arrays[0].rows) is int and type(chip.defects[0].g_uS) is float
    assert chip.device.levels_uS == (100.0, 200.0) and isinstance(chip.arrays, tuple)


def test_array_lookup_names_a_missing_id():
    chip = Chip(arrays=(Array(0, 2, 2), Array(1, 2, 2), Array(7, 2, 2)), name="c")
    assert chip.array(7) == Array(7, 2, 2)
    with pytest.raises(UsageError, match=r"chip 'c' has no array 5 \(its array ids: 0..1, 7\)"):
        chip.array(5)
    with pytest.raises(UsageError, match="no array 5"):
        chip.stuck_map(5)


def _hand_made_chip() -> Chip:
    return Chip(
        arrays=(Array(0, 4, 5), Array(1, 2, 2)),
        defects=(
            Defect(0, 1, None, LOW, 2.0),  # row 1
            Defect(0, 1, 2, LOW, 4.2),  # inside row 1: the device entry wins though earlier
            Defect(0, None, 3, LOW),  # column 3, default 10 uS; later than row 1 at (1, 3)
            Defect(0, 0, 0, HIGH, 900.0),
            Defect(0, 0, 0, HIGH, 950.0),  # the same device again: the later entry wins
            Defect(0, 2, 4, HIGH),  # default 500 uS
            Defect(0, 3, 3, LOW, 1.5),  # inside column 3: the device entry wins
        ),
    )


def test_stuck_map_against_a_hand_made_chip():
    state, g = _hand_made_chip().stuck_map(0)
    nan = math.nan
    expected_state = np.array(
        [
            [1, 0, 0, -1, 0],
            [-1, -1, -1, -1, -1],
            [0, 0, 0, -1, 1],
            [0, 0, 0, -1, 0],
        ],
        dtype=np.int8,
    )
    expected_g = np.array(
        [
            [950.0, nan, nan, 10.0, nan],
            [2.0, 2.0, 4.2, 10.0, 2.0],
            [nan, nan, nan, 10.0, 500.0],
            [nan, nan, nan, 1.5, nan],
        ]
    )
    assert state.dtype == np.int8 and g.dtype == np.float64
    np.testing.assert_array_equal(state, expected_state)
    np.testing.assert_array_equal(g, expected_g)  # NaNs in the same places


def test_stuck_map_of_a_clean_array_and_a_later_row_over_a_column():
    chip = _hand_made_chip()
    state, g = chip.stuck_map(1)
    np.testing.assert_array_equal(state, np.zeros((2, 2), np.int8))
    assert np.isnan(g).all()
    crossing = Chip(
        arrays=(Array(0, 2, 2),),
        defects=(Defect(0, None, 0, HIGH, 700.0), Defect(0, 1, None, HIGH, 600.0)),
        device=DeviceModel(stuck_high_uS=450.0),
    )
    state, g = crossing.stuck_map(0)
    np.testing.assert_array_equal(state, [[1, 0], [1, 1]])
    np.testing.assert_array_equal(g, [[700.0, math.nan], [600.0, 600.0]])


def test_stuck_maps_of_many_arrays_are_their_stuck_maps():
    """`stuck_maps` (one vectorised pass per array shape) gives each array its `stuck_map`: arrays of two
    shapes, with and without line defects, a device entry repeated, ids asked twice and out of order."""
    chip = synth_chip(arrays=12, rows=6, cols=7, stuck_high=0.15, stuck_low=0.1, dead_rows=0.1, dead_cols=0.1,
                      seed=4)
    hand = _hand_made_chip()
    for each, ids in ((chip, [5, 3, 3, 11, *range(12)]), (hand, [1, 0, 1])):
        maps = each.stuck_maps(ids)
        assert sorted(maps) == sorted(set(ids))
        for array_id, (state, g) in maps.items():
            want_state, want_g = each.stuck_map(array_id)
            assert state.dtype == np.int8 and g.dtype == np.float64
            np.testing.assert_array_equal(state, want_state)
            np.testing.assert_array_equal(g, want_g)  # NaNs in the same places
    assert any(chip.stuck_map(a)[0].any() for a in range(12))
    with pytest.raises(UsageError, match="no array 12"):
        chip.stuck_maps([0, 12])


def test_counts_and_summary():
    chip = _hand_made_chip()
    assert chip.device_count == 24
    assert chip.defect_counts() == {
        "stuck_high": 2,
        "stuck_low": 8,
        "dead_rows": 1,
        "dead_cols": 1,
        "healthy": 14,
    }
    assert chip.defect_counts(1) == {
        "stuck_high": 0, "stuck_low": 0, "dead_rows": 0, "dead_cols": 0, "healthy": 4,
    }  # fmt: skip
    summary = chip.summary()
    assert "\n" not in summary
    assert summary == (
        "chip: 2 arrays of mixed sizes, 24 devices, 2 stuck high, 8 stuck low (41.67% stuck), "
        "1 dead rows, 1 dead columns, 14 healthy"
    )


# --------------------------------------------------------------------------
# Synthetic chips


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """`count` is within `sigmas` binomial standard deviations of n * p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1e-9


def test_synth_rates_are_honoured_statistically():
    arrays, rows, cols = 40, 100, 100
    rates = {"stuck_high": 0.025, "stuck_low": 0.01, "dead_rows": 0.02, "dead_cols": 0.03}
    chip = synth_chip(arrays=arrays, rows=rows, cols=cols, seed=7, **rates)
    assert chip.grid and len(chip.arrays) == arrays
    dead_rows = {(d.array, d.row) for d in chip.defects if d.col is None}
    dead_cols = {(d.array, d.col) for d in chip.defects if d.row is None}
    assert all(d.state == LOW and d.g_uS is None for d in chip.defects if d.is_line)
    assert _within(len(dead_rows), arrays * rows, rates["dead_rows"])
    assert _within(len(dead_cols), arrays * cols, rates["dead_cols"])
    single = [d for d in chip.defects if not d.is_line]
    assert all(d.g_uS is None for d in single)
    places = [(d.array, d.row, d.col) for d in single]
    assert len(set(places)) == len(places)  # never both stuck high and stuck low
    assert not any((a, r) in dead_rows or (a, c) in dead_cols for a, r, c in places)
    # Devices off the dead lines, the population the per-device rates apply to.
    rows_left = [rows - sum(1 for a, _ in dead_rows if a == k) for k in range(arrays)]
    cols_left = [cols - sum(1 for a, _ in dead_cols if a == k) for k in range(arrays)]
    off_line = sum(r * c for r, c in zip(rows_left, cols_left, strict=True))
    high = sum(1 for d in single if d.state == HIGH)
    low = sum(1 for d in single if d.state == LOW)
    assert _within(high, off_line, rates["stuck_high"])
    # Conditional on not stuck high, a device is stuck low with p_low / (1 - p_high) ...
    # ... so unconditionally it is p_low: the same binomial check applies.
    assert _within(low, off_line, rates["stuck_low"])


def test_synth_defaults_look_like_the_seed_paper():
    chip = synth_chip(seed=1)
    assert chip.device_count == 20_000 and len(chip.arrays) == 32
    assert chip.arrays[0] == Array(0, 25, 25)
    assert _within(chip.defect_counts()["stuck_high"], 20_000, 0.025)


def test_synth_is_deterministic_per_seed(tmp_path: Path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        save_chip(synth_chip(seed=seed, dead_rows=0.05, name="s"), tmp_path / f"{name}.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()


def test_synth_extreme_rates():
    assert synth_chip(arrays=2, rows=3, cols=3, stuck_high=0, stuck_low=0, seed=0).defects == ()
    all_high = synth_chip(arrays=1, rows=3, cols=3, stuck_high=1, stuck_low=0, seed=0)
    assert all_high.defect_counts()["stuck_high"] == 9
    dead = synth_chip(arrays=1, rows=3, cols=4, dead_rows=1, seed=0)
    assert dead.defect_counts()["stuck_low"] == 12 and all(d.is_line for d in dead.defects)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"stuck_high": 1.5}, "stuck_high: 1.5 is not a probability between 0 and 1"),
        ({"stuck_low": -0.1}, "stuck_low: -0.1 is negative"),
        ({"dead_rows": math.nan}, "dead_rows: NaN is not a finite number"),
        ({"dead_cols": "0.1"}, 'dead_cols: "0.1" is not a number'),
        ({"stuck_high": 0.7, "stuck_low": 0.4}, "stuck_high + stuck_low: 1.1 is more than 1"),
        ({"arrays": 0}, "arrays: 0 is not positive"),
        ({"rows": 2.5}, "rows: 2.5 is not an integer"),
        ({"seed": -1}, "seed: -1 is negative"),
        ({"arrays": 65536, "rows": 4096, "cols": 4096}, "is more devices than leac accepts"),
        ({"rows": 4097}, "rows: 4097 is more than leac supports (4096)"),
    ],
)
def test_synth_refuses_bad_options(kwargs: dict[str, Any], expected: str):
    with pytest.raises(UsageError) as info:
        synth_chip(**{"seed": 0, **kwargs})
    assert expected in str(info.value)


# --------------------------------------------------------------------------
# Measured conductance maps


def _measured(name: str) -> Path:
    if not MEASURED.is_dir():
        pytest.skip(f"measured data not found at {MEASURED} (shared/ must sit beside the repo)")
    return MEASURED / name


def test_import_kernel0_finds_two_dead_columns_and_36_stuck_high():
    chip = import_maps([_measured("kernel0_S.txt")])
    lines = [d for d in chip.defects if d.is_line]
    assert [(d.row, d.col, d.state) for d in lines] == [(None, 4, LOW), (None, 24, LOW)]
    assert all(d.g_uS is not None and 0 < d.g_uS < 50 for d in lines)
    counts = chip.defect_counts()
    assert counts["stuck_high"] == 36 and counts["dead_cols"] == 2 and counts["dead_rows"] == 0
    assert counts["stuck_low"] == 50  # the two dead columns, nothing else
    highs = [d for d in chip.defects if d.state == HIGH]
    assert len(highs) == 36 and all(d.g_uS is not None and d.g_uS > 300 for d in highs)
    raw = load_conductance_map(_measured("kernel0_S.txt")) * 1e6
    assert all(math.isclose(d.g_uS, raw[d.row, d.col]) for d in highs)  # type: ignore[arg-type]


def test_import_kernel17_finds_no_dead_line_and_9_stuck_high():
    chip = import_maps([_measured("kernel17_S.txt")])
    assert not any(d.is_line for d in chip.defects)
    assert chip.defect_counts() == {
        "stuck_high": 9, "stuck_low": 0, "dead_rows": 0, "dead_cols": 0, "healthy": 616,
    }  # fmt: skip


def test_import_both_kernels_is_a_grid_that_round_trips(tmp_path: Path):
    chip = import_maps(
        [_measured("kernel0_S.txt"), _measured("kernel17_S.txt")], name="two kernels"
    )
    assert chip.grid and [a.id for a in chip.arrays] == [0, 1]
    save_chip(chip, tmp_path / "k.json")
    assert load_chip(tmp_path / "k.json") == chip


def test_import_classifies_a_small_matrix():
    g_uS = np.full((5, 6), 150.0)
    g_uS[0, 0] = 900.0  # stuck high
    g_uS[1, 1] = 20.0  # stuck low, measured
    g_uS[1, 2] = -3.0  # stuck low, reading <= 0: no g_uS
    g_uS[:, 5] = [260.0, 1.0, 3.0, 5.0, 200.0]
    g_uS[4, :] = [1.0, 2.0, -1.0, 4.0, 5.0, 200.0]  # 5 of 6 low: under 0.9, not dead
    g_uS[2, :] = [2.0, 3.0, 4.0, -1.0, 6.0, 7.0]  # dead row: median of 2, 3, 4, 6, 7
    chip = import_maps([("m", g_uS * 1e-6)], high_above_uS=250.0)
    got = {(d.row, d.col): (d.state, d.g_uS) for d in chip.defects}
    assert got == {
        (2, None): (LOW, pytest.approx(4.0)),
        (0, 0): (HIGH, pytest.approx(900.0)),
        (0, 5): (HIGH, pytest.approx(260.0)),
        (1, 1): (LOW, pytest.approx(20.0)),
        (1, 2): (LOW, None),
        (1, 5): (LOW, pytest.approx(1.0)),
        (3, 5): (LOW, pytest.approx(5.0)),
        (4, 0): (LOW, pytest.approx(1.0)),
        (4, 1): (LOW, pytest.approx(2.0)),
        (4, 2): (LOW, None),
        (4, 3): (LOW, pytest.approx(4.0)),
        (4, 4): (LOW, pytest.approx(5.0)),
    }
    assert chip.defects[0] == Defect(0, 2, None, LOW, pytest.approx(4.0))  # lines come first


def test_import_a_stuck_high_device_keeps_a_line_alive():
    g_uS = np.array([[1.0, 1.0, 150.0], [2.0, 2.0, 150.0], [3.0, 3.0, 150.0], [900.0, 150, 150]])
    chip = import_maps([("m", g_uS * 1e-6)], dead_line_fraction=0.75)
    lines = [d for d in chip.defects if d.is_line]
    assert lines == [Defect(0, None, 1, LOW, 2.0)]  # column 0 has a stuck-high device
    singles = {(d.row, d.col) for d in chip.defects if not d.is_line}
    assert singles == {(0, 0), (1, 0), (2, 0), (3, 0)}


def test_import_mixed_shapes_is_a_list_and_a_line_without_positive_readings():
    dead = np.full((3, 3), 150e-6)
    dead[:, 1] = [-1e-6, 0.0, -2e-6]
    chip = import_maps([("a", dead), ("b", np.full((2, 4), 150e-6))])
    assert not chip.grid and chip.arrays == (Array(0, 3, 3), Array(1, 2, 4))
    assert chip.defects == (Defect(0, None, 1, LOW, None),)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"high_above_uS": 200.0}, "high_above_uS: 200.0 uS is not above the top device level"),
        ({"low_below_uS": 140.0}, "low_below_uS: 140.0 uS is not below the bottom device level"),
        ({"dead_line_fraction": 0.0}, "dead_line_fraction: 0.0 is not positive"),
        ({"dead_line_fraction": 1.5}, "dead_line_fraction: 1.5 is more than 1"),
        ({"high_above_uS": math.inf}, "high_above_uS: Infinity is not a finite number"),
    ],
)
def test_import_refuses_thresholds_that_contradict_the_levels(
    kwargs: dict[str, Any], expected: str
):
    with pytest.raises(UsageError) as info:
        import_maps([("m", np.full((2, 2), 150e-6))], **kwargs)
    assert expected in str(info.value)


def test_import_needs_a_map():
    with pytest.raises(UsageError, match="no conductance maps given"):
        import_maps([])


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        (np.zeros(5), r"must be 2-D \(rows x columns\), not of shape \(5,\)"),
        (np.zeros((0, 3)), "the conductance map is empty"),
        (np.array([[1e-4, np.nan]]), r"1 readings are not finite numbers \(the first at row 0"),
        (np.array([["a", "b"]]), "must hold real numbers"),
        (np.full((2, 2), 150.0), "is the map in microsiemens"),
    ],
)
def test_import_refuses_bad_matrices(matrix: np.ndarray, expected: str):
    with pytest.raises(BadDataError, match=expected):
        import_maps([("m", matrix)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-4 2e-4\n3e-4\n", "line 2 has 1 values but line 1 has 2"),
        ("1e-4 2e-4\n3e-4 abc\n", "line 2, value 2: 'abc' is not a number"),
        ("1e-4,2e-4\n", r"is not a number \(values must be separated by whitespace\)"),
        ("", r"no values \(an empty conductance map\)"),
        ("\n  \n# only a comment\n", "no values"),
        ("1e-4 nan\n", "line 1, value 2: 'nan' is not a finite number"),
        ("1e-4 inf\n", "'inf' is not a finite number"),
    ],
)
def test_load_conductance_map_errors(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "map.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadDataError, match=expected) as info:
        load_conductance_map(path)
    assert str(info.value).startswith(os.fspath(path))


def test_load_conductance_map_reads_comments_and_blank_lines(tmp_path: Path):
    path = tmp_path / "map.txt"
    path.write_text("# header\n1e-4  2e-4\n\n3e-4\t4e-4  # row 2\n", encoding="utf-8")
    np.testing.assert_array_equal(load_conductance_map(path), [[1e-4, 2e-4], [3e-4, 4e-4]])
    with pytest.raises(InvalidInputError, match="no such conductance map"):
        load_conductance_map(tmp_path / "missing.txt")


def test_import_wants_a_list_of_maps():
    with pytest.raises(UsageError, match="give a list of maps, not one path"):
        import_maps("kernel0_S.txt")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Large and spoilt chips against what the spec says, entry by entry
#
# The chip is checked and queried in bulk (numpy columns); these tests hold
# it against the spec's meaning written out here one defect at a time.


def _expected_maps(chip: Chip) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Every array's stuck map as the spec defines it: lines first, then devices, each in file order."""
    maps = {}
    for arr in chip.arrays:
        state = np.zeros((arr.rows, arr.cols), dtype=np.int8)
        g = np.full((arr.rows, arr.cols), np.nan)
        mine = [d for d in chip.defects if d.array == arr.id]
        for d in [d for d in mine if d.is_line] + [d for d in mine if not d.is_line]:
            code = 1 if d.state == HIGH else -1
            default = chip.device.stuck_high_uS if d.state == HIGH else chip.device.stuck_low_uS
            rows = slice(None) if d.row is None else d.row
            cols = slice(None) if d.col is None else d.col
            state[rows, cols] = code
            g[rows, cols] = default if d.g_uS is None else d.g_uS
        maps[arr.id] = (state, g)
    return maps


def _expected_text(chip: Chip) -> str:
    """The chip file's layout (docs/chip-format.md) written with json.dumps, one entry per line."""

    def leaf(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

    obj = chip_to_json(chip)
    parts = []
    for key, value in obj.items():
        if isinstance(value, dict) and key in ("device", "periphery"):
            inner = ",\n".join(f"    {leaf(k)}: {leaf(v)}" for k, v in value.items())
            parts.append(f"  {leaf(key)}: {{\n{inner}\n  }}")
        elif isinstance(value, list) and value:
            inner = ",\n".join(f"    {leaf(item)}" for item in value)
            parts.append(f"  {leaf(key)}: [\n{inner}\n  ]")
        else:
            parts.append(f"  {leaf(key)}: {leaf(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _assert_as_specified(chip: Chip) -> None:
    """The chip's maps, counts, text and fingerprint are what the spec says of its defects."""
    assert all(d.g_uS is None or type(d.g_uS) is float for d in chip.defects)
    assert chip_to_text(chip) == _expected_text(chip)
    canonical = chip_to_json(chip)
    canonical.pop("name", None)
    canonical["arrays"] = [{"id": a.id, "rows": a.rows, "cols": a.cols} for a in chip.arrays]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    assert chip.fingerprint() == hashlib.sha256(text.encode("utf-8")).hexdigest()
    total = dict.fromkeys(("stuck_high", "stuck_low", "dead_rows", "dead_cols", "healthy"), 0)
    for array_id, (state, g) in _expected_maps(chip).items():
        got_state, got_g = chip.stuck_map(array_id)
        assert got_state.dtype == np.int8 and got_g.dtype == np.float64
        np.testing.assert_array_equal(got_state, state)
        np.testing.assert_array_equal(got_g, g)
        lines = [d for d in chip.defects if d.array == array_id and d.is_line]
        counts = {
            "stuck_high": int((state == 1).sum()),
            "stuck_low": int((state == -1).sum()),
            "dead_rows": len({d.row for d in lines if d.col is None}),
            "dead_cols": len({d.col for d in lines if d.row is None}),
            "healthy": int((state == 0).sum()),
        }
        assert chip.defect_counts(array_id) == counts
        total = {k: total[k] + counts[k] for k in total}
    assert chip.defect_counts() == total


def _outcome(build: Callable[[], Chip]) -> tuple[Any, ...]:
    try:
        return ("ok", build())
    except InvalidChipError as exc:
        return ("refused", exc.problems)


_ODD_VALUES = [True, None, -1, 0, 0.0, -0.0, 2.5, 10**30, 2**63, 10**400, 99, 3, "x",
               HIGH, LOW, [1], {"k": 1}, float("nan"), float("inf"), 1e308]  # fmt: skip


@st.composite
def chip_documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """How a chip file's JSON was spoilt ("valid": not at all), and the JSON."""
    document = chip_to_json(draw(chips()))
    defects = document["defects"]
    how = draw(st.sampled_from(["valid", "value", "entry", "conflict", "key", "drop", "int g"]))
    if how == "valid" or not defects and how != "value":
        return "valid", document
    i = draw(st.integers(0, max(len(defects) - 1, 0)))
    if how == "value" and defects:
        key = draw(st.sampled_from(["array", "row", "col", "state", "g_uS"]))
        defects[i][key] = draw(st.sampled_from(_ODD_VALUES))
    elif how == "value":
        document["defects"] = draw(st.sampled_from(_ODD_VALUES))
        how = "not a list"
    elif how == "entry":
        defects[i] = draw(st.sampled_from(_ODD_VALUES))
    elif how == "conflict":  # the same entry again in the other state, somewhere
        twin = {**defects[i], "state": LOW if defects[i]["state"] == HIGH else HIGH}
        defects.insert(draw(st.integers(0, len(defects))), twin)
    elif how == "key":
        defects[i][draw(st.sampled_from(["stat", "g", "array "]))] = 1
    elif how == "drop":
        defects[i].pop(draw(st.sampled_from(["array", "row", "col", "state"])), None)
    else:
        defects[i]["g_uS"] = draw(st.integers(1, 10**7))
    return how, document


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chip_documents())
def test_any_document_loads_as_specified_or_is_refused_with_paths(case: tuple[str, dict[str, Any]]):
    how, document = case
    text = json.dumps(document)  # NaN and Infinity become literals, as in a hand-edited file
    outcome = _outcome(lambda: parse_chip(decode_chip_json(text, "c.json"), "c.json"))
    if how == "int g":  # the only change: a conductance given as an integer, loaded if in range
        given = [e["g_uS"] for e in document["defects"] if type(e.get("g_uS")) is int]
        assert (outcome[0] == "ok") == (given[0] <= MAX_CONDUCTANCE_uS), (given, outcome)
    if outcome[0] == "ok":
        assert how not in ("conflict", "key", "entry", "not a list")
        _assert_as_specified(outcome[1])
        return
    problems = outcome[1]
    assert how != "valid" and problems
    n = len(document["defects"]) if isinstance(document["defects"], list) else 0
    for problem in problems:  # each names a defect entry of the file (or the defects key)
        head = problem.split(":", 1)[0]
        assert head == "defects" or head.startswith("defects["), problem
        assert head == "defects" or int(head[len("defects["):].split("]")[0]) < n, problem
    if how == "conflict":
        assert all(" is marked " in p for p in problems), problems
    if how == "key":
        assert any(": unknown key" in p for p in problems), problems
    if how == "int g":
        assert all("g_uS" in p and "outside the range leac accepts" in p for p in problems), problems


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chip_documents())
def test_the_constructor_finds_what_the_loader_finds(case: tuple[str, dict[str, Any]]):
    """Defect objects holding the file's values have the problems the file has (same paths and messages)."""
    how, document = case
    raw = document["defects"]
    if how not in ("valid", "value", "conflict", "int g") or None in [v for e in raw for v in e.values()]:
        return  # a null, an unknown key or a non-object entry has no Defect form
    text = json.dumps(document)
    loaded = _outcome(lambda: parse_chip(decode_chip_json(text, "c.json"), "c.json"))
    arrays = document["arrays"]
    if isinstance(arrays, dict):
        arrays = [{"id": i, "rows": arrays["rows"], "cols": arrays["cols"]} for i in range(arrays["count"])]
    defects = tuple(Defect(*[e.get(k) for k in ("array", "row", "col", "state", "g_uS")]) for e in raw)
    device = dict(document["device"])
    if "programming" in device:
        device["programming"] = ProgrammingModel(**device["programming"])
    periphery = dict(document["periphery"])
    if "lines" in periphery:
        periphery["lines"] = LineModel(**periphery["lines"])
    for key, kind in (("write_noise_model", NoiseModel), ("read_noise_model", NoiseModel), ("drift", DriftModel)):
        if key in device:
            device[key] = kind.from_json(device[key])
    built = _outcome(lambda: Chip(arrays=tuple(Array(**a) for a in arrays), defects=defects,
                                  device=DeviceModel(**device),
                                  periphery=Periphery(**periphery), name=document.get("name")))
    assert loaded[0] == built[0], (loaded, built)
    if loaded[0] == "ok":
        assert loaded[1].defects == built[1].defects
        assert loaded[1].fingerprint() == built[1].fingerprint()
    else:
        # A Defect holds a float field's integer as a float (normalised when constructed), so the constructor
        # names a file's g_uS of -1 as -1.0: the same value.
        assert [_integral_floats_as_ints(p) for p in loaded[1]] == [_integral_floats_as_ints(p) for p in built[1]]


def _integral_floats_as_ints(problem: str) -> str:
    """A message with every number written like -1.0 written like -1."""
    return re.sub(r"(?<![\d.])(-?\d+)\.0(?![\d.e])", r"\1", problem)


def _larger_document() -> tuple[Chip, dict[str, Any]]:
    """A synthetic chip with dead lines, and its file with measured values, repeated devices and id gaps."""
    kwargs: dict[str, Any] = {
        "arrays": 12, "rows": 40, "cols": 30, "stuck_high": 0.05, "stuck_low": 0.03,
        "dead_rows": 0.03, "dead_cols": 0.03, "seed": 11, "name": "big",
    }  # fmt: skip
    chip = synth_chip(**kwargs)
    document = chip_to_json(chip)
    document["arrays"] = [{"id": 3 * i, "rows": 40, "cols": 30} for i in range(12)]
    rng = np.random.default_rng(0)
    for entry in document["defects"]:
        entry["array"] *= 3
        if rng.random() < 0.3:
            entry["g_uS"] = float(rng.uniform(1, 900))
    document["defects"] += [dict(e) for e in document["defects"][::7]]
    return chip, document


def test_a_larger_chip_with_lines_and_measured_values_is_as_specified(tmp_path: Path):
    chip, document = _larger_document()
    assert any(d.row is None for d in chip.defects) and any(d.col is None for d in chip.defects)
    _assert_as_specified(chip)
    loaded = parse_chip(json.loads(json.dumps(document)), "c.json")
    assert len(loaded.defects) == len(document["defects"]) and loaded.arrays[1].id == 3
    _assert_as_specified(loaded)
    save_chip(loaded, tmp_path / "c.json")
    assert load_chip(tmp_path / "c.json") == loaded


def test_a_loaded_chip_makes_its_defect_objects_only_when_read_and_they_are_the_file_s(tmp_path: Path):
    """Loading keeps the validated table and makes the Defects on first use (issue 19: a Program's 84,000
    defect entries took 0.1 s as objects); the fingerprint comes from the table, and equals the spec's."""
    import pickle

    _, document = _larger_document()
    document["defects"][0]["g_uS"] = 250  # an int conductance becomes a float, as the constructor makes it
    expected = tuple(Defect(**{"row": None, "col": None, **e}) for e in document["defects"])
    assert any(d.row is None for d in expected) and any(d.col is None for d in expected)
    loaded = parse_chip(json.loads(json.dumps(document)), "c.json")
    assert "defects" not in loaded.__dict__  # nothing has read them yet
    canonical = {**{k: v for k, v in document.items() if k != "name"}, "defects": [
        {**e, "g_uS": float(e["g_uS"])} if "g_uS" in e else e for e in document["defects"]]}
    models = chip_to_json(parse_chip(json.loads(json.dumps(document)), "c.json"))  # the models written out
    canonical["device"], canonical["periphery"] = models["device"], models["periphery"]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    assert loaded.fingerprint() == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert "defects" not in loaded.__dict__  # the fingerprint did not need them either
    unpickled = pickle.loads(pickle.dumps(loaded))
    assert loaded.defects == expected and type(loaded.defects[0].g_uS) is float
    assert unpickled.defects == expected
    built = Chip(arrays=loaded.arrays, defects=expected, device=loaded.device, periphery=loaded.periphery,
                 name=loaded.name)
    assert built == loaded and hash(built) == hash(parse_chip(json.loads(json.dumps(document)), "c.json"))
    assert Chip(arrays=loaded.arrays).defects == () and Chip.defects == ()


def test_bad_entries_late_in_a_larger_chip_are_named_in_file_order():
    chip, document = _larger_document()
    entries = document["defects"]
    devices = [i for i, e in enumerate(entries) if "row" in e and "col" in e]
    late = entries[devices[-1]]
    other = LOW if late["state"] == HIGH else HIGH
    same = [i for i in devices if (entries[i]["array"], entries[i]["row"], entries[i]["col"])
            == (late["array"], late["row"], late["col"])]  # fmt: skip
    assert len(same) == 2  # the device is listed twice (the repeats at the end): the first is named
    entries.append({**late, "state": other})
    entries[devices[5]]["row"] = 40
    entries[devices[9]]["state"] = "stuck"
    with pytest.raises(InvalidChipError) as info:
        parse_chip(json.loads(json.dumps(document)), "c.json")
    # Problems of single fields first, then coordinates and conflicts, each in file order.
    assert info.value.problems == [
        f'defects[{devices[9]}].state: "stuck" is not "stuck_high" or "stuck_low"',
        f"defects[{devices[5]}].row: 40 is outside array {entries[devices[5]]['array']} (40 rows)",
        f"defects[{len(entries) - 1}]: device (array {late['array']}, row {late['row']}, col {late['col']}) "
        f"is marked {other} here and {late['state']} in defects[{same[0]}]",
    ]
    # The same for the constructor: a conflict and a device outside its array, late in the list.
    last = chip.defects[-1]
    assert not last.is_line
    other = LOW if last.state == HIGH else HIGH
    extra = (Defect(last.array, last.row, last.col, other), Defect(3, 40, 0, HIGH))
    n = len(chip.defects)
    with pytest.raises(InvalidChipError) as info:
        Chip(arrays=chip.arrays, defects=chip.defects + extra, grid=True)
    assert info.value.problems == [
        f"defects[{n}]: device (array {last.array}, row {last.row}, col {last.col}) is marked {other} here "
        f"and {last.state} in defects[{n - 1}]",
        f"defects[{n + 1}].row: 40 is outside array 3 (40 rows)",
    ]


def test_entries_checked_one_by_one_keep_their_place_in_the_file():
    # An unknown array id and an exact str subclass are only checked entry by entry (not in bulk);
    # their messages and their place in the stuck map still follow the file's order.
    document = {"format": "leac-chip", "version": 1, "arrays": {"count": 1, "rows": 2, "cols": 2},
                "defects": [{"array": 7, "row": 0, "col": 0, "state": HIGH},
                            {"array": 0, "row": 9, "col": 0, "state": HIGH}]}  # fmt: skip
    with pytest.raises(InvalidChipError) as info:
        parse_chip(document, "c.json")
    assert info.value.problems == [
        "defects[0].array: 7 is not the id of any array",
        "defects[1].row: 9 is outside array 0 (2 rows)",
    ]

    class State(str):
        pass

    chip = Chip(arrays=(Array(0, 2, 2),), defects=(
        Defect(0, 1, 1, State(HIGH), 300.0), Defect(0, 1, 1, HIGH, 400.0), Defect(0, 0, 1, State(LOW), 5.0)))
    state, g = chip.stuck_map(0)
    assert state.tolist() == [[0, -1], [0, 1]] and g[1, 1] == 400.0 and g[0, 1] == 5.0  # the later entry wins
    assert chip_to_text(chip) == _expected_text(chip)


@pytest.mark.parametrize(
    "arrays, defects, path",
    [
        ({"count": 1, "rows": 2, "cols": 2}, [{"array": 0, "row": 0, "col": 0, "state": "stuck_high", "stat": 1}],
         "defects[0].stat"),
        ([{"id": 0, "rows": 2, "cols": 2, "extra": 1}], [], "arrays[0].extra"),
    ],
)
def test_unknown_key_in_an_otherwise_valid_entry_is_reported_not_a_crash(tmp_path, arrays, defects, path) -> None:
    from lea_compiler.cli import main

    chip = tmp_path / "chip.json"
    chip.write_text(json.dumps({"format": "leac-chip", "version": 1, "arrays": arrays, "defects": defects}))
    with pytest.raises(InvalidChipError, match=path.replace("[", r"\[").replace("]", r"\]") + ": unknown key"):
        load_chip(chip)
    assert main(["chip", "validate", str(chip)]) == 3
