"""The `leac` command line: argument parsing, exit statuses and printing.

Only this module (and the `cli_*` modules it composes) prints; the library logs.
Exit statuses: 0 success, 1 internal error (a bug) or a model leac cannot
compile, 2 bad usage, 3 invalid input file, 4 the model does not fit the chip,
130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM); see docs/reports.md.
An interrupted command leaves no output file: every output is written to a
temporary file and renamed, and the temporary file is removed on the way out.

A command run with `--json` prints one JSON object on stdout whatever happens:
its report, or on failure the `leac-error` object (`error_report`), so that a
pipeline reading stdout always gets one object; the message goes to stderr too.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from lea_compiler import __version__
from lea_compiler.errors import LeacError, UsageError
from lea_compiler.layer_sizes import canonical, counts
from lea_compiler.report_json import dumps_report
from lea_compiler.tables import format_table

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INVALID_INPUT = 3  # InvalidInputError.exit_status
EXIT_DOES_NOT_FIT = 4  # DoesNotFitError.exit_status
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as shells report a Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that `finally` blocks and atomic writes clean up.

    A `BaseException`, like `KeyboardInterrupt`, so that no `except Exception`
    on the way out takes it for an error.
    """


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


class _UsageExit(SystemExit):
    """argparse refused the command line (exit 2); `message` is what it printed, for the `--json` error."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.message = message


class _ArgumentParser(argparse.ArgumentParser):
    """argparse's parser (and, as their class, its sub-commands' parsers) keeping its usage error's message."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise _UsageExit(message)


def error_report(exit_status: int, error: str, kind: str) -> dict[str, Any]:
    """The object `--json` prints on failure (report leac-error, docs/reports.md).

    Args:
        exit_status: The command's exit status (1, 2, 3, 4, 130 or 143).
        error: The message, as printed on stderr (after `leac: error: `, or argparse's after `leac COMMAND: error: `).
        kind: The exception's class name (`InvalidChipError`, `DoesNotFitError`, `UsageError`,
            `KeyboardInterrupt`, ...), for a program to branch on.
    """
    return {"report": "leac-error", "version": 1, "exit_status": exit_status, "error": error, "kind": kind}


def _json_requested(argv: Sequence[str]) -> bool:
    """Whether a command line argparse refused asked for `--json` (or an abbreviation argparse accepts)."""
    for token in argv:
        if token == "--":
            return False
        if token.startswith("--js") and "--json".startswith(token):
            return True
    return False


_COMMANDS = {"compile": "compile", "simulate": "simulate", "emit": "emit", "board": "emit", "program": "program",
             "show": "show", "report": "report", "inspect": None, "chip": "chip"}
"""Each command's module in lea_compiler/cli/, in the order `leac --help` lists them (`inspect` is main's own)."""


