"""The timeline picture (`plot_timeline`): bars merged per row and colour below a pixel, and a schedule above
the timeline's task limit drawn for a prefix of applications."""

from __future__ import annotations

import logging
import time

import numpy as np
import onnx
import pytest
from onnx import helper

from lea_compiler.backends import timing as timing_module
from lea_compiler.chip import Array, Chip, DeviceModel, Periphery
from lea_compiler.compiler import compile_model
from lea_compiler.pipeline import CompileOptions
from lea_compiler.plot_timeline import PREFIX_APPLICATIONS, merge_intervals
from tests.helpers import make_model


@pytest.mark.parametrize("seed", range(6))
def test_merged_intervals_cover_the_same_points_as_a_brute_force_union(seed) -> None:
    rng = np.random.default_rng(seed)
    start = rng.integers(0, 200, 60)
    end = start + rng.integers(1, 8, 60)
    gap = int(rng.integers(0, 3))
    merged_start, merged_end = merge_intervals(start.astype(float), end.astype(float), float(gap))
    covered = np.zeros(220, bool)
    for s, e in zip(start, end, strict=True):
        covered[s:e] = True
    drawn = np.zeros(220, bool)
    for s, e in zip(merged_start.astype(int), merged_end.astype(int), strict=True):
        drawn[s:e] = True
    assert np.all(drawn[covered])  # nothing is lost
    assert np.all(np.diff(merged_start) > 0) and np.all(merged_start[1:] > merged_end[:-1] + gap)
    # what is added is only gaps of at most `gap` between intervals
    runs = np.flatnonzero(np.diff(np.r_[0, (drawn & ~covered).astype(int), 0]))
    assert all(e - s <= gap for s, e in zip(runs[::2], runs[1::2], strict=True))
    if gap == 0:
        assert np.array_equal(drawn, covered)


def _conv_program(tmp_path, size: int):
    """A 1x1 conv, 2 -> 4 channels, on size x size pixels (size^2 applications), one 4 x 16 array, k = 1."""
    w = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, -1.0], np.float32).reshape(4, 2, 1, 1)
    model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], name="conv")],
                       {"x": (np.float32, ["N", 2, size, size])}, ["y"], {"W": w})
    onnx.save(model, tmp_path / "m.onnx")
    chip = Chip(arrays=(Array(0, 4, 16),), device=DeviceModel(levels_uS=(100.0, 250.0), write_noise_uS=0.0,
                                                             read_noise_uS=0.0), periphery=Periphery())
    return compile_model(tmp_path / "m.onnx", chip, CompileOptions(k=1)).program


def test_a_conv_of_thousands_of_applications_is_drawn_as_few_rectangles(tmp_path, caplog) -> None:
    """4,096 applications (back to back on one array: 8,192 reads and conversions) draw as a handful of
    rectangles per row and colour, in about a second (one patch per task took 31 s for the same count)."""
    pytest.importorskip("matplotlib")
    from lea_compiler.plot_timeline import draw_timeline

    program = _conv_program(tmp_path, 64)
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="lea_compiler.plot_timeline"):
        drawn = draw_timeline(program, tmp_path / "t.png")
    assert time.perf_counter() - started < 15.0
    assert drawn.exact and drawn.tasks > 4096 * 4
    rectangles = int(caplog.records[-1].getMessage().split("resources, ")[1].split()[0])
    assert rectangles <= 40
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_above_the_task_limit_each_layers_first_applications_are_drawn(tmp_path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    from lea_compiler.plot_timeline import draw_timeline

    program = _conv_program(tmp_path, 40)  # 1,600 applications
    monkeypatch.setattr(timing_module, "MAX_TIMED_TASKS", 1000)
    drawn = draw_timeline(program, tmp_path / "t.png")
    monkeypatch.setattr(timing_module, "MAX_TIMED_TASKS", 1 << 23)
    whole = draw_timeline(program, tmp_path / "u.png")
    # per application: the input maximum, 2 reads, 2 conversions and the combine; 2 other nodes
    assert whole.exact and whole.tasks == 1600 * 6 + 2
    assert PREFIX_APPLICATIONS == 1024 and drawn.exact and drawn.tasks == 128 * 6 + 2  # 1024, 512, 256 too many
