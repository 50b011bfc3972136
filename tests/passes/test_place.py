"""The place pass's view of the placers (the solver itself is tested in tests/test_placement.py)."""

from __future__ import annotations

from lea_compiler.passes.place import PLACER_NAMES
from lea_compiler.placement import PLACERS


def test_the_placer_names_are_the_solver_registry_keys_in_its_order() -> None:
    assert PLACER_NAMES == tuple(PLACERS)
