"""The full IR dump (lea_compiler/ir_dump.py) prints the same text on every machine: floats rounded, noise as 0,
large arrays as a digest of their rounded values, wall-clock fields masked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from lea_compiler.ir import Graph
from lea_compiler.ir_dump import array_digest, dump_graph, format_array, format_float, format_value


def test_floats_print_with_six_significant_digits_and_noise_as_zero() -> None:
    assert format_float(1.2345678) == "1.23457"
    assert format_float(-123456.78) == "-123457"
    assert format_float(8.012e-17) == "0" and format_float(-1e-12) == "0"
    assert format_float(2.5e-5) == "2.5e-05"
    assert format_float(float("nan")) == "nan" and format_float(float("-inf")) == "-inf"


def test_a_digest_ignores_the_last_bits_and_noise_but_not_the_sixth_digit() -> None:
    values = np.linspace(-3.0, 7.0, 40)
    digest = array_digest(values)
    assert array_digest(values * (1 + 1e-13)) == digest
    noisy = values.copy()
    noisy[np.argmin(np.abs(values))] += 3e-17
    assert array_digest(noisy) == digest
    changed = values.copy()
    changed[3] += 1e-4
    assert array_digest(changed) != digest
    assert array_digest(values.reshape(8, 5)) != digest  # the shape counts
    assert array_digest(np.arange(40)) == array_digest(np.arange(40, dtype=np.int8))  # integers exactly


def test_small_arrays_print_their_values_and_large_ones_a_summary() -> None:
    assert format_array(np.array([[1, -1], [0, 2]], np.int8)) == "int8[2, 2] [[1, -1], [0, 2]]"
    assert format_array(np.array([0.1, 1 / 3])) == "float64[2] [0.1, 0.333333]"
    large = np.linspace(0.0, 1.0, 100)
    assert format_array(large) == f"float64[100] 0..1 #{array_digest(large)}"


def test_a_graph_dump_prints_every_fact_field_and_masks_wall_clock_times() -> None:
    @dataclass(frozen=True)
    class Fact:
        gain: float
        seconds: float
        values: tuple[int, ...]

    graph = Graph("g", {"": 17})
    x = graph.add_input("x", np.float32, ("N", 2))
    w = graph.add_initializer("w", np.full((2, 2), 0.5, np.float32))
    node = graph.add_node("MatMul", [x, w], ["y"], name="mm")
    graph.outputs.append(node.outputs[0])
    node.set_fact(Fact(1.0000000000001, 12.3, (1, 2)))
    graph.set_fact(Fact(0.5, 4.0, ()))
    text = dump_graph(graph)
    assert "      Fact\n        gain = 1\n        seconds = ...\n        values = (1, 2)" in text
    assert "  fact Fact\n    gain = 0.5\n    seconds = ...\n    values = ()" in text
    assert "const  %w: float32[2, 2] = float32[2, 2] [[0.5, 0.5], [0.5, 0.5]]" in text
    assert dump_graph(graph) == text


def test_an_unknown_kind_of_value_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot print a object"):
        format_value(object())
