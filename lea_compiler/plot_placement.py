"""The placement picture: where every copy of every block of a Program sits on its chip (`leac show`).

Each array is drawn as its defect map (lea_compiler/plot.py's colours: stuck
low blue, healthy grey, stuck high red), rows down and columns across, and
every placed copy half over it as a rectangle in its layer's colour (G+ solid
edge, G- dashed) labelled with its layer, block and copy. Stuck devices under a
copy are marked with a black x: they are what the placer paid for (the
placement cost) and what encoding and selection then work around. Columns a
copy holds but does not average (beta < alpha: the selection pass kept other
copies there) are hatched. Arrays holding no copy are faded.

Pages: a chip of at most `per_page` arrays is drawn whole on one page. A
larger chip (a 400-array chip would give tiles too small to read) is drawn as
its used arrays only, `per_page` to a page, and the unused arrays are counted
in the page title; `all_arrays=True` draws every array, paginated.
`page_paths` names the files: OUT itself for one page, OUT-1, OUT-2, ... (the
suffix kept) for several.

matplotlib (the `plot` extra) is imported only when a picture is drawn; the
facts (`placed_halves`, `page_arrays`) need only numpy, so reports and tests
can use them without it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lea_compiler.errors import UsageError
from lea_compiler.fileio import atomic_write_bytes
from lea_compiler.geometry import POLARITIES
from lea_compiler.plot import defect_legend_handles, draw_defects, new_figure, png_bytes, require_matplotlib
from lea_compiler.program import Program
from lea_compiler.tables import printable

logger = logging.getLogger(__name__)

DEFAULT_PER_PAGE = 36
"""Arrays per page: 6 x 6 tiles of about 2.7 inches, where a 4-row copy of a 25-row array still takes a label."""
MAX_PER_PAGE = 100
UNUSED_ALPHA = 0.25
"""Opacity of an array that holds no copy."""
_LAYER_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                  "#7f7f7f", "#393b79", "#637939", "#843c39")
"""Distinct layer colours (matplotlib's tab10 without its red, which is stuck high's, then darker ones)."""
_HALF_SIGN = {"pos": "+", "neg": "\u2212"}
_MAX_NAME = 14
"""Characters of a layer name a label shows (the legend shows more)."""


@dataclass(frozen=True)
class PlacedHalf:
    """One copy half of one block as placed: which layer, block, copy and polarity, and where it sits."""

    layer: str
    block: int
    copy: int
    half: str  # "pos" (G+) or "neg" (G-)
    array: int
    row: int
    col: int
    rows: int
    cols: int
    stuck: int  # stuck devices under it (the chip's, dead lines included)
    averaged_cols: int  # of its cols, the columns whose output averages this copy (the selection, beta of alpha)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def placed_halves(program: Program) -> list[PlacedHalf]:
    """Every copy half of the Program, layer by layer, block by block, copy by copy (G+ then G-)."""
    states = {arr.id: program.chip.stuck_map(arr.id)[0] for arr in program.chip.arrays}
    out = []
    for layer in program.layers:
        for block in layer.blocks:
            rows, cols = block.shape
            for n, copy in enumerate(block.copies):
                averaged = int(np.count_nonzero(block.selection[n]))
                for polarity in POLARITIES:
                    region = getattr(copy, polarity).region
                    window = states[region.array][region.row:region.row + rows, region.col:region.col + cols]
                    out.append(PlacedHalf(layer.name, block.index, copy.copy, polarity, region.array, region.row,
                                          region.col, rows, cols, int(np.count_nonzero(window)), averaged))
    return out


def page_arrays(program: Program, *, per_page: int = DEFAULT_PER_PAGE,
                all_arrays: bool = False) -> tuple[list[list[int]], list[int]]:
    """Which arrays each page draws, and the arrays no page draws (see the module docstring).

    Raises:
        UsageError: `per_page` outside 1..MAX_PER_PAGE.
    """
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise UsageError(f"arrays per page must be an integer in 1..{MAX_PER_PAGE}, got {per_page!r}")
    ids = [arr.id for arr in program.chip.arrays]
    used = set(program.arrays_used)
    drawn = ids if all_arrays or len(ids) <= per_page else [i for i in ids if i in used]
    on_pages = set(drawn)  # once, not per array: a 10 000-array chip is 10 000 lookups, not 10^8
    omitted = [i for i in ids if i not in on_pages]
    return [drawn[i:i + per_page] for i in range(0, len(drawn), per_page)], omitted


def page_paths(path: str | os.PathLike[str], pages: int) -> list[Path]:
    """The files of a picture of `pages` pages asked for as `path`: `path` itself, or `STEM-1.SUFFIX`, ..."""
    out = Path(path)
    if pages == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, pages + 1)]


@dataclass(frozen=True)
class PlacementPicture:
    """A rendered placement picture: one PNG per page, what each page draws and what no page draws."""

    pages: tuple[bytes, ...]
    arrays: tuple[tuple[int, ...], ...]  # array ids on each page
    omitted: tuple[int, ...]  # arrays on no page (unused, on a chip larger than a page)
    halves: tuple[PlacedHalf, ...]
    not_rendered: tuple[tuple[int, ...], ...] = ()
    """The array ids of the pages after the first `max_pages` (`render_placement`), which were not drawn."""


def render_placement(program: Program, *, per_page: int = DEFAULT_PER_PAGE, all_arrays: bool = False,
                     title: str | None = None, max_pages: int | None = None) -> PlacementPicture:
    """Draw the placement picture (every page as PNG bytes), one page at a time: each page's Figure is rendered
    and cleared before the next is drawn, so only one is ever in memory.

    Args:
        program: The compiled Program.
        per_page: Arrays per page (1..MAX_PER_PAGE).
        all_arrays: Draw every array, paginated, even on a chip larger than a page.
        title: What the picture is of (default: the model and chip names).
        max_pages: Draw only the first this many pages (None: all); the others are `not_rendered`. Their
            titles still count every page ("page 1 of 12").

    Raises:
        UsageError: matplotlib (the `plot` extra) is not installed, or `per_page` is out of range.
    """
    pages, omitted = page_arrays(program, per_page=per_page, all_arrays=all_arrays)
    require_matplotlib("drawing a placement")
    halves = placed_halves(program)
    drawn = pages if max_pages is None else pages[:max(0, max_pages)]
    pngs = []
    for fig in _figures(program, drawn, len(pages), omitted, halves, title):
        pngs.append(png_bytes(fig))
        fig.clear()  # no pyplot holds it: cleared and dropped, its artists go before the next page's
    return PlacementPicture(tuple(pngs), tuple(tuple(p) for p in drawn), tuple(omitted), tuple(halves),
                            tuple(tuple(p) for p in pages[len(drawn):]))


def write_placement(picture: PlacementPicture, path: str | os.PathLike[str],
                    written: list[Path] | None = None) -> list[Path]:
    """Write a rendered picture's pages (each atomically) to `page_paths(path, pages)`; the files written.

    Each file is appended to `written` (when given) as soon as it is in place, so a caller whose write failed
    part way knows which files this call wrote (and no others: an earlier picture's pages are not its own).
    """
    paths = page_paths(path, len(picture.pages))
    for file, data in zip(paths, picture.pages, strict=True):
        atomic_write_bytes(file, data)
        if written is not None:
            written.append(file)
        logger.info("wrote %s", file)
    return paths


def placement_figures(program: Program, *, per_page: int = DEFAULT_PER_PAGE, all_arrays: bool = False,
                      title: str | None = None) -> tuple[list[Any], list[list[int]], list[int], list[PlacedHalf]]:
    """The picture's matplotlib Figures (one per page), the arrays of each page, the arrays omitted and the
    copy halves: `render_placement` without the rendering, for tests and for callers that lay pages out.

    Raises:
        UsageError: matplotlib (the `plot` extra) is not installed, or `per_page` is out of range.
    """
    pages, omitted = page_arrays(program, per_page=per_page, all_arrays=all_arrays)
    require_matplotlib("drawing a placement")
    halves = placed_halves(program)
    return list(_figures(program, pages, len(pages), omitted, halves, title)), pages, omitted, halves


def _figures(program: Program, pages: Sequence[Sequence[int]], total: int, omitted: Sequence[int],
             halves: Sequence[PlacedHalf], title: str | None) -> Iterator[Any]:
    """The Figure of each of `pages` (the first of `total`), drawn as the caller asks for it."""
    colours = {layer.name: _LAYER_COLOURS[i % len(_LAYER_COLOURS)] for i, layer in enumerate(program.layers)}
    selections = {(layer.name, block.index): block.selection for layer in program.layers for block in layer.blocks}
    by_array: dict[int, list[PlacedHalf]] = {}
    for half in halves:
        by_array.setdefault(half.array, []).append(half)
    what = title or f"{program.model.get('file') or program.model.get('name')} on {program.chip.display_name or 'chip'}"
    headline = (f"{printable(what)}: {len(halves) // 2} block copies "
                f"({len(halves)} halves, G+ and G\u2212) on {len(program.arrays_used)} of "
                f"{len(program.chip.arrays)} arrays")
    for number, arrays in enumerate(pages, start=1):
        line = headline
        if total > 1:
            line += f"; page {number} of {total}"
        if omitted:
            line += f"\n{len(omitted)} arrays holding no copy are not drawn (--all-arrays draws them)"
        yield _page(program, arrays, by_array, colours, selections, line)


def _page(program: Program, arrays: Sequence[int], by_array: dict[int, list[PlacedHalf]], colours: dict[str, str],
          selections: dict[tuple[str, int], np.ndarray], headline: str) -> Any:
    """One page: a grid of arrays with their copies, the title and the legend."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = max(1, len(arrays))
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    tile = min(3.2, max(1.9, 16.0 / ncols))
    width = max(7.0, ncols * tile + 0.6)
    on_page = [half for array in arrays for half in by_array.get(array, [])]
    handles: list[Any] = [Patch(facecolor=c, edgecolor=c, alpha=0.55, label=_short(name, 30))
                          for name, c in colours.items()]
    handles += [Line2D([], [], color="black", lw=1.4, label="G+ half"),
                Line2D([], [], color="black", lw=1.4, ls="--", label="G\u2212 half"),
                *defect_legend_handles(),
                Line2D([], [], color="black", marker="x", ls="none", label="stuck device under a copy")]
    if any(array not in by_array for array in arrays):
        handles.append(Patch(facecolor="#f0f0f0", edgecolor="#888888", alpha=UNUSED_ALPHA,
                             label="array holding no copy"))
    if any(not selections[(half.layer, half.block)][half.copy].all() for half in on_page):
        handles.append(Patch(facecolor="none", edgecolor="#444444", hatch="////",
                             label="column not averaged (beta < alpha)"))
    legend_cols = max(2, min(6, int(width / 2.1)))
    top_in = 0.45 + 0.2 * headline.count("\n")
    bottom_in = 0.5 + 0.2 * math.ceil(len(handles) / legend_cols)
    fig = new_figure(width, nrows * tile + top_in + bottom_in)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(arrays):
            ax.set_axis_off()
            continue
        _draw_array(ax, program, arrays[k], by_array.get(arrays[k], []), colours, selections, tile,
                    left=k % ncols == 0, bottom=k + ncols >= len(arrays))
    fig.suptitle(headline, fontsize=10, parse_math=False, y=1 - 0.08 / fig.get_figheight(), va="top")
    legend = fig.legend(handles=handles, loc="lower center", ncol=legend_cols, fontsize=8, frameon=False)
    for text in legend.get_texts():
        text.set_parse_math(False)  # a layer name is text, never mathtext
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.5 / width, right=1 - 0.1 / width, bottom=bottom_in / height,
                        top=1 - (top_in + 0.3) / height, wspace=0.25, hspace=0.45)
    return fig


