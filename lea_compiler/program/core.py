"""The `Program` type: what `leac compile` produces and every backend reads (see lea_compiler/program/).

Its file methods (`save`, `to_bytes`, `load`, `from_bytes`) are the
`.leac` format of lea_compiler/program/file.py, with the consistency checks
of lea_compiler/program/checks.py on the way out and on the way in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import Any

from lea_compiler import __version__
from lea_compiler.arguments import check_path
from lea_compiler.chip import Chip
from lea_compiler.errors import CompileError, InvalidInputError
from lea_compiler.fileio import atomic_write_bytes
from lea_compiler.ir import Graph
from lea_compiler.program.checks import listing, program_problems
from lea_compiler.program.file import program_bytes, read_program, read_program_file
from lea_compiler.program.types import Layer


@dataclass(frozen=True, eq=False)
class Program:
    """The compiled result (see lea_compiler/program/__init__.py)."""

    graph: Graph
    layers: tuple[Layer, ...]
    chip: Chip
    model: dict[str, Any]
    options: dict[str, Any]
    placement: dict[str, Any]
    leac_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)
    source_model: bytes | None = None  # the original ONNX file, for the onnxruntime baseline

    @property
    def loaded_from(self) -> str | None:
        """The `.leac` file `load` read this Program from (an absolute path), else None (compiled, read from
        bytes, or derived with `dataclasses.replace`): a writer refuses to overwrite it (`fileio.check_output`).
        Kept outside the fields, so it is not saved, compared or carried to a derived Program."""
        return self.__dict__.get("_loaded_from")

    @property
    def chip_fingerprint(self) -> str:
        return self.chip.fingerprint()

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def reads(self) -> int:
        """How many times each region is read per inference, its reads averaged (`leac compile --reads`); 1 for
        a Program written before the option (its options have no `reads`)."""
        return int(self.options.get("reads", 1))

    @property
    def devices_used(self) -> int:
        return sum(layer.devices for layer in self.layers)

    @property
    def arrays_used(self) -> list[int]:
        halves = (half for layer in self.layers for b in layer.blocks for c in b.copies for half in (c.pos, c.neg))
        return sorted({half.region.array for half in halves})

    @property
    def as_programmed(self) -> bool:
        """Whether the Program records a programmed chip (`leac program`): every copy half holds the conductances
        its devices were left with, and simulating it draws no programming noise."""
        return bool(self.layers) and self.layers[0].blocks[0].copies[0].pos.programmed_uS is not None

    @property
    def mapping_error_uS(self) -> float:
        return float(sum(layer.mapping_error_uS for layer in self.layers))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the Program atomically as a `.leac` file (byte-identical for identical Programs).

        Raises:
            UsageError: `path` is not a file path (str or os.PathLike), or cannot be written.
            CompileError: the Program breaks `program_problems` (a bug: `load` would refuse the file),
                and nothing is written.
        """
        check_path(path, "path")
        problems = program_problems(self)
        if problems:
            raise CompileError(f"the compiled Program is inconsistent, not written (a bug in leac):\n"
                               f"{listing(problems)}")
        atomic_write_bytes(path, self.to_bytes())

    def to_bytes(self) -> bytes:
        """The bytes of the `.leac` file (lea_compiler/program/file.py)."""
        return program_bytes(self)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Program:
        """Read a `.leac` file written by `save`.

        Raises:
            UsageError: `path` is not a file path (str or os.PathLike): an open file is not read.
            InvalidInputError: not a leac Program, a newer version, or damaged.
        """
        check_path(path, "path")
        source = os.fspath(path)
        program = Program._checked(Program(**read_program_file(source)), source)
        object.__setattr__(program, "_loaded_from", os.path.abspath(source))  # frozen: set as __init__ would
        return program

    @staticmethod
    def from_bytes(data: bytes, source: str = "<program>") -> Program:
        """Read a Program from the bytes of a `.leac` file (see `load`)."""
        return Program._checked(Program(**read_program(io.BytesIO(data), source)), source)

    @staticmethod
    def _checked(program: Program, source: str) -> Program:
        """`program`, read from `source`, if `program_problems` finds nothing wrong with it."""
        problems = program_problems(program)
        if problems:
            raise InvalidInputError(f"{source}: damaged Program:\n{listing(problems)}")
        return program

    @property
    def model_digest(self) -> str | None:
        """SHA-256 (hex) of the original ONNX file the Program embeds; None if it embeds none."""
        return None if self.source_model is None else hashlib.sha256(self.source_model).hexdigest()


def with_calibration(program: Program, input_full_scale: dict[str, float],
                     adc_full_scale_uA: dict[str, list[float]], source: str) -> Program:
    """The Program with DAC and ADC ranges fixed at compile time (both backends then use them)."""
    layers = tuple(
        dataclasses.replace(
            layer,
            input_full_scale=float(input_full_scale[layer.name]),
            blocks=tuple(dataclasses.replace(b, adc_full_scale_uA=float(fs))
                         for b, fs in zip(layer.blocks, adc_full_scale_uA[layer.name], strict=True)),
        )
        for layer in program.layers
    )
    extra = {**program.extra, "calibration": source}
    return dataclasses.replace(program, layers=layers, extra=extra)
