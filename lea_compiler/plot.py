"""Pictures of a chip for people: a heat map of every array's stuck devices.

matplotlib is an optional extra (`pip install 'lea-compiler[plot]'`); it is
imported only when a picture is asked for, and its absence is a clear usage
error, not an ImportError. Rendering uses the Agg canvas directly (no pyplot,
no global backend switch) and the PNG is written atomically.
"""

from __future__ import annotations

import io
import logging
import math
import os

from lea_compiler.chip import Chip
from lea_compiler.errors import UsageError
from lea_compiler.fileio import atomic_write_bytes

logger = logging.getLogger(__name__)

# Colours for stuck low (-1), healthy (0) and stuck high (+1).
_COLOURS = ("#2166ac", "#f0f0f0", "#d6604d")
_LABELS = ("stuck low", "healthy", "stuck high")


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
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import BoundaryNorm, ListedColormap
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise UsageError(
            "drawing a chip needs the plot extra: pip install 'lea-compiler[plot]'"
        ) from exc

    n = len(chip.arrays)
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    # About 1.3 inches per array, but never a poster: big chips get smaller tiles.
    tile = max(0.4, min(1.3, 26.0 / ncols))
    # At least wide enough for the title and the legend.
    fig = Figure(figsize=(max(4.8, ncols * tile + 0.4), nrows * tile + 0.9), dpi=100)
    FigureCanvasAgg(fig)
    cmap = ListedColormap(list(_COLOURS))
    norm = BoundaryNorm([-1.5, -0.5, 0.5, 1.5], cmap.N)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    title_size = max(4.0, min(8.0, 10.0 * tile / 1.3))
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        arr = chip.arrays[k]
        state, _ = chip.stuck_map(arr.id)
        ax.imshow(state, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(f"{arr.id}", fontsize=title_size, pad=2)
    counts = chip.defect_counts()
    fig.suptitle(
        f"{chip.display_name or 'chip'}: {counts['stuck_high']} stuck high, "
        f"{counts['stuck_low']} stuck low of {chip.device_count} devices",
        fontsize=9,
    )
    handles = [
        Patch(facecolor=c, edgecolor="#888888", label=t)
        for c, t in zip(_COLOURS, _LABELS, strict=True)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(
        left=0.02,
        right=0.98,
        bottom=0.6 / fig.get_figheight(),
        top=1 - 0.45 / fig.get_figheight(),
        wspace=0.15,
        hspace=0.35,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    logger.info("wrote %s (%d arrays)", os.fspath(path), n)