def _draw_array(ax: Any, program: Program, array_id: int, halves: Sequence[PlacedHalf], colours: dict[str, str],
                selections: dict[tuple[str, int], np.ndarray], tile: float, *, left: bool, bottom: bool) -> None:
    """One array: its defects, its copies (hatched where a column does not average the copy), the stuck devices
    under them, its caption and axis labels (row labels on the left column of tiles, column labels at the
    bottom)."""
    from matplotlib.patches import Rectangle

    arr = program.chip.array(array_id)
    state = program.chip.stuck_map(array_id)[0]
    draw_defects(ax, state, alpha=1.0 if halves else UNUSED_ALPHA)
    ax.set_xlim(-0.5, arr.cols - 0.5)
    ax.set_ylim(arr.rows - 0.5, -0.5)
    ax.set_xticks(sorted({0, arr.cols - 1}))
    ax.set_yticks(sorted({0, arr.rows - 1}))
    ax.tick_params(labelsize=6, length=2, pad=1)
    if left:
        ax.set_ylabel("row (word line)", fontsize=7, labelpad=1)
    if bottom:
        ax.set_xlabel("column (bit line)", fontsize=7, labelpad=1)
    covered = np.zeros(state.shape, dtype=bool)
    # Axes size in points, for fitting the labels: the tile less its ticks and title.
    pts_per_row = tile * 0.72 * 72 / max(arr.rows, arr.cols)
    for half in halves:
        colour = colours[half.layer]
        ax.add_patch(Rectangle((half.col - 0.5, half.row - 0.5), half.cols, half.rows, facecolor=colour, alpha=0.3,
                               edgecolor="none", label=f"{half.layer} b{half.block} c{half.copy} {half.half}"))
        ax.add_patch(Rectangle((half.col - 0.5, half.row - 0.5), half.cols, half.rows, facecolor="none",
                               edgecolor=colour, lw=1.4, ls="-" if half.half == "pos" else "--"))
        covered[half.row:half.row + half.rows, half.col:half.col + half.cols] = True
        skipped = ~selections[(half.layer, half.block)][half.copy]
        for start, stop in _runs(skipped):
            ax.add_patch(Rectangle((half.col + start - 0.5, half.row - 0.5), stop - start, half.rows,
                                   facecolor="none", edgecolor="#444444", lw=0, hatch="////"))
        _label(ax, half, pts_per_row)
    rows, cols = np.nonzero(covered & (state != 0))
    if rows.size:
        ax.scatter(cols, rows, marker="x", c="black", s=max(4.0, (0.6 * pts_per_row) ** 2), linewidths=0.8,
                   zorder=3)
    used = f"{len(halves)} copy halves, {rows.size} stuck under them" if halves else "no copy"
    ax.set_title(f"array {array_id} ({arr.rows} \u00d7 {arr.cols})\n{used}", fontsize=7, pad=3,
                 color="black" if halves else "#777777", parse_math=False)


