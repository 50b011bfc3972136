"""The `leac chip` commands: make, check, inspect and import chip files.

    leac chip synth    -o FILE --seed S [rates] [--json]  a random chip like the seed paper's
    leac chip validate FILE [--json]                     check a chip file, list every problem
    leac chip show     FILE [--png OUT] [--json]         arrays and defect counts (and a heat map)
    leac chip import   MAP.txt... -o FILE [--conductances OUT.json] [--json]
                                                         measured conductance maps -> chip file (+ every reading)

With --json each prints one JSON object instead of text: reports leac-chip-synth,
leac-chip-validate, leac-chip-show and leac-chip-import (docs/reports.md).

Only this module prints (the library logs). Errors are raised as `LeacError`s
and turned into a message and an exit status by `lea_compiler.cli.main`.
Output files are written atomically and never over an input file.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from lea_compiler.chip import (
    STUCK_LOW,
    Chip,
    chip_to_json,
    import_measured,
    load_chip,
    save_chip,
    synth_chip,
)
from lea_compiler.errors import InvalidChipError, UsageError
from lea_compiler.fileio import check_output, written_together
from lea_compiler.programming.readback import readback_of, save_readback
from lea_compiler.report_json import dumps_report
from lea_compiler.tables import format_table

_COUNT_KEYS = ("stuck_high", "stuck_low", "dead_rows", "dead_cols", "healthy")


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register the `chip` command group and its sub-commands on `subparsers`."""
    chip = subparsers.add_parser(
        "chip",
        help="make, check and inspect chip files (leac-chip JSON)",
        description=(
            "Make, check and inspect chip files: the arrays of a memristor chip and their "
            "measured defects, in the leac-chip JSON format."
        ),
    )
    commands = chip.add_subparsers(dest="chip_command", metavar="SUBCOMMAND")
    commands.required = True

    synth = commands.add_parser(
        "synth",
        help="write a random chip like the seed paper's",
        description=(
            "Write a synthetic chip: a grid of equal arrays whose devices are independently "
            "stuck high or stuck low at the given rates, plus optional dead (stuck-low) rows "
            "and columns. The same options and seed always give the same file. The default "
            "is the seed paper's chip: 32 arrays of 25 x 25 with about 2.5% stuck high."
        ),
    )
    synth.add_argument(
        "--arrays",
        type=_positive_int,
        default=32,
        metavar="N",
        help="number of arrays (default: %(default)s)",
    )
    synth.add_argument(
        "--rows",
        type=_positive_int,
        default=25,
        metavar="R",
        help="rows (word lines, inputs) per array (default: %(default)s)",
    )
    synth.add_argument(
        "--cols",
        type=_positive_int,
        default=25,
        metavar="C",
        help="columns (bit lines, outputs) per array (default: %(default)s)",
    )
    synth.add_argument(
        "--stuck-high",
        type=_probability,
        default=0.025,
        metavar="P",
        help="probability that a device is stuck high (default: %(default)s)",
    )
    synth.add_argument(
        "--stuck-low",
        type=_probability,
        default=0.005,
        metavar="P",
        help="probability that a device is stuck low (default: %(default)s)",
    )
    synth.add_argument(
        "--dead-rows",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability that a whole row is stuck low (default: %(default)s)",
    )
    synth.add_argument(
        "--dead-cols",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability that a whole column is stuck low (default: %(default)s)",
    )
    synth.add_argument("--name", help="name written into the chip file")
    synth.add_argument(
        "--seed",
        type=_non_negative_int,
        required=True,
        metavar="S",
        help="random seed (required, so that runs are reproducible)",
    )
    synth.add_argument("-o", "--output", required=True, metavar="FILE", help="chip file to write")
    synth.add_argument("--json", action="store_true",
                       help="print one JSON object instead of the line (report leac-chip-synth, docs/reports.md)")
    synth.set_defaults(func=_run_synth)

    validate = commands.add_parser(
        "validate",
        help="check a chip file and list every problem",
        description=(
            "Check a chip file against the leac-chip format. Prints a one-line summary and "
            "exits 0 if it is valid; otherwise lists every problem (each naming its JSON path "
            "and value) and exits 3. The file is never modified."
        ),
    )
    validate.add_argument("file", metavar="FILE", help="chip file to check")
    validate.add_argument(
        "--json", action="store_true",
        help="print {file, valid, problems, ...} as one JSON object, also for an invalid chip (exit 3) "
        "(report leac-chip-validate, docs/reports.md)",
    )
    validate.set_defaults(func=_run_validate)

    show = commands.add_parser(
        "show",
        help="print a chip's arrays and defect counts",
        description=(
            "Print a chip's arrays with their defect counts (stuck-high and stuck-low devices, "
            "dead rows and columns, healthy devices) and the device and periphery models; "
            "optionally draw every array's defects as a PNG heat map."
        ),
    )
    show.add_argument("file", metavar="FILE", help="chip file to show")
    show.add_argument(
        "--png",
        metavar="OUT",
        help="also write a heat map of every array's defects to OUT (needs the plot extra)",
    )
    show.add_argument(
        "--json", action="store_true",
        help="print one JSON object instead of the table (report leac-chip-show, docs/reports.md)",
    )
    show.set_defaults(func=_run_show)

    imp = commands.add_parser(
        "import",
        help="turn measured conductance maps into a chip file",
        description=(
            "Turn measured conductance maps (text matrices in siemens, whitespace separated, "
            "one array row per line) into a chip file, one array per map in the order given. "
            "A device reading above --high-above-uS is stuck high, below --low-below-uS stuck "
            "low, keeping its measured value; a row or column with no stuck-high device in "
            "which at least --dead-line-fraction of the devices are stuck low is a dead line."
        ),
    )
    imp.add_argument("maps", nargs="+", metavar="MAP", help="conductance map text files")
    imp.add_argument("-o", "--output", required=True, metavar="FILE", help="chip file to write")
    imp.add_argument(
        "--high-above-uS",
        type=float,
        default=300.0,
        metavar="X",
        help="stuck-high threshold in uS, above the top device level (default: %(default)s)",
    )
    imp.add_argument(
        "--low-below-uS",
        type=float,
        default=50.0,
        metavar="Y",
        help="stuck-low threshold in uS, below the bottom device level (default: %(default)s)",
    )
    imp.add_argument(
        "--dead-line-fraction",
        type=float,
        default=0.9,
        metavar="F",
        help="share of stuck-low devices that makes a row or column dead, "
        "in (0, 1] (default: %(default)s)",
    )
    imp.add_argument("--name", help="name written into the chip file")
    imp.add_argument("--conductances", metavar="OUT.json",
                     help="also write every device's reading, healthy devices included, as a read-back file of "
                          "the imported chip (docs/readback-format.md)")
    imp.add_argument("--json", action="store_true",
                     help="print one JSON object instead of the lines (report leac-chip-import, docs/reports.md)")
    imp.set_defaults(func=_run_import)


