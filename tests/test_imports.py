"""The package's import structure: the backends and the CLI load without the heavy dependencies, and no import
cycles.

OR-Tools (and pandas, which it imports) is the placement solver's: loading the
board backend, the simulator or `leac --help` must not pay for it. onnx (~1 s
to import, most of it ml_dtypes registering its dtypes with numpy) is the
front end's and the software baseline's, onnxruntime the baseline's,
matplotlib the plots', networkx the graph queries' (a graph already in order
verifies without it): the CLI, the backends and reading a Program import
them only in the functions that use them. Each check runs in a fresh
interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lea_compiler"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that imports this tree's lea_compiler."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


@pytest.mark.parametrize("module", ["lea_compiler.backends.board", "lea_compiler.backends.sim", "lea_compiler.cli"])
def test_loading_a_backend_or_the_cli_does_not_import_ortools(module: str) -> None:
    done = _run(f"import sys, {module}\n"
                "print(sorted(m for m in sys.modules if m.startswith('ortools') or m == 'lea_compiler.placement'))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


HEAVY = ("ortools", "pandas", "onnx", "onnxruntime", "ml_dtypes", "matplotlib", "networkx")
"""Packages that take 0.2 s or more to import, loaded only where they are used."""

_LOADED = f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"


@pytest.mark.parametrize("module", ["lea_compiler", "lea_compiler.cli", "lea_compiler.backends.board",
                                    "lea_compiler.backends.sim", "lea_compiler.program", "lea_compiler.chip",
                                    "lea_compiler.interpreter"])
def test_the_cli_the_backends_and_the_program_load_without_heavy_packages(module: str) -> None:
    done = _run(f"import sys, {module}\n{_LOADED}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_loading_and_simulating_a_program_without_its_model_imports_no_heavy_package(tmp_path: Path) -> None:
    """What `leac simulate` runs besides the software baseline: read and check the Program (its graph is
    verified), read the data, simulate. A Program compiled from an in-memory model embeds no model.onnx, so
    there is no baseline and nothing needs onnx or onnxruntime (it is compiled here, in this process)."""
    import numpy as np

    from lea_compiler.api import compile as leac_compile
    from lea_compiler.chip import synth_chip
    from lea_compiler.onnx_frontend import import_model
    from tests.helpers import mlp_model

    graph = import_model(mlp_model((4, 6, 3)))
    program = leac_compile(graph, synth_chip(arrays=4, rows=8, cols=8, seed=0), k=1)
    assert program.source_model is None
    program.save(tmp_path / "p.leac")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 4)).astype(np.float32), y=np.zeros(8, np.int64))
    code = f"""
import sys
from lea_compiler.backends.sim import load_data, simulate
from lea_compiler.program import Program
program = Program.load({str(tmp_path / "p.leac")!r})
report = simulate(program, [load_data({str(tmp_path / "d.npz")!r}, program.graph)], seed=0)
assert report.software_accuracy is None and 0 <= report.accuracy <= 1
{_LOADED}
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_heavy_packages_are_what_the_checks_look_for() -> None:
    """The checks above would pass vacuously if these names were wrong: the full compile path loads them."""
    done = _run(f"import sys, lea_compiler.compiler, lea_compiler.reference, lea_compiler.placement.cpsat\n{_LOADED}")
    assert done.returncode == 0, done.stderr
    assert set(eval(done.stdout)) >= {"ortools", "onnx", "onnxruntime", "ml_dtypes"}


def test_dir_lists_the_lazy_api_without_loading_it() -> None:
    """Audit: `dir(lea_compiler)` (and so tab completion and `help()`) showed none of the API, which loads on first
    use, but the module's helpers `Any`, `importlib` and `annotations`; listing it must not load it."""
    done = _run("import sys, lea_compiler\nnames = dir(lea_compiler)\n"
                "print(names)\nprint(sorted(lea_compiler.__all__))\nprint(sorted(m for m in sys.modules "
                "if m.startswith('lea_compiler')))")
    assert done.returncode == 0, done.stderr
    names, public, loaded = map(eval, done.stdout.splitlines())
    assert set(public) >= {"compile", "simulate", "emit_board", "program_chip", "Program", "UsageError"}
    assert set(public) <= set(names) and names == sorted(names)
    assert not {"Any", "importlib", "annotations", "_API"} & set(names)
    assert loaded == ["lea_compiler"]