def _label(ax: Any, half: PlacedHalf, pts_per_row: float) -> None:
    """Write `layer / bK cN +` in the half's rectangle, in the largest font (at most 7 pt) that fits, turned
    upright when the rectangle is taller than wide."""
    name = _short(half.layer, _MAX_NAME)
    rest = f"b{half.block} c{half.copy} {_HALF_SIGN[half.half]}"
    width, height = half.cols * pts_per_row, half.rows * pts_per_row
    best = (0.0, "", 0)
    for text in (f"{name}\n{rest}", f"{name} {rest}"):
        lines = text.split("\n")
        chars = max(len(line) for line in lines)
        for rotation, (w, h) in ((0, (width, height)), (90, (height, width))):
            size = min(7.0, 0.92 * w / (0.62 * chars), 0.92 * h / (1.2 * len(lines)))
            if size > best[0] + 0.25:
                best = (size, text, rotation)
    size, text, rotation = best
    ax.text(half.col + (half.cols - 1) / 2, half.row + (half.rows - 1) / 2, text, fontsize=max(2.5, size),
            rotation=rotation, ha="center", va="center", color="black", clip_on=True, parse_math=False,
            linespacing=1.0, zorder=4, bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.6})


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The [start, stop) runs of True in a 1-D bool array."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _short(name: str, limit: int) -> str:
    """A name printable and at most `limit` characters (an ellipsis where cut)."""
    text = printable(name)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
