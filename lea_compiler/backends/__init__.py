"""Backends: each turns a compiled Program into something outside the compiler.

`BACKENDS` is the explicit registry (STYLE rule 6): target name -> the
function that emits it. A backend reads the Program and nothing else of the
compiler, so what is simulated is exactly what is programmed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lea_compiler.backends.board import emit_board

BACKENDS: dict[str, Callable[..., Any]] = {"board": emit_board}
"""Target name (as `leac emit --target NAME` takes it) -> its emit function."""