def test_leac_help_and_version_do_not_import_ortools() -> None:
    code = """
import contextlib, io, sys
from lea_compiler.cli import main
for argv in (["--help"], ["--version"], ["compile", "--help"], ["simulate", "--help"], ["emit", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
    print(" ".join(argv), "ortools" in sys.modules)
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and all(line.endswith(" False") for line in lines), done.stdout


def test_a_leac_simulate_process_imports_no_other_command_s_modules(tmp_path: Path) -> None:
    """Issue 19: `leac simulate` builds only its own parser, so the process imports neither the compiler's passes
    and options nor programming, plotting or batch modules, nor OR-Tools; the software baseline still loads onnx
    and onnxruntime (the embedded model is checked, then run)."""
    program, data = tmp_path / "y.leac", ROOT / "lea_compiler" / "data" / "yinyang_task1_test.npz"
    from lea_compiler.cli import main

    assert main(["compile", str(ROOT / "lea_compiler" / "data" / "yinyang_mlp.onnx"), "--chip",
                 str(ROOT / "lea_compiler" / "data" / "paper_chip.json"), "-k", "1", "-o", str(program)]) == 0
    code = f"""
import contextlib, io, sys
from lea_compiler.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["simulate", {str(program)!r}, "--data", {str(data)!r}]) == 0
    assert main(["simulate", "--help"]) == 0
print(sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY)!r} - {{"onnx", "onnxruntime", "ml_dtypes"}}
             or m.startswith(("lea_compiler.passes", "lea_compiler.options", "lea_compiler.programming.loop",
                              "lea_compiler.plot", "lea_compiler.simulate_batch", "lea_compiler.cli.compile"))))
print("onnxruntime" in sys.modules)
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's sub-command parsers by name (none for a leaf)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _actions(parser: argparse.ArgumentParser) -> list[tuple[object, ...]]:
    """What each of a parser's arguments is and does, its defaults included (sub-commands by name)."""
    return [(type(a).__name__, tuple(a.option_strings), a.dest, a.nargs, a.const, a.default, a.type,
             sorted(a.choices) if isinstance(a.choices, dict) else a.choices, a.required, a.metavar, a.help)
            for a in parser._actions]


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                         argparse.ArgumentParser]]:
    """Every (sub-)command's parser under `parser`, nested ones too (`chip synth`, `board validate`), by path."""
    for name, sub in _subparsers(parser).items():
        yield (*path, name), sub
        yield from _walk(sub, (*path, name))


def _least_argv(parser: argparse.ArgumentParser) -> list[str]:
    """The shortest arguments a leaf parser takes: "1" for each positional and required option (every type and
    none of the choices refuses it)."""
    argv: list[str] = []
    for a in parser._actions:
        if a.option_strings and a.required:
            argv += [a.option_strings[0], "1"]
        elif not a.option_strings and a.nargs not in ("?", "*"):
            argv.append("1")
    return argv


