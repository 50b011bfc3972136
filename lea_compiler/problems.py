"""The problem collector every validator shares: what is wrong with an input, bounded and in order.

A chip file, a Program and a board file can each have millions of problems (a 30 MB file of bad lines);
a person fixes them from the first few. So a validator adds every problem it finds to a `Problems`, which
keeps the first `limit` in the input's order (by an order key such as the line number, when problems are not
found in that order) and counts the rest, and turns them into one error message.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterable

from lea_compiler.errors import InvalidInputError, LeacError


class Problems:
    """The first `limit` problems by order key (then by arrival), and how many were added in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._heap: list[tuple[int, int, str]] = []  # (-order, -arrival, text): the last kept on top

    def add(self, text: str, order: int = 0) -> None:
        """One problem; `order` places it among the others (e.g. its line), ties by arrival."""
        self.total += 1
        item = (-order, -self.total, text)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def extend(self, texts: Iterable[str], order: int = 0) -> None:
        for text in texts:
            self.add(text, order)

    @property
    def kept(self) -> tuple[str, ...]:
        """The problems kept, in order."""
        return tuple(text for _, _, text in sorted(self._heap, reverse=True))

    @property
    def more(self) -> int:
        """How many problems are not kept."""
        return self.total - len(self._heap)

    def __bool__(self) -> bool:
        return self.total > 0

    def listing(self) -> str:
        """The problems kept as indented lines, then "... and N more" when some are not."""
        return listing(self.kept, self.more)

    def lines(self) -> list[str]:
        """The problems kept, then "... and N more problems" when some are not (a report's or an error's list)."""
        return summary_lines(self.kept, self.more)

    def raise_if_any(self, heading: str, error: type[LeacError] = InvalidInputError) -> None:
        """Raise `error` with `heading`, a colon and the listing, if any problem was added."""
        if self.total:
            raise error(f"{heading}:\n{self.listing()}")


def listing(kept: Iterable[str], more: int = 0) -> str:
    """Problems as indented lines for an error message, then "... and N more" when `more` were left out."""
    return "\n".join(f"  {p}" for p in kept) + (f"\n  ... and {more} more" if more else "")


def summary_lines(kept: Iterable[str], more: int = 0) -> list[str]:
    """Problems as a list, then "... and N more problems" when `more` were left out."""
    return [*kept, *([f"... and {more} more problems"] if more else [])]


def collected(problems: Iterable[str], limit: int) -> Problems:
    """`problems` (in order) in a collector of `limit`."""
    out = Problems(limit)
    out.extend(problems)
    return out


def json_value_problem(exc: ValueError) -> str:
    """What a ValueError of `json.loads` (other than a JSONDecodeError) says, for a person who wrote the file:
    Python refuses an integer of more digits than `sys.get_int_max_str_digits()` (4,300 by default) and tells the
    programmer how to raise the limit, which the person running leac cannot."""
    limit = sys.get_int_max_str_digits()
    if limit and "integer string conversion" in str(exc):
        return f"a number of more than {limit} digits"
    return str(exc)
