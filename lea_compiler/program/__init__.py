"""The Program: what `leac compile` produces and every backend reads.

A Program holds, for one model on one chip:

- the digital graph: the canonicalized IR, where each crossbar product is a
  `leac.MVM` node whose name is the name of its `Layer` (the node keeps its
  float weights as the digital reference the simulator compares against);
- per crossbar layer: its matrix size, levels, encoding and per-column scale,
  the blocks it is cut into (row blocks are partial sums added digitally),
  each block's target levels, the alpha copies of each block half with their
  region on the chip and the levels actually programmed (-1 where the
  device is stuck and is skipped), and the (alpha, cols) mask of the beta
  copies each output column averages;
- the chip it was compiled for (embedded whole, plus its fingerprint and the
  name of the chip file it was read from, for reports on an unnamed chip), the
  compile options and the placement solver's status;
- the original ONNX file, so reports can quote onnxruntime's accuracy.

The package imports no compiler pass (the passes make a Program:
lea_compiler/passes/lower.py), so the backends load without the compiler:

- types.py: `Layer`, `ProgramBlock`, `BlockCopy`, `CopyHalf` (a crossbar
  layer as mapped onto the chip), `LevelsPack` (a layer's copy halves' levels
  in one buffer, as loaded or compiled) and `represented_matrix`;
- core.py: `Program` and `with_calibration`;
- file.py: the `.leac` file (`Program.save` / `Program.load`), its format
  described there;
- archive.py: reading the file's members with a bound on each, before
  trusting any of them;
- checks.py: `program_problems`, every way a Program contradicts itself, its
  chip or its graph: a damaged or hand-edited file is an `InvalidInputError`
  listing what is wrong, never a crash in a backend.
"""

from __future__ import annotations

from lea_compiler.program.checks import MAX_PROBLEMS, program_problems
from lea_compiler.program.core import Program, with_calibration
from lea_compiler.program.file import FORMAT, MAX_PROGRAM_BYTES, VERSION, embedded_model_digest
from lea_compiler.program.types import BlockCopy, CopyHalf, Layer, LevelsPack, ProgramBlock, represented_matrix

__all__ = [
    "FORMAT",
    "MAX_PROBLEMS",
    "MAX_PROGRAM_BYTES",
    "VERSION",
    "BlockCopy",
    "CopyHalf",
    "Layer",
    "LevelsPack",
    "Program",
    "ProgramBlock",
    "embedded_model_digest",
    "program_problems",
    "represented_matrix",
    "with_calibration",
]
