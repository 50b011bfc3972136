"""`leac show`: where every copy of a Program sits on its chip, as a table and (`--png`) as a picture.

    leac show PROGRAM.leac [--png OUT.png] [--per-page N] [--all-arrays] [--json]

The picture is lea_compiler/plot_placement.py's (the `plot` extra). Its pages are checked (never over an input,
never a device node, in an existing folder) and rendered before any is written, each atomically; if one fails,
the pages this run wrote before it are removed (an earlier run's pages are left alone). Only this module
prints; errors are raised as `LeacError`s and turned into a message and an exit status by
`lea_compiler.cli.main`.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from lea_compiler.errors import UsageError
from lea_compiler.fileio import check_output
from lea_compiler.plot import require_matplotlib
from lea_compiler.plot_placement import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    PlacedHalf,
    PlacementPicture,
    page_arrays,
    page_paths,
    placed_halves,
    render_placement,
    write_placement,
)
from lea_compiler.program import Program
from lea_compiler.report_json import dumps_report
from lea_compiler.tables import format_table, printable


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `leac show`."""
    p = commands.add_parser(
        "show",
        help="show where every copy of a Program sits on its chip (a table, and a picture with --png)",
        description=(
            "List every placed copy half of a compiled Program (layer, block, copy, G+ or G-, its region and the "
            "stuck devices under it); with --png draw the chip's arrays with every copy as a labelled region over "
            "the defect map (needs the plot extra). A chip of at most --per-page arrays is drawn whole on one "
            "page, arrays holding no copy faded; a larger chip is drawn as its used arrays only, --per-page to a "
            "page (OUT-1.png, OUT-2.png, ...; --all-arrays draws every array). See docs/cli.md."
        ),
    )
    p.add_argument("program", metavar="PROGRAM.leac", help="the compiled Program (leac compile or leac program)")
    p.add_argument("--png", metavar="OUT.png",
                   help="draw the placement to OUT.png (several pages: OUT-1.png, OUT-2.png, ...)")
    p.add_argument("--per-page", type=int, default=DEFAULT_PER_PAGE, metavar="N",
                   help=f"arrays per page, 1..{MAX_PER_PAGE} (default: %(default)s)")
    p.add_argument("--all-arrays", action="store_true",
                   help="draw every array, paginated, also on a chip larger than a page (default: only the used "
                        "arrays there)")
    p.add_argument("--json", action="store_true",
                   help="print what was listed and drawn as one JSON object (report leac-show, docs/reports.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`leac show`: check the options and outputs, load, draw, write, print."""
    if args.png is None and (args.per_page != DEFAULT_PER_PAGE or args.all_arrays):
        raise UsageError("--per-page and --all-arrays go with --png")
    if not 1 <= args.per_page <= MAX_PER_PAGE:
        raise UsageError(f"--per-page must be in 1..{MAX_PER_PAGE}, got {args.per_page}")
    if args.png is not None:
        require_matplotlib("leac show --png")
        check_output(args.png, [args.program], "--png")
    program = Program.load(args.program)
    halves = placed_halves(program)
    picture = None
    files: list[Path] = []
    if args.png is not None:
        pages, _ = page_arrays(program, per_page=args.per_page, all_arrays=args.all_arrays)
        for path in page_paths(args.png, len(pages)):
            check_output(path, [args.program], "--png")
        picture = render_placement(program, per_page=args.per_page, all_arrays=args.all_arrays)
        files = write_pages(picture, args.png)
    report = show_report(program, args.program, args.png, halves, picture, files)
    if args.json:
        print(dumps_report(report, ensure_ascii=False))
        return 0
    print_show(report)
    return 0


def write_pages(picture: PlacementPicture, path: str) -> list[Path]:
    """Write the picture's pages; if one fails, remove the pages this call wrote before it and raise.

    Only those: a page file of an earlier run that this run had not yet overwritten is left as it was.
    """
    written: list[Path] = []
    try:
        return write_placement(picture, path, written)
    except BaseException:
        for page in written:
            with contextlib.suppress(OSError):
                page.unlink()
        raise


def show_report(program: Program, source: str, png: str | None, halves: list[PlacedHalf],
                picture: PlacementPicture | None, files: list[Path]) -> dict[str, Any]:
    """The `leac show --json` object (report leac-show, keys documented in docs/reports.md)."""
    return {
        "report": "leac-show",
        "version": 1,
        "program": source,
        "model": program.model.get("file") or program.model.get("name"),
        "chip": program.chip.display_name,
        "arrays_total": len(program.chip.arrays),
        "arrays_used": len(program.arrays_used),
        "block_copies": len(halves) // 2,
        "stuck_under_copies": sum(half.stuck for half in halves),
        "halves": [half.to_json() for half in halves],
        **picture_facts(png, picture, files),
    }


def picture_facts(png: str | None, picture: PlacementPicture | None, files: list[Path]) -> dict[str, Any]:
    """What a placement picture drew: the keys `png`, `pages` and `arrays_not_drawn` of leac-show (and of
    leac-report's `placement`)."""
    if picture is None:
        return {"png": png, "pages": [], "arrays_not_drawn": []}
    names = [str(f) for f in files] if files else [None] * len(picture.pages)
    return {
        "png": png,
        "pages": [{"file": name, "arrays": list(arrays)} for name, arrays in zip(names, picture.arrays, strict=True)],
        "arrays_not_drawn": list(picture.omitted),
    }


def print_show(report: dict[str, Any]) -> None:
    """The text form: one row per copy half, then the totals and the files written."""
    rows = [("layer", "block", "copy", "half", "array", "row", "col", "size", "stuck", "averaged cols")]
    for h in report["halves"]:
        rows.append((printable(h["layer"]), str(h["block"]), str(h["copy"]), "G+" if h["half"] == "pos" else "G-",
                     str(h["array"]), str(h["row"]), str(h["col"]), f"{h['rows']} x {h['cols']}", str(h["stuck"]),
                     f"{h['averaged_cols']} of {h['cols']}"))
    print(f"{printable(report['program'])}: {printable(report['model'])} on chip {printable(report['chip'])}")
    print(format_table(rows))
    print(f"{report['block_copies']} block copies ({len(report['halves'])} halves) on {report['arrays_used']} of "
          f"{report['arrays_total']} arrays; {report['stuck_under_copies']} stuck devices under them")
    for page in report["pages"]:
        print(f"wrote {printable(page['file'])}: arrays {_ranges(page['arrays'])}")
    if report["arrays_not_drawn"]:
        print(f"not drawn: {len(report['arrays_not_drawn'])} arrays holding no copy (--all-arrays draws them)")


def _ranges(ids: list[int]) -> str:
    """`0-3, 7, 9-10` for [0, 1, 2, 3, 7, 9, 10]."""
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ", ".join(parts) if parts else "none"
