"""leac: the layer-ensemble-averaging compiler for memristor crossbar chips.

The Python API (`compile`, `compile_many`, `simulate`, `simulate_many`, `emit_board`, `program_chip`, `Program`,
`load_chip`, `load_model`, `load_data`, `Dataset` and the error classes) is loaded on first use, so that
`import lea_compiler` stays cheap for tools that only need the version. `dir(lea_compiler)` (tab completion)
and `help(lea_compiler)` list it all the same.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "compile": "lea_compiler.api",
    "compile_many": "lea_compiler.api",
    "simulate": "lea_compiler.api",
    "simulate_many": "lea_compiler.api",
    "emit_board": "lea_compiler.api",
    "program_chip": "lea_compiler.api",
    "Program": "lea_compiler.program",
    "CompileOptions": "lea_compiler.pipeline",
    "load_chip": "lea_compiler.chip",
    "synth_chip": "lea_compiler.chip",
    "load_model": "lea_compiler.onnx_frontend",
    "load_data": "lea_compiler.datasets",
    "Dataset": "lea_compiler.datasets",
    "LeacError": "lea_compiler.errors",
    "UsageError": "lea_compiler.errors",
    "InvalidInputError": "lea_compiler.errors",
    "InvalidModelError": "lea_compiler.errors",
    "InvalidChipError": "lea_compiler.errors",
    "BadDataError": "lea_compiler.errors",
    "CompileError": "lea_compiler.errors",
    "DoesNotFitError": "lea_compiler.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'lea_compiler' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API and the module's dunder names, without importing the API (nor listing this module's own
    helpers: `importlib`, `Any`): what `dir()`, tab completion and `help()` see."""
    return sorted({*(name for name in globals() if name.startswith("__")), *__all__})
