"""leac: the layer-ensemble-averaging compiler for memristor crossbar chips."""

from __future__ import annotations

__version__ = "0.1.0"
