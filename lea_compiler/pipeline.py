"""The compile pipeline: the ordered list of passes, pass timing, and IR verification between passes.

`PASSES` is the explicit registry (name -> pass class); `default_pipeline`
builds the one ordered list leac runs. No dependency solving: each pass
checks that the facts it needs are there and says which pass to run first.
The one option that changes the list is the ensemble scheme: `network` (a
committee machine) adds `replicate_network` after `canonicalize` and gives
every replicated layer one copy; `layer` (LEA, the default) does not.
The step after the list, lowering the mapped IR to a Program, is
`passes/lower.py`; the compile driver (compiler.py) runs it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from lea_compiler.chip import Chip, DeviceModel
from lea_compiler.chip.variability import noise_figures_uS
from lea_compiler.errors import CompileError, DoesNotFitError, UsageError
from lea_compiler.fileio import atomic_write_text
from lea_compiler.ir import Graph
from lea_compiler.options import (  # defined there, once; imported from here too
    CompileOptions,
)
from lea_compiler.passes.canonicalize import Canonicalize
from lea_compiler.passes.compensate import Compensate
from lea_compiler.passes.encode import Encode
from lea_compiler.passes.ensemble import MakeEnsemble
from lea_compiler.passes.place import Place
from lea_compiler.passes.quantize import Quantize, pair_noise_variance
from lea_compiler.passes.replicate_network import ReplicateNetwork
from lea_compiler.passes.select import Select
from lea_compiler.passes.tile import Tile

log = logging.getLogger(__name__)


class Pass(Protocol):
    """A compiler pass: a name and `run(graph) -> graph` (in place)."""

    @property
    def name(self) -> str: ...

    def run(self, graph: Graph) -> Graph: ...


PASSES: dict[str, type] = {
    "canonicalize": Canonicalize,
    "replicate_network": ReplicateNetwork,
    "quantize": Quantize,
    "tile": Tile,
    "ensemble": MakeEnsemble,
    "place": Place,
    "encode": Encode,
    "select": Select,
    "compensate": Compensate,
}


def front_passes(options: CompileOptions, device: DeviceModel | None = None) -> list[Pass]:
    """The leading passes of `default_pipeline` that do not need the chip: `canonicalize` (and
    `replicate_network` with the network ensemble), then `quantize` when `device` is given, as
    quantize depends on the chip only through its device model (levels; noise with
    `scale_noise="chip"`). A compile for many chips runs these once and shares the graph (see
    `lea_compiler.compiler.prepare`).

    The options' values were checked when they were made (`CompileOptions`: a wrong value is a UsageError).
    """
    # the options' values were checked when they were made (`CompileOptions.__post_init__`)
    network = options.ensemble == "network"
    replicate: list[Pass] = [ReplicateNetwork(int(options.k))] if network else []
    noise = 0.0 if device is None or options.scale_noise == "none" else pair_noise_variance(
        *noise_figures_uS(device), options.reads)  # the constants, or the noise models' means over the levels
    quantize: list[Pass] = [] if device is None else [
        Quantize(device.levels_uS, encoding=options.encoding, scale=options.scale, bias=options.bias,
                 copies=1 if network else options.effective_beta, noise_uS2=noise,
                 alpha=None if network or options.beta is None else options.k)]
    return [Canonicalize(), *replicate, *quantize]


def default_pipeline(chip: Chip, options: CompileOptions, calibration: np.ndarray | None = None) -> list[Pass]:
    """The passes `leac compile` runs, in order; with `calibration` (model inputs, batch first) and
    `compensate="columns"` (the default), `compensate` fits a per-column gain and offset against the
    known stuck devices (the options' values checked when they were made, `CompileOptions`).
    """
    front = front_passes(options, chip.device)
    compensate: list[Pass] = (
        [Compensate(calibration, chip=chip)] if options.compensate == "columns" and calibration is not None else [])
    network = options.ensemble == "network"
    return [
        *front,
        Tile(chip, rows=options.block_rows, cols=options.block_cols),
        MakeEnsemble(1 if network else options.k, options.beta),
        Place(chip, placer=options.placer, time_limit_s=options.time_limit_s, seed=options.seed,
              objective=options.objective, reads=options.reads),
        Encode(chip),
        Select(),
        *compensate,
    ]


@dataclass(frozen=True)
class PassTiming:
    name: str
    seconds: float


def run_pipeline(
    graph: Graph,
    passes: Sequence[Pass],
    *,
    verify: bool = True,
    dump_dir: str | os.PathLike[str] | None = None,
    on_pass: Callable[[str, float], None] | None = None,
    done: Sequence[str] = (),
) -> list[PassTiming]:
    """Run `passes` in order on `graph` (in place), verifying the IR after each.

    `dump_dir` receives the IR after each pass as numbered text files;
    `on_pass(name, seconds)` is called after each pass (progress display).
    `done` names the passes that already ran on `graph` (a shared front end):
    error messages list them, and the dump files go on numbering after them.

    Raises:
        CompileError / DoesNotFitError: a pass failed; the message names it and the passes before it.
        IRVerificationError: a pass broke the IR (a bug).
    """
    timings: list[PassTiming] = []
    if dump_dir is not None:
        if Path(dump_dir).exists() and not Path(dump_dir).is_dir():
            raise UsageError(f"--dump-ir {dump_dir}: is a file, not a folder for the IR dumps")
        try:
            Path(dump_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--dump-ir {dump_dir}: cannot make the folder ({exc.strerror or exc})") from None
        if not done:
            atomic_write_text(Path(dump_dir) / "00-input.txt", str(graph) + "\n")
    for index, compiler_pass in enumerate(passes, start=len(done) + 1):
        start = time.perf_counter()
        try:
            graph = compiler_pass.run(graph)
        except (CompileError, DoesNotFitError) as exc:
            before = ", ".join([*done, *(t.name for t in timings)]) or "none"
            raise type(exc)(f"pass {compiler_pass.name} (after: {before}): {exc}") from None
        seconds = time.perf_counter() - start
        if verify:
            graph.verify(after=compiler_pass.name)
        timings.append(PassTiming(compiler_pass.name, seconds))
        log.info("pass %s: %.3f s", compiler_pass.name, seconds)
        if on_pass is not None:
            on_pass(compiler_pass.name, seconds)
        if dump_dir is not None:
            atomic_write_text(Path(dump_dir) / f"{index:02d}-{compiler_pass.name}.txt", str(graph) + "\n")
    return timings