# --------------------------------------------------------------------------
# Argument types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


# --------------------------------------------------------------------------
# Output files


def _write(output: str, write: Any) -> None:
    """Run `write()` (an atomic writer), turning an OS error into a clear message."""
    try:
        write()
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------
# Commands


def _run_synth(args: argparse.Namespace) -> int:
    check_output(args.output, [], "-o")
    chip = synth_chip(
        arrays=args.arrays,
        rows=args.rows,
        cols=args.cols,
        stuck_high=args.stuck_high,
        stuck_low=args.stuck_low,
        dead_rows=args.dead_rows,
        dead_cols=args.dead_cols,
        seed=args.seed,
        name=args.name,
    )
    _write(args.output, lambda: save_chip(chip, args.output))
    if args.json:
        _print_json({
            "report": "leac-chip-synth",
            "version": 1,
            "output": args.output,
            **_chip_facts(chip),
            "seed": args.seed,
            "rates": {key: getattr(args, key) for key in ("stuck_high", "stuck_low", "dead_rows", "dead_cols")},
        })
        return 0
    print(f"wrote {args.output}: {chip.summary()}")
    return 0


def _chip_facts(chip: Chip) -> dict[str, Any]:
    """The keys every chip report shares: name, fingerprint, arrays, devices and the defect totals."""
    return {
        "name": chip.name,
        "fingerprint": chip.fingerprint(),
        "arrays": len(chip.arrays),
        "devices": chip.device_count,
        "totals": chip.defect_counts(),
    }


def _print_json(report: dict[str, Any]) -> None:
    print(dumps_report(report, ensure_ascii=False))


def _run_validate(args: argparse.Namespace) -> int:
    if not args.json:
        chip = load_chip(args.file)
        print(f"{args.file}: valid. {chip.summary()}")
        return 0
    try:
        chip = load_chip(args.file)
    except InvalidChipError as exc:  # a file that cannot be read at all raises on: a leac-error object (cli.main)
        _print_json({"report": "leac-chip-validate", "version": 1, "file": args.file, "valid": False,
                     "problems": exc.problems, "name": None, "fingerprint": None, "arrays": None,
                     "devices": None, "totals": None})
        return InvalidChipError.exit_status
    _print_json({"report": "leac-chip-validate", "version": 1, "file": args.file, "valid": True, "problems": [],
                 **_chip_facts(chip)})
    return 0