def _command_of(argv: Sequence[str]) -> str | None:
    """The command `argv` runs, if nothing before it is an option but `-v`: the one command whose parser `main`
    then builds, so that the process imports no other command's modules (`leac --help`, an unknown command or any
    other option before the command get the full parser)."""
    for token in argv:
        if token in ("-v", "--verbose"):
            continue
        return token if token in _COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full `leac` argument parser with every command registered; with `only`, the parser with that command
    alone (and the commands its module registers with it), which parses that command's arguments the same."""
    parser: argparse.ArgumentParser = _ArgumentParser(  # sub-command parsers are of its class too
        prog="leac",
        description="leac: the layer-ensemble-averaging compiler for memristor crossbar chips.",
        epilog=(
            "Exit statuses: 0 success, 1 a model leac cannot compile (or a bug in leac), 2 bad usage, "
            "3 an invalid input file, 4 the model does not fit the chip, 130 interrupted, 143 terminated. "
            "With --json every command prints one JSON object on stdout, on failure too: "
            '{"report": "leac-error", "version": 1, "exit_status": N, "error": "...", "kind": "..."} '
            "(the message also goes to stderr; docs/reports.md)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"leac {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    modules = [_COMMANDS[only]] if only is not None else list(dict.fromkeys(_COMMANDS.values()))
    for module in modules:
        if module is None:
            _add_inspect(commands)
        else:
            importlib.import_module(f"lea_compiler.cli.{module}").add_parser(commands)
    return parser


def _add_inspect(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from lea_compiler.passes.quantize import BIAS_MODES  # here: the passes are the compiler's, not the CLI's

    p = commands.add_parser(
        "inspect",
        help="show a model as leac's IR and what its matrix products cost in devices",
        description=(
            "Import an ONNX model, print it as leac's graph IR, and list every matrix "
            "product that maps to crossbars with its matrix size and the devices it needs "
            "(2 per weight: a differential pair; with --bias row, one more row for the bias). "
            "The layers and their costs are the ones leac compile makes, after its canonicalize pass: "
            "a bias Add after a MatMul (skl2onnx) joins the layer as a bias, and a folded "
            "BatchNormalization adds one; so the total is the devices_used a compile with the same -k "
            "and --bias reports."
        ),
    )
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model file")
    p.add_argument("-k", default="1", metavar="K",
                   help="copies per layer to cost: one count, or layer=count pairs with default=N as leac compile "
                        "takes them (default 1)")
    p.add_argument("--bias", choices=BIAS_MODES, default="digital",
                   help="bias added digitally, or as one more crossbar row, as in leac compile (default digital)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of text (report leac-inspect, docs/reports.md)")
    p.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    from lea_compiler.analysis import crossbar_layers  # here: the front end imports onnx (~1 s)
    from lea_compiler.onnx_frontend import load_model

    k = canonical(args.k, "-k")
    graph = load_model(args.model)
    layers = crossbar_layers(graph)
    bias_row = args.bias == "row"
    alpha = counts(k, [layer.node for layer in layers], "-k")
    total = sum(layer.devices(alpha[layer.node], bias_row) for layer in layers)
    if args.json:
        report = {
            "report": "leac-inspect",
            "version": 1,
            "model": args.model,
            "graph": graph.name,
            "opset": graph.opset,
            "inputs": [{"name": v.name, "type": v.type_str()} for v in graph.inputs],
            "outputs": [{"name": v.name, "type": v.type_str()} for v in graph.outputs],
            "nodes": len(graph.nodes),
            "k": k,
            "crossbar_layers": [
                {
                    "node": layer.node,
                    "op": layer.op_type,
                    "rows": layer.matrix_rows(bias_row),
                    "cols": layer.cols,
                    "bias": layer.bias,
                    "bias_row": layer.bias and bias_row,
                    "reads_per_sample": layer.reads_per_sample,
                    "k": alpha[layer.node],
                    "devices": layer.devices(alpha[layer.node], bias_row),
                }
                for layer in layers
            ],
            "devices": total,
        }
        print(dumps_report(report))
        return EXIT_OK
    print(graph)
    print()
    if not layers:
        print("no matrix product maps to crossbars (every op runs digitally)")
        return EXIT_OK
    rows = [("node", "op", "matrix rows x cols", "bias", "reads/sample", "k", "devices")]
    for layer in layers:
        rows.append(
            (
                layer.node,
                layer.op_type,
                f"{layer.matrix_rows(bias_row)} x {layer.cols}",
                ("row" if bias_row else "digital") if layer.bias else "none",
                "?" if layer.reads_per_sample is None else str(layer.reads_per_sample),
                str(alpha[layer.node]),
                str(layer.devices(alpha[layer.node], bias_row)),
            )
        )
    print(format_table(rows))
    print(f"total: {total} devices for {len(layers)} crossbar layers at k = {k}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, freeze_imports: bool = False) -> int:
    """Run `leac` with `argv` (default: sys.argv[1:]) and return the exit status.

    With `freeze_imports` (the `leac` process: `entry_point`), every object that exists once the command's
    modules are imported is moved out of the garbage collector's reach (`gc.freeze`) before the command runs:
    the modules' objects live as long as the process, and a full collection during the command would otherwise
    walk them all again (the README's main job's `leac simulate`: its full collection took 11 ms, 3 ms after
    the freeze; benchmarks/bench_gc.py). A caller that runs many commands in one process (tests, a notebook)
    keeps its collector as it is."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    try:
        args = parser.parse_args(argv)
    except _UsageExit as exc:  # argparse has printed the usage and the message
        if _json_requested(argv):
            print(json.dumps(error_report(EXIT_USAGE, exc.message, UsageError.__name__), indent=2))
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version: 0
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    as_json = bool(getattr(args, "json", False))

    def fail(status: int, message: str, kind: str) -> int:
        if as_json:
            print(json.dumps(error_report(status, message, kind), indent=2))
        return status

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="leac: %(message)s",
        stream=sys.stderr,
    )
    if freeze_imports:
        gc.freeze()
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        status: int = args.func(args)
        return status
    except LeacError as exc:
        print(f"leac: error: {exc}", file=sys.stderr)
        return fail(exc.exit_status, str(exc), type(exc).__name__)
    except KeyboardInterrupt:
        print("leac: interrupted (SIGINT)", file=sys.stderr)
        return fail(EXIT_INTERRUPTED, "interrupted (SIGINT)", "KeyboardInterrupt")
    except Terminated:
        print("leac: terminated (SIGTERM)", file=sys.stderr)
        return fail(EXIT_TERMINATED, "terminated (SIGTERM)", "Terminated")
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # anything else is a bug in leac: show it in full
        traceback.print_exc()
        print("leac: internal error: this is a bug in leac, please report it with the traceback above",
              file=sys.stderr)
        return fail(EXIT_BUG, f"internal error (a bug in leac): {type(exc).__name__}: {exc}", type(exc).__name__)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def entry_point() -> None:
    """Console-script entry: exit the process with `main`'s status."""
    sys.exit(main(freeze_imports=True))
