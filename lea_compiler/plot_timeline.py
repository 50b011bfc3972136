"""The timeline of one inference as a picture (`leac simulate --timeline OUT.png`): a Gantt chart of which
resource does what when, so a designer sees the bottleneck.

Rows, top to bottom: each array the schedule reads (its DACs settling, hatched, then its reads), that array's
ADC bank, and the digital unit; bars are coloured by crossbar layer (the graph's other nodes in grey on the
digital row); the time axis is in ns. The timeline is `backends.cost.timeline_of`'s, the one `estimate_cost`
reports. matplotlib is the `plot` extra (`lea_compiler.plot.require_matplotlib`); the PNG is written atomically.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from lea_compiler.backends.cost import timeline_of
from lea_compiler.backends.timing import DIGITAL, Timing
from lea_compiler.chip import Chip
from lea_compiler.fileio import atomic_write_bytes
from lea_compiler.plot import new_figure, png_bytes, require_matplotlib
from lea_compiler.program import Program
from lea_compiler.schedule.plan import Schedule, schedule_of

logger = logging.getLogger(__name__)

OTHER_COLOUR = "#9d9d9d"
"""The digital unit's bars for the graph's non-crossbar nodes."""
MAX_LEGEND = 20
"""Layers named in the legend at most (a deep network's colours repeat beyond the palette anyway)."""
MERGE_FRACTION = 1 / 4000
"""Bars of one row and colour closer than this fraction of the time axis (under half a pixel of the ~1,100
pixel wide axis) are drawn as one rectangle: a conv's thousands of back-to-back reads are one bar, not one
patch each (matplotlib drew 4,096 applications in 31 s and 65,536 in more than 400 s)."""
PREFIX_APPLICATIONS = 1024
"""A schedule above the timeline's task limit (`backends.timing.MAX_TIMED_TASKS`) is drawn for each crossbar
layer's first this many applications (halved until within the limit), and the title says so."""


def merge_intervals(start: np.ndarray, end: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """The intervals [start, end) as few as possible: sorted, and joined where one starts at most `gap` after
    the ones before it end (gap 0: the union of touching or overlapping intervals)."""
    if len(start) == 0:
        return start, end
    order = np.argsort(start, kind="stable")
    s, e = start[order], np.maximum.accumulate(end[order])
    first = np.flatnonzero(np.r_[True, s[1:] > e[:-1] + gap])  # each merged interval's first
    return s[first], e[np.r_[first[1:] - 1, len(s) - 1]]


def draw_timeline(program: Program, path: str | os.PathLike[str], *, chip: Chip | None = None,
                  schedule: Schedule | None = None) -> Timing:
    """Write the Gantt chart of one inference of `program` (its `schedule`, e.g. a board file's) on `chip`'s
    periphery (default: the Program's chip) to the PNG `path`, atomically; returns the timeline drawn.

    Raises:
        UsageError: matplotlib (the `plot` extra) is not installed, or `path` is not a regular file.
    """
    require_matplotlib("drawing the timeline")
    chip = chip or program.chip
    schedule = schedule or schedule_of(program)
    timing = timeline_of(program, schedule, chip.periphery, bars=True)
    prefix = ""
    tasks, applications = timing.tasks, PREFIX_APPLICATIONS
    while not timing.exact:  # halve the prefix until it is within the limit (at 1 application it is, or less)
        timing = timeline_of(program, schedule, chip.periphery, bars=True, max_applications=applications)
        prefix = (f"each layer's first {applications} applications (the schedule's {tasks:,} tasks are above the "
                  "timeline's limit)\n")
        if applications == 0:
            break
        applications //= 2
    layers = [node.name for node in program.graph.nodes_of("MVM")]
    palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#ff9da6", "#9d755d"]
    colour = {name: palette[i % len(palette)] for i, name in enumerate(layers)}
    arrays = sorted({int(b.resource.split()[1]) for b in timing.bars if b.resource != DIGITAL})
    rows = [row for a in arrays for row in (f"array {a}", f"adc {a}")] + [DIGITAL]
    position = {row: len(rows) - 1 - i for i, row in enumerate(rows)}  # the first row on top
    fig = new_figure(10.0, 1.2 + 0.32 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    gap = max(timing.latency_ns, 1e-9) * MERGE_FRACTION
    drawn = 0
    for bar in timing.bars:
        start, end = merge_intervals(bar.start, bar.end, gap)
        drawn += len(start)
        spans = list(zip(start.tolist(), (end - start).tolist(), strict=True))
        ax.broken_barh(spans, (position[bar.resource] - 0.38, 0.76), facecolors=colour.get(bar.step, OTHER_COLOUR),
                       edgecolor="none", alpha=0.55 if bar.kind == "dac" else 1.0,
                       hatch="////" if bar.kind == "dac" else None)
    ax.set_yticks(range(len(rows)), list(reversed(rows)), fontsize=7)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, max(timing.latency_ns, 1e-9) * 1.01)
    ax.set_xlabel("time (ns)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_title(f"{prefix}one inference: {timing.latency_ns / 1e3:.2f} us; pipelined, one every "
                 f"{timing.period_ns / 1e3:.2f} us (bottleneck {timing.bottleneck}); hatched: DAC settling",
                 fontsize=8)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=colour[name], label=name) for name in layers[:MAX_LEGEND]]
    if any(b.step not in colour for b in timing.bars):
        handles.append(Patch(facecolor=OTHER_COLOUR, label="other nodes"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.subplots_adjust(left=0.09, right=0.82, bottom=0.5 / fig.get_figheight() + 0.05,
                        top=1 - 0.35 / fig.get_figheight())
    atomic_write_bytes(path, png_bytes(fig))
    logger.info("wrote %s (%d resources, %d rectangles)", os.fspath(path), len(rows), drawn)
    return timing
