"""Tests of lea_compiler/plot.py: the defect heat map."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lea_compiler.chip import Array, Chip, Defect, synth_chip
from lea_compiler.errors import UsageError
from lea_compiler.plot import plot_chip_defects

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_heat_map_of_a_synthetic_chip(tmp_path: Path):
    pytest.importorskip("matplotlib")
    chip = synth_chip(seed=3, dead_rows=0.02, name="paper-like")
    plot_chip_defects(chip, tmp_path / "chip.png")
    data = (tmp_path / "chip.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.png"]  # no temporary left


def test_heat_map_of_mixed_array_sizes_and_one_array(tmp_path: Path):
    pytest.importorskip("matplotlib")
    mixed = Chip(
        arrays=(Array(2, 4, 9), Array(7, 12, 3), Array(9, 1, 1)),
        defects=(Defect(2, 1, None, "stuck_low"), Defect(7, 3, 2, "stuck_high", 900.0)),
    )
    plot_chip_defects(mixed, tmp_path / "mixed.png")
    assert (tmp_path / "mixed.png").read_bytes().startswith(PNG_MAGIC)
    single = Chip(arrays=(Array(0, 2, 2),))
    plot_chip_defects(single, tmp_path / "single.png")
    assert (tmp_path / "single.png").read_bytes().startswith(PNG_MAGIC)


def test_many_arrays_still_make_a_reasonable_picture(tmp_path: Path):
    pytest.importorskip("matplotlib")
    from PIL import Image  # matplotlib depends on pillow

    chip = synth_chip(arrays=64, rows=4, cols=4, seed=0)
    plot_chip_defects(chip, tmp_path / "many.png")
    with Image.open(tmp_path / "many.png") as image:
        width, height = image.size
    assert width <= 3000 and height <= 3000


def test_missing_matplotlib_is_a_usage_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        UsageError, match=r"needs the plot extra: pip install 'lea-compiler\[plot\]'"
    ):
        plot_chip_defects(Chip(arrays=(Array(0, 2, 2),)), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
