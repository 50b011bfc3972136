"""Pictures of a chip for people: a heat map of every array's stuck devices.

matplotlib is an optional extra (`pip install 'lea-compiler[plot]'`); it is
imported only when a picture is asked for, and its absence is a clear usage
error, not an ImportError. Rendering uses the Agg canvas directly (no pyplot,
no global backend switch) and the PNG is written atomically.

The defect colours and `draw_defects` are the one definition of how a stuck
map looks: the chip heat map here and the placement picture
(lea_compiler/plot_placement.py) both draw arrays with them.
"""

from __future__ import annotations

import io
import logging
import math
import os
from typing import Any

import numpy as np

from lea_compiler.chip import Chip
from lea_compiler.errors import UsageError
from lea_compiler.fileio import atomic_write_bytes

logger = logging.getLogger(__name__)

# Colours for stuck low (-1), healthy (0) and stuck high (+1).
DEFECT_COLOURS = ("#2166ac", "#f0f0f0", "#d6604d")
DEFECT_LABELS = ("stuck low", "healthy", "stuck high")
PLOT_EXTRA = "pip install 'lea-compiler[plot]'"


def require_matplotlib(what: str) -> None:
    """Raise a usage error naming the `plot` extra when matplotlib cannot be imported.

    Args:
        what: What needs it, for the message ("drawing a chip").

    Raises:
        UsageError: matplotlib (the `plot` extra) is not installed.
    """
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"{what} needs the plot extra: {PLOT_EXTRA}") from exc


def new_figure(width_in: float, height_in: float, dpi: int = 100) -> Any:
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global state); call `require_matplotlib` first."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure rendered as PNG bytes (written by the caller, atomically)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def draw_defects(ax: Any, state: np.ndarray, *, alpha: float = 1.0) -> None:
    """Draw one array's stuck map (`Chip.stuck_map`'s state: -1 low, 0 healthy, +1 high) on `ax`, rows down."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap(list(DEFECT_COLOURS))
    norm = BoundaryNorm([-1.5, -0.5, 0.5, 1.5], cmap.N)
    ax.imshow(state, cmap=cmap, norm=norm, interpolation="nearest", alpha=alpha)


def defect_legend_handles() -> list[Any]:
    """Legend entries for the three device states, in the colours `draw_defects` uses."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=c, edgecolor="#888888", label=t) for c, t in zip(DEFECT_COLOURS, DEFECT_LABELS,
                                                                               strict=True)]


def plot_chip_defects(chip: Chip, path: str | os.PathLike[str]) -> None:
    """Write a PNG heat map of every array's defects, one small subplot per array.

    Each subplot shows one array (rows down, columns across) with healthy,
    stuck-high and stuck-low devices in three colours and the array id as
    title, so dead lines and clusters of stuck devices stand out at a glance.

    Args:
        chip: The chip to draw.
        path: The PNG file to write (atomically).

    Raises:
        UsageError: matplotlib (the `plot` extra) is not installed.
    """
    require_matplotlib("drawing a chip")
    n = len(chip.arrays)
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    # About 1.3 inches per array, but never a poster: big chips get smaller tiles.
    tile = max(0.4, min(1.3, 26.0 / ncols))
    # At least wide enough for the title and the legend.
    fig = new_figure(max(4.8, ncols * tile + 0.4), nrows * tile + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    title_size = max(4.0, min(8.0, 10.0 * tile / 1.3))
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        arr = chip.arrays[k]
        state, _ = chip.stuck_map(arr.id)
        draw_defects(ax, state)
        ax.set_title(f"{arr.id}", fontsize=title_size, pad=2)
    counts = chip.defect_counts()
    fig.suptitle(
        f"{chip.display_name or 'chip'}: {counts['stuck_high']} stuck high, "
        f"{counts['stuck_low']} stuck low of {chip.device_count} devices",
        fontsize=9,
    )
    fig.legend(handles=defect_legend_handles(), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(
        left=0.02,
        right=0.98,
        bottom=0.6 / fig.get_figheight(),
        top=1 - 0.45 / fig.get_figheight(),
        wspace=0.15,
        hspace=0.35,
    )
    atomic_write_bytes(path, png_bytes(fig))
    logger.info("wrote %s (%d arrays)", os.fspath(path), n)