def _array_rows(chip: Chip) -> list[dict[str, Any]]:
    rows = []
    for arr in chip.arrays:
        rows.append(
            {"id": arr.id, "rows": arr.rows, "cols": arr.cols, **chip.defect_counts(arr.id)}
        )
    return rows


def _run_show(args: argparse.Namespace) -> int:
    chip = load_chip(args.file)
    if args.png:
        from lea_compiler.plot import plot_chip_defects

        check_output(args.png, [args.file], "--png")
        _write(args.png, lambda: plot_chip_defects(chip, args.png))
    per_array = _array_rows(chip)
    totals = chip.defect_counts()
    document = chip_to_json(chip)
    if args.json:
        report = {
            "report": "leac-chip-show",
            "version": 1,
            "file": args.file,
            "name": chip.name,
            "fingerprint": chip.fingerprint(),
            "devices": chip.device_count,
            "totals": totals,
            "arrays": per_array,
            "device": document["device"],
            "periphery": document["periphery"],
            "png": args.png,
        }
        _print_json(report)
        return 0
    print(chip.summary())
    print(f"fingerprint: {chip.fingerprint()}")
    print()
    header = ("array", "rows", "cols", *_COUNT_KEYS)
    rows = [[r["id"], r["rows"], r["cols"], *(r[k] for k in _COUNT_KEYS)] for r in per_array]
    rows.append(["total", "", "", *(totals[k] for k in _COUNT_KEYS)])
    lines = format_table([header, *rows], right=True).split("\n")
    print("\n".join(lines[:-1]))
    print("-" * len(lines[0]))
    print(lines[-1])
    print()
    for model in ("device", "periphery"):
        values = ", ".join(f"{k}={v}" for k, v in document[model].items())
        print(f"{model}: {values}")
    if args.png:
        print(f"wrote {args.png}")
    return 0


def _run_import(args: argparse.Namespace) -> int:
    check_output(args.output, args.maps, "-o")
    if args.conductances is not None:
        check_output(args.conductances, args.maps, "--conductances", outputs={"-o": args.output})
    chip, readings = import_measured(
        args.maps,
        high_above_uS=args.high_above_uS,
        low_below_uS=args.low_below_uS,
        dead_line_fraction=args.dead_line_fraction,
        name=args.name,
    )
    maps = []
    for path, arr in zip(args.maps, chip.arrays, strict=True):
        counts = chip.defect_counts(arr.id)
        defects = [d for d in chip.defects if d.array == arr.id]
        dead_rows = sorted({d.row for d in defects if d.col is None and d.row is not None})
        dead_cols = sorted({d.col for d in defects if d.row is None and d.col is not None})
        single_low = sum(1 for d in defects if not d.is_line and d.state == STUCK_LOW)
        maps.append({"map": path, "array": arr.id, "rows": arr.rows, "cols": arr.cols,
                     "stuck_high": counts["stuck_high"], "stuck_low": counts["stuck_low"],
                     "stuck_low_outside_lines": single_low, "dead_rows": dead_rows, "dead_cols": dead_cols})
        if not args.json:
            print(
                f"{path} -> array {arr.id} ({arr.rows} x {arr.cols}): "
                f"{counts['stuck_high']} stuck-high devices, "
                f"{counts['stuck_low']} stuck-low devices ({single_low} outside dead lines), "
                f"dead rows: {_listing(dead_rows)}, dead columns: {_listing(dead_cols)}"
            )
    with written_together():  # both outputs or neither
        _write(args.output, lambda: save_chip(chip, args.output))
        if args.conductances is not None:
            readback = readback_of(chip, readings, reads=1, source="leac chip import: " + ", ".join(args.maps))
            _write(args.conductances, lambda: save_readback(readback, args.conductances))
    if args.json:
        _print_json({
            "report": "leac-chip-import",
            "version": 1,
            "output": args.output,
            "conductances": args.conductances,
            **_chip_facts(chip),
            "thresholds": {"high_above_uS": args.high_above_uS, "low_below_uS": args.low_below_uS,
                           "dead_line_fraction": args.dead_line_fraction},
            "maps": maps,
        })
        return 0
    print(f"wrote {args.output}: {chip.summary()}")
    return 0


def _listing(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values) if values else "none"