def test_the_parser_of_one_command_is_that_command_s_parser_in_the_full_one() -> None:
    """`main` builds only the command it runs (`build_parser(only)`): each command, and each of its sub-commands
    (`chip synth/validate/show/import`, `board validate`), documents its arguments, takes the same arguments with
    the same defaults and parses a command line to the same values as in the full parser, which `leac --help` and
    anything but a command first still get."""
    from lea_compiler.cli.main import _COMMANDS, _command_of, build_parser

    full_parser = build_parser()
    full = dict(_walk(full_parser))
    assert list(_subparsers(full_parser)) == list(_COMMANDS)
    assert {path for path in full if len(path) > 1} >= {("chip", "synth"), ("chip", "validate"), ("chip", "show"),
                                                         ("chip", "import"), ("board", "validate")}
    parsed = 0
    for command in _COMMANDS:
        alone_parser = build_parser(command)
        alone = dict(_walk(alone_parser))
        assert set(alone) <= set(full)
        mine = [path for path in full if path[0] == command]
        assert set(mine) <= set(alone)
        for path in mine:
            assert list(_subparsers(alone[path])) == list(_subparsers(full[path])), path
            assert alone[path].format_help() == full[path].format_help(), path
            assert _actions(alone[path]) == _actions(full[path]), path
            assert alone[path]._defaults == full[path]._defaults, path
            if not _subparsers(full[path]):
                argv = [*path, *_least_argv(full[path])]
                assert vars(alone_parser.parse_args(argv)) == vars(full_parser.parse_args(argv)), argv
                parsed += 1
    assert parsed == sum(1 for path in full if not _subparsers(full[path])) == 12
    assert _command_of(["-v", "simulate", "p.leac"]) == "simulate"
    assert _command_of(["--help", "simulate"]) is None and _command_of(["simulat"]) is None
    assert _command_of(["--version"]) is None and _command_of([]) is None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(body: list[ast.stmt], *, in_functions: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported (never those under `if TYPE_CHECKING:`); with
    `in_functions`, also those in its functions and methods, which run when they are first called."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _imports(node.body, in_functions=in_functions)
            yield from _imports(node.orelse, in_functions=in_functions)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _imports(block, in_functions=in_functions)
        elif isinstance(node, ast.With | ast.For | ast.While | ast.ClassDef):
            yield from _imports(node.body, in_functions=in_functions)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and in_functions:
            yield from _imports(node.body, in_functions=in_functions)


def import_graph(*, in_functions: bool = False) -> nx.DiGraph:
    """lea_compiler's modules, and an edge a -> b where module a imports module b at module level (with
    `in_functions`, anywhere outside `if TYPE_CHECKING:`)."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in paths.items():
        graph.add_node(name)
        for node in _imports(ast.parse(path.read_text(), str(path)).body, in_functions=in_functions):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert node.level == 0, f"{name}: a relative import"  # STYLE.md rule 12
                base = node.module or ""
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base for alias in node.names]
            graph.add_edges_from((name, target) for target in targets if target in paths and target != name)
    return graph


def test_the_import_graph_sees_the_package() -> None:
    graph, lazy = import_graph(), import_graph(in_functions=True)
    assert graph.has_edge("lea_compiler.ir", "lea_compiler.ops")
    assert graph.has_edge("lea_compiler.program.core", "lea_compiler.program.file")
    assert not lazy.has_edge("lea_compiler.ops", "lea_compiler.ir")  # only under TYPE_CHECKING
    assert lazy.has_edge("lea_compiler.passes.place", "lea_compiler.placement")  # in Place.run
    assert not graph.has_edge("lea_compiler.passes.place", "lea_compiler.placement")


def _cycles(graph: nx.DiGraph) -> list[str]:
    return sorted(" -> ".join([*cycle, cycle[0]]) for cycle in nx.simple_cycles(graph))


def test_no_import_cycles_among_the_package_modules() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_import_cycles_through_imports_in_functions_either() -> None:
    """An import in a function only defers a cycle (ir.py's verifier once imported ops.py, which imports ir.py,
    that way): one module of the two then needs the other's types but not at import time (TYPE_CHECKING)."""
    cycles = _cycles(import_graph(in_functions=True))
    assert not cycles, "import cycles through imports in functions:\n" + "\n".join(cycles)


def test_the_float8_cast_numbers_written_out_are_onnx_s() -> None:
    import onnx

    from lea_compiler.ops import SATURATING_FLOAT8

    t = onnx.TensorProto
    assert SATURATING_FLOAT8 == {t.FLOAT8E4M3FN, t.FLOAT8E4M3FNUZ, t.FLOAT8E5M2, t.FLOAT8E5M2FNUZ}
