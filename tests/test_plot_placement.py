"""Tests of lea_compiler/plot_placement.py: the placement picture of `leac show`, on small Programs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import lea_compiler as leac
from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.errors import UsageError
from lea_compiler.plot_placement import (
    UNUSED_ALPHA,
    page_arrays,
    page_paths,
    placed_halves,
    placement_figures,
    render_placement,
    write_placement,
)
from lea_compiler.program import Program
from tests.helpers import mlp_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def compiled(folder: Path, *, arrays: int, rows: int = 16, cols: int = 16, stuck_high: float = 0.08,
             beta: int | None = 2) -> Program:
    """The 4-12-6-3 MLP at k = 3 on a synthetic chip with many stuck devices (greedy placer: fast)."""
    model, chip = folder / "mlp.onnx", folder / f"chip{arrays}.json"
    onnx.save(mlp_model(), model)
    save_chip(synth_chip(arrays=arrays, rows=rows, cols=cols, stuck_high=stuck_high, seed=2), chip)
    return leac.compile(model, chip, k=3, beta=beta, placer="greedy")


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Program:
    return compiled(tmp_path_factory.mktemp("placement"), arrays=6)


def test_the_halves_are_every_copy_half_with_its_stuck_devices(program: Program) -> None:
    halves = placed_halves(program)
    expected = sum(2 * len(b.copies) for layer in program.layers for b in layer.blocks)
    assert len(halves) == expected == 2 * 3 * 3  # 3 one-block layers, k = 3, G+ and G-
    for half in halves:
        block = program.layer(half.layer).blocks[half.block]
        copy = block.copies[half.copy]
        region = getattr(copy, half.half).region
        assert (half.array, half.row, half.col) == (region.array, region.row, region.col)
        assert (half.rows, half.cols) == block.shape
        state = program.chip.stuck_map(half.array)[0]
        brute = sum(state[r, c] != 0 for r in range(half.row, half.row + half.rows)
                    for c in range(half.col, half.col + half.cols))
        assert half.stuck == brute
        assert half.averaged_cols == int(block.selection[half.copy].sum())
    assert sum(h.stuck for h in halves) > 0  # the chip is bad enough that the picture marks something


def test_the_figure_draws_every_half_labelled_with_its_stuck_devices_marked(program: Program) -> None:
    pytest.importorskip("matplotlib")
    figures, pages, omitted, halves = placement_figures(program)
    assert len(figures) == 1 and pages == [[0, 1, 2, 3, 4, 5]] and omitted == []
    axes = [ax for ax in figures[0].axes if ax.get_visible() and ax.axison]
    assert len(axes) == 6
    labels = [p.get_label() for ax in axes for p in ax.patches]
    for half in halves:
        assert labels.count(f"{half.layer} b{half.block} c{half.copy} {half.half}") == 1
    texts = [" ".join(t.get_text().split()) for ax in axes for t in ax.texts]
    for half in halves:
        sign = "+" if half.half == "pos" else "\u2212"
        assert f"{half.layer} b{half.block} c{half.copy} {sign}" in texts
    marked = sum(len(c.get_offsets()) for ax in axes for c in ax.collections)
    assert marked == sum(h.stuck for h in halves)  # one x per stuck device under a copy (halves never overlap)
    titles = [ax.get_title() for ax in axes]
    assert all(t.startswith(f"array {i} (16 \u00d7 16)") for i, t in zip(range(6), titles, strict=True))
    assert all(ax.get_xlabel() in ("", "column (bit line)") and ax.get_ylabel() in ("", "row (word line)")
               for ax in axes)
    assert any(ax.get_xlabel() for ax in axes) and any(ax.get_ylabel() for ax in axes)
    legend = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert {"fc0", "fc1", "fc2", "G+ half", "G\u2212 half", "stuck high", "stuck low",
            "stuck device under a copy", "column not averaged (beta < alpha)"} <= set(legend)
    # beta = 2 of 3: every column leaves one copy out, which is hatched
    hatches = [p for ax in axes for p in ax.patches if p.get_hatch()]
    assert hatches


def test_unused_arrays_are_faded(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    program = compiled(tmp_path, arrays=12, rows=25, cols=25, stuck_high=0.01)
    used = set(program.arrays_used)
    assert len(used) < 12
    figures, pages, _, _ = placement_figures(program)
    axes = [ax for ax in figures[0].axes if ax.axison]
    for array, ax in zip(pages[0], axes, strict=True):
        alpha = ax.images[0].get_alpha()
        assert alpha == (1.0 if array in used else UNUSED_ALPHA)
        assert ax.get_title().endswith("no copy") == (array not in used)
    assert "array holding no copy" in [t.get_text() for t in figures[0].legends[0].get_texts()]


def test_pages(program: Program) -> None:
    used = program.arrays_used
    pages, omitted = page_arrays(program, per_page=2)  # the chip is larger than a page: used arrays only
    assert [a for page in pages for a in page] == used and all(len(p) <= 2 for p in pages)
    assert omitted == [i for i in range(6) if i not in used]
    pages, omitted = page_arrays(program, per_page=2, all_arrays=True)
    assert pages == [[0, 1], [2, 3], [4, 5]] and omitted == []
    assert page_arrays(program, per_page=6) == ([[0, 1, 2, 3, 4, 5]], [])
    assert page_paths("out/p.png", 1) == [Path("out/p.png")]
    assert page_paths("out/p.png", 3) == [Path("out/p-1.png"), Path("out/p-2.png"), Path("out/p-3.png")]
    for bad in (0, 101, 2.5, True):
        with pytest.raises(UsageError, match=r"arrays per page must be an integer in 1\.\.100"):
            page_arrays(program, per_page=bad)  # type: ignore[arg-type]


def test_page_layout_of_a_large_chip() -> None:
    """Which arrays each page draws, on a 20 000-array chip, against a brute force (its speed is not asserted
    here: tests never time code)."""
    from types import SimpleNamespace

    n = 20_000
    used = list(range(0, n, 7))
    fake = SimpleNamespace(chip=SimpleNamespace(arrays=[SimpleNamespace(id=i) for i in range(n)]), arrays_used=used)
    for all_arrays, drawn in ((True, list(range(n))), (False, used)):
        pages, omitted = page_arrays(fake, per_page=100, all_arrays=all_arrays)  # type: ignore[arg-type]
        assert [i for page in pages for i in page] == drawn and all(len(page) <= 100 for page in pages)
        assert omitted == ([] if all_arrays else [i for i in range(n) if i % 7 != 0])


def test_pages_are_drawn_and_rendered_one_at_a_time(program: Program, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page's Figure is rendered and cleared before the next is drawn (never all in memory at once), and
    `max_pages` draws only the first pages, their titles counting them all."""
    pytest.importorskip("matplotlib")
    import lea_compiler.plot_placement as plot_placement

    events: list[str] = []
    figures: list[Any] = []
    draw, render = plot_placement._page, plot_placement.png_bytes
    monkeypatch.setattr(plot_placement, "_page", lambda *a: events.append("draw") or draw(*a))

    def rendered(fig: Any) -> bytes:
        events.append(f"render {len(fig.axes)} axes")
        figures.append(fig)
        return render(fig)

    monkeypatch.setattr(plot_placement, "png_bytes", rendered)
    picture = render_placement(program, per_page=2, all_arrays=True)
    assert events == ["draw", "render 2 axes"] * 3 and len(picture.pages) == 3 and picture.not_rendered == ()
    assert [len(fig.axes) for fig in figures] == [0, 0, 0]  # each cleared once rendered
    events.clear()
    titles: list[str] = []
    monkeypatch.setattr(plot_placement, "png_bytes",
                        lambda fig: titles.append(fig.get_suptitle()) or render(fig))
    picture = render_placement(program, per_page=2, all_arrays=True, max_pages=1)
    assert events == ["draw"] and len(picture.pages) == 1 and picture.arrays == ((0, 1),)
    assert picture.not_rendered == ((2, 3), (4, 5)) and titles[0].endswith("page 1 of 3")


