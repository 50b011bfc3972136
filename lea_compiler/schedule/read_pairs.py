"""A crossbar layer's reads with their conversions (`plan.LayerPlan.reads`): as tables for numpy, as records on
demand.

The simulator and the cost model read a layer's reads as tables, one numpy pass over all of them; only a board
file (`inference_records`), `leac emit` and tests want a `Read` and a `Convert` object per copy half, thousands
per layer on small arrays, whose making was most of lowering's time. So the two sides are made from each other
when first asked for: lowering gives the tables (`ReadPairs.from_tables`, made from its copy halves and blocks),
a board file or a test gives the records (`ReadPairs.of`), and either way the other side is the same (one
definition: `read_table` and `conversion_table` gather the tables from records, `_records` makes the records
from tables; tests/test_read_pairs.py checks that the round trip is the identity).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from itertools import chain
from typing import overload

import numpy as np

from lea_compiler.geometry import POLARITIES
from lea_compiler.schedule.records import READ_COLUMN, READ_FIELDS, Convert, Read, builder

CONVERT_FIELDS = ("col_start", "col_stop", "adcs", "rounds")
"""The columns of a layer's table of its conversions' integer fields (`ReadPairs.conversions`); their ranges
(`Convert.full_scale_uA`) are `ReadPairs.full_scales`."""
CONVERT_COLUMN = {name: column for column, name in enumerate(CONVERT_FIELDS)}
"""Each of `CONVERT_FIELDS`' column."""

Pair = tuple[Read, Convert]


def read_table(reads: Sequence[Read]) -> np.ndarray:
    """(reads, len(READ_FIELDS)) int64, read only: each read's fields `READ_FIELDS` (one_row -1 for none,
    polarity 0 for G+ and 1 for G-), gathered read by read."""
    table = np.fromiter(chain.from_iterable(
        (r.array, r.row, r.col, r.rows, r.cols, r.block, r.copy, r.x_start, r.x_stop,
         -1 if r.one_row is None else r.one_row, r.reads, r.polarity != POLARITIES[0]) for r in reads),
        dtype=np.int64, count=len(READ_FIELDS) * len(reads))
    table = table.reshape(len(reads), len(READ_FIELDS))
    table.setflags(write=False)
    return table


def conversion_table(converts: Sequence[Convert]) -> tuple[np.ndarray, np.ndarray]:
    """The conversions' integer fields `CONVERT_FIELDS` ((converts, 4) int64) and their ranges (float64, NaN for
    none), read only, gathered conversion by conversion."""
    table = np.fromiter(chain.from_iterable((c.col_start, c.col_stop, c.adcs, c.rounds) for c in converts),
                        dtype=np.int64, count=len(CONVERT_FIELDS) * len(converts)).reshape(-1, len(CONVERT_FIELDS))
    scales = np.fromiter((np.nan if c.full_scale_uA is None else c.full_scale_uA for c in converts),
                         dtype=np.float64, count=len(converts))
    for part in (table, scales):
        part.setflags(write=False)
    return table, scales


_read, _convert = builder(Read), builder(Convert)  # thousands per layer on small arrays: `records.builder`


