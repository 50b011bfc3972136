"""Plain-text output for the command line: tables, and names made safe to print."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories escaped by `printable`: controls (ESC, newline, C1's CSI), format characters
(right-to-left overrides, zero-width joiners), surrogates, private-use and unassigned code points, and
the line and paragraph separators."""


def printable(text: object) -> str:
    """`str(text)` with every control or invisible character written as a Python escape (`\\x1b`, `\\n`, `\\u202e`).

    Names come from the files leac reads (ONNX node, value and graph names, chip
    names): printed raw, a name holding a terminal escape could rewrite the
    terminal and one holding a newline could forge lines of a report. Every place
    that prints such a name to a person goes through here; JSON output keeps the
    names exact (json.dumps escapes control characters itself).
    """
    text = str(text)  # a damaged file's name may not be a string: the message that names it must still print
    if text.isprintable():  # the common case, and str.isprintable is exact for ASCII
        return text
    out = []
    for char in text:
        if char == " " or unicodedata.category(char) not in _UNPRINTABLE:
            out.append(char)
        else:
            code = ord(char)
            out.append(repr(char)[1:-1] if code < 0x80 and char in "\n\r\t" else
                       f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def format_table(rows: Sequence[Sequence[object]], *, right: bool = False) -> str:
    """Columns two spaces apart, left-aligned (or right-aligned for numbers); the first row is the header.

    Every cell goes through `printable`, so a name cannot break the table's lines or the terminal.
    """
    cells = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    pad = str.rjust if right else str.ljust
    return "\n".join("  ".join(pad(cell, w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in cells)