def test_paginated_pictures_are_valid_pngs(program: Program, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    picture = render_placement(program, per_page=2, all_arrays=True)
    files = write_placement(picture, tmp_path / "p.png")
    assert [f.name for f in files] == ["p-1.png", "p-2.png", "p-3.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p-1.png", "p-2.png", "p-3.png"]  # no temporary left
    assert all(f.read_bytes().startswith(PNG_MAGIC) for f in files)
    assert picture.arrays == ((0, 1), (2, 3), (4, 5))


def test_a_400_array_chip_draws_its_used_arrays_on_one_readable_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image  # matplotlib depends on pillow

    program = compiled(tmp_path, arrays=400, stuck_high=0.02, beta=None)
    picture = render_placement(program)
    assert picture.arrays == (tuple(program.arrays_used),)
    assert len(picture.omitted) == 400 - len(program.arrays_used)
    files = write_placement(picture, tmp_path / "big.png")
    with Image.open(files[0]) as image:
        width, height = image.size
    assert 700 <= width <= 3000 and height <= 3000


def test_a_hostile_layer_name_is_drawn_as_text(tmp_path: Path) -> None:
    """Names go through printable() and matplotlib's math parsing is off: `$...$` and control characters are
    drawn as they are, not interpreted."""
    pytest.importorskip("matplotlib")
    model = mlp_model()
    for node in model.graph.node:
        if node.name == "fc0":
            node.name = "$\\x$\x1b"
    onnx.save(model, tmp_path / "m.onnx")
    save_chip(synth_chip(arrays=4, rows=16, cols=16, seed=1), tmp_path / "c.json")
    program = leac.compile(tmp_path / "m.onnx", tmp_path / "c.json", k=2, placer="greedy")
    figures, _, _, _ = placement_figures(program)
    texts = [t for ax in figures[0].axes for t in ax.texts]
    assert any(t.get_text().startswith("$\\x$\\x1b") and not t.get_parse_math() for t in texts)
    render_placement(program)  # renders without a mathtext error


def test_missing_matplotlib_is_a_usage_error_naming_the_extra(program: Program, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"drawing a placement needs the plot extra: pip install "
                                         r"'lea-compiler\[plot\]'"):
        render_placement(program)
    assert np.array_equal(placed_halves(program)[0].stuck, placed_halves(program)[0].stuck)  # facts need no plot
    assert list(tmp_path.iterdir()) == []