class ReadPairs(Sequence[Pair]):
    """A layer's reads, each with the conversion that follows it, in schedule order: a sequence of (`Read`,
    `Convert`) pairs, and the same as tables (`table`, `conversions`, `full_scales`). Whichever side was given,
    the other is made when first asked for, once; `made` says whether the records exist."""

    def __init__(self, layer: str, pairs: Iterable[Pair] | None = None, *, table: np.ndarray | None = None,
                 conversions: np.ndarray | None = None, full_scales: np.ndarray | None = None) -> None:
        self.layer = layer
        if pairs is not None and not (table is None and conversions is None and full_scales is None):
            raise TypeError("ReadPairs takes the records or the tables, not both (either is made from the other)")
        self._pairs = None if pairs is None else tuple(pairs)
        if self._pairs is None:
            if table is None or conversions is None or full_scales is None:
                raise TypeError("ReadPairs needs the records or all three tables")
            n = len(table)
            if table.shape != (n, len(READ_FIELDS)) or conversions.shape != (n, len(CONVERT_FIELDS)) \
                    or full_scales.shape != (n,):
                raise ValueError(f"layer {layer!r}: tables of shapes {table.shape}, {conversions.shape} and "
                                 f"{full_scales.shape} are not one row per read")
            for part in (table, conversions, full_scales):
                part.setflags(write=False)
            # the cached properties' values, given: the records are what is made on demand
            self.__dict__.update(table=table, _conversion=(conversions, full_scales))

    @classmethod
    def of(cls, layer: str, pairs: Iterable[Pair]) -> ReadPairs:
        """The pairs given as records (a board file's, or a test's); the tables gathered when first asked for."""
        return pairs if isinstance(pairs, ReadPairs) else cls(layer, pairs)

    @classmethod
    def from_tables(cls, layer: str, table: np.ndarray, conversions: np.ndarray, full_scales: np.ndarray
                    ) -> ReadPairs:
        """The pairs of layer `layer` given as tables (`READ_FIELDS`, `CONVERT_FIELDS`, the ranges with NaN for
        none: lowering's); the records made when first asked for.

        Raises:
            ValueError: the tables do not have one row per read."""
        return cls(layer, table=table, conversions=conversions, full_scales=full_scales)

    @property
    def made(self) -> bool:
        """Whether the records exist (given, or made on demand)."""
        return self._pairs is not None

    @cached_property
    def table(self) -> np.ndarray:
        """(reads, len(READ_FIELDS)) int64, read only: every read's fields (`read_table`)."""
        return read_table([read for read, _ in self.pairs])

    @cached_property
    def _conversion(self) -> tuple[np.ndarray, np.ndarray]:
        return conversion_table([convert for _, convert in self.pairs])

    @property
    def conversions(self) -> np.ndarray:
        """(reads, len(CONVERT_FIELDS)) int64, read only: every conversion's col_start, col_stop, adcs, rounds."""
        return self._conversion[0]

    @property
    def full_scales(self) -> np.ndarray:
        """(reads,) float64, read only: every conversion's ADC range (uA), NaN where it has none."""
        return self._conversion[1]

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """The records, made from the tables when first asked for."""
        if self._pairs is None:
            self._pairs = self._records()
        return self._pairs

    def _records(self) -> tuple[Pair, ...]:
        """The records the tables describe: the same objects, field for field, that `read_table` and
        `conversion_table` gather the tables from (Python ints and floats; None for a missing one_row or range)."""
        columns = {name: self.table[:, READ_COLUMN[name]].tolist() for name in READ_FIELDS}
        c0, c1, adcs, rounds = (self.conversions[:, CONVERT_COLUMN[name]].tolist() for name in CONVERT_FIELDS)
        scales = [None if s != s else s for s in self.full_scales.tolist()]  # NaN: none
        polarity = [POLARITIES[p] for p in columns["polarity"]]
        one_row = [None if r < 0 else r for r in columns["one_row"]]
        name = self.layer
        return tuple(
            (_read(name, block, copy, pol, array, row, col, rows, cols, x_start, x_stop, one, reads),
             _convert(name, block, copy, pol, array, start, stop, adc, rnd, scale))
            for array, row, col, rows, cols, block, copy, x_start, x_stop, one, reads, pol, start, stop, adc, rnd, scale
            in zip(columns["array"], columns["row"], columns["col"], columns["rows"], columns["cols"],
                   columns["block"], columns["copy"], columns["x_start"], columns["x_stop"], one_row,
                   columns["reads"], polarity, c0, c1, adcs, rounds, scales, strict=True))

    def reads(self) -> ReadView:
        """The reads alone, as a sequence that makes the records only when one is asked for (its length does
        not)."""
        return ReadView(self)

    def __len__(self) -> int:
        return len(self._pairs) if self._pairs is not None else len(self.table)

    @overload
    def __getitem__(self, index: int) -> Pair: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Pair, ...]: ...

    def __getitem__(self, index: int | slice) -> Pair | tuple[Pair, ...]:
        return self.pairs[index]

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    def __repr__(self) -> str:
        return f"ReadPairs({self.layer!r}, {len(self)} reads{'' if self.made else ', records not made'})"


class ReadView(Sequence[Read]):
    """`ReadPairs.reads`: a layer's reads without their conversions."""

    def __init__(self, pairs: ReadPairs) -> None:
        self._pairs = pairs

    def __len__(self) -> int:
        return len(self._pairs)

    @overload
    def __getitem__(self, index: int) -> Read: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Read, ...]: ...

    def __getitem__(self, index: int | slice) -> Read | tuple[Read, ...]:
        if isinstance(index, slice):
            return tuple(read for read, _ in self._pairs.pairs[index])
        return self._pairs.pairs[index][0]
