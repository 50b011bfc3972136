"""The digital reference of the simulator's layer errors: the Program's graph run without the crossbar.

`Report.layer_error` measures each crossbar layer's simulated outputs against this graph's outputs of the same
layer on the same samples. The reference depends on the Program and the data, not on the chip or the noise, so
the draws of `simulate_trials` share one `DigitalReference`: the first draw runs the graph and the later ones
reuse its outputs, while they fit in `REFERENCE_BYTES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lea_compiler import interpreter
from lea_compiler.datasets import Dataset
from lea_compiler.errors import UsageError
from lea_compiler.program import Program

REFERENCE_BYTES = 128 * 2**20
"""The most bytes of reference outputs a `DigitalReference` keeps (128 MiB); past it, each draw runs the graph
again for the chunks that did not fit (the anchor MLP's 1,000 samples keep 0.6 MiB)."""


class DigitalReference:
    """The crossbar layers' outputs of `program`'s graph, run digitally, for chunks of the data sets `datasets`.

    `budget` bytes of them are kept, chunk by chunk in the order asked, for the next draw that asks for the same
    chunk; 0 keeps none (one `simulate` call asks for each chunk once)."""

    def __init__(self, program: Program, datasets: Sequence[Dataset], budget: int = REFERENCE_BYTES) -> None:
        self.program = program
        self.datasets = tuple(datasets)
        self.budget = budget
        self.values = [node.outputs[0].name for node in program.graph.nodes_of("MVM")]
        self._kept: dict[tuple[int, int, int], dict[str, np.ndarray]] = {}
        self._bytes = 0

    def check(self, program: Program, datasets: Sequence[Dataset]) -> None:
        """Refuse to serve another Program or other data sets than the ones this reference was made for (the same
        objects: a file loaded twice is two).

        Raises:
            UsageError: another Program or other data sets.
        """
        if self.program is not program:
            raise UsageError("this digital reference was made for another Program (give DigitalReference(program, "
                             "datasets) of the Program simulated)")
        if len(self.datasets) != len(datasets) or any(a is not b for a, b in zip(self.datasets, datasets,
                                                                                  strict=True)):
            raise UsageError("this digital reference was made for other data sets (give DigitalReference(program, "
                             "datasets) of the data simulated)")

    def outputs(self, index: int, chunk: slice) -> dict[str, np.ndarray]:
        """Each crossbar layer's reference output (by value name) for the samples `chunk` of data set `index`."""
        key = (index, chunk.start, chunk.stop)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        feed = self.program.graph.inputs[0].name
        ran = interpreter.run(self.program.graph, {feed: self.datasets[index].x[chunk]}, keep=self.values)
        found = {value: ran[value] for value in self.values}
        size = sum(array.nbytes for array in found.values())
        if self._bytes + size <= self.budget:
            for array in found.values():
                array.flags.writeable = False  # shared by every later draw
            self._kept[key] = found
            self._bytes += size
        return found
