"""Plain-text tables for the command line."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[object]], *, right: bool = False) -> str:
    """Columns two spaces apart, left-aligned (or right-aligned for numbers); the first row is the header."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    pad = str.rjust if right else str.ljust
    return "\n".join("  ".join(pad(cell, w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in cells)
