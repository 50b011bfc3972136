"""Synthetic chips like the seed paper's: random stuck devices and dead lines, from a seed."""

from __future__ import annotations

import logging

import numpy as np

from lea_compiler.chip.fields import STUCK_HIGH, STUCK_LOW, int_problem, name_problem, number_problem, show
from lea_compiler.chip.model import Chip
from lea_compiler.chip.parts import Array, DeviceModel, Periphery
from lea_compiler.chip.store import DefectTable, cross_problems, trusted_defects
from lea_compiler.chip_limits import MAX_ARRAY_COLS, MAX_ARRAY_DEVICES, MAX_ARRAY_ROWS, MAX_ARRAYS, MAX_DEVICES
from lea_compiler.errors import UsageError

logger = logging.getLogger(__name__)


class _States:
    """The states of a table's defects as a sequence, made one at a time (only for messages)."""

    def __init__(self, high: np.ndarray) -> None:
        self.high = high

    def __getitem__(self, k: int) -> str:
        return STUCK_HIGH if self.high[k] else STUCK_LOW

    def __len__(self) -> int:
        return len(self.high)


def _probability_problem(value: object, name: str) -> str | None:
    if (p := number_problem(value, name, positive=False)) is not None:
        return p
    if value > 1:  # type: ignore[operator]
        return f"{name}: {show(value)} is not a probability between 0 and 1"
    return None


def synth_chip(
    *,
    arrays: int = 32,
    rows: int = 25,
    cols: int = 25,
    stuck_high: float = 0.025,
    stuck_low: float = 0.005,
    dead_rows: float = 0.0,
    dead_cols: float = 0.0,
    seed: int,
    name: str | None = None,
    device: DeviceModel = DeviceModel(),  # noqa: B008 - frozen, so a shared default is safe
    periphery: Periphery = Periphery(),  # noqa: B008
) -> Chip:
    """A random chip like the seed paper's (32 arrays of 25 x 25, about 2.5% stuck high).

    Each device is independently stuck high with probability `stuck_high`,
    else stuck low with probability `stuck_low` (so never both); each row and
    each column is independently dead (a whole-line stuck-low defect) with
    probability `dead_rows` / `dead_cols`. Devices on a dead line are not
    listed again, so the chip's stuck-high rate is
    `stuck_high * (1 - dead_rows) * (1 - dead_cols)`. Defects carry no `g_uS`:
    their conductances come from the device model. The same arguments and
    seed always give the same chip.

    Args:
        arrays: Number of arrays (ids 0..arrays-1, a uniform grid).
        rows: Rows per array.
        cols: Columns per array.
        stuck_high: Per-device probability of being stuck high.
        stuck_low: Per-device probability of being stuck low.
        dead_rows: Per-row probability of a dead (stuck-low) row.
        dead_cols: Per-column probability of a dead (stuck-low) column.
        seed: Seed for `numpy.random.default_rng`.
        name: The chip's name.
        device: The device model.
        periphery: The periphery model.

    Raises:
        UsageError: an argument is out of range (every bad one is listed).
    """
    problems = [
        int_problem(arrays, "arrays", minimum=1, maximum=MAX_ARRAYS),
        int_problem(rows, "rows", minimum=1, maximum=MAX_ARRAY_ROWS),
        int_problem(cols, "cols", minimum=1, maximum=MAX_ARRAY_COLS),
        int_problem(seed, "seed", minimum=0),
    ]
    rates = {
        "stuck_high": stuck_high,
        "stuck_low": stuck_low,
        "dead_rows": dead_rows,
        "dead_cols": dead_cols,
    }
    problems += [_probability_problem(value, key) for key, value in rates.items()]
    found = [p for p in problems if p]
    if not found:
        if stuck_high + stuck_low > 1.0:
            found.append(f"stuck_high + stuck_low: {stuck_high + stuck_low} is more than 1")
        if rows * cols > MAX_ARRAY_DEVICES or arrays * rows * cols > MAX_DEVICES:
            found.append(
                f"arrays x rows x cols: {arrays} x {rows} x {cols} is more devices than leac "
                f"accepts ({MAX_DEVICES} in all, {MAX_ARRAY_DEVICES} per array)"
            )
    if found:
        raise UsageError("invalid synthetic chip options:\n" + "\n".join(f"  {p}" for p in found))
    rng = np.random.default_rng(seed)
    positions, line_rows, line_cols, high_parts = [], [], [], []
    for a in range(arrays):
        # Per array: its dead rows, its dead columns, then one draw per device.
        dead_r = np.flatnonzero(rng.random(rows) < dead_rows)
        dead_c = np.flatnonzero(rng.random(cols) < dead_cols)
        u = rng.random((rows, cols))
        high = u < stuck_high
        stuck = u < stuck_high + stuck_low
        stuck[dead_r, :] = False
        stuck[:, dead_c] = False
        r_idx, c_idx = np.nonzero(stuck)
        lines = dead_r.size + dead_c.size
        positions.append(np.full(lines + r_idx.size, a, dtype=np.int64))
        line_rows += [dead_r, np.full(dead_c.size, -1), r_idx]
        line_cols += [np.full(dead_r.size, -1), dead_c, c_idx]
        high_parts += [np.zeros(lines, dtype=bool), high[r_idx, c_idx]]
    n = sum(p.size for p in positions)
    table = DefectTable(
        pos=np.concatenate(positions),
        row=np.concatenate(line_rows).astype(np.int64),
        col=np.concatenate(line_cols).astype(np.int64),
        high=np.concatenate(high_parts),
        g_uS=np.full(n, np.nan),
    )
    grid = tuple(Array(i, rows, cols) for i in range(arrays))
    array_ids: list[int] = table.pos.tolist()
    row_list: list[int | None] = table.row.tolist()
    col_list: list[int | None] = table.col.tolist()
    if (table.row < 0).any() or (table.col < 0).any():  # dead lines: -1 is None
        row_list = [None if r is None or r < 0 else r for r in row_list]
        col_list = [None if c is None or c < 0 else c for c in col_list]
    defects = tuple(trusted_defects(array_ids, row_list, col_list, table, [None] * n))
    if (
        not isinstance(device, DeviceModel)
        or not isinstance(periphery, Periphery)
        or (name is not None and name_problem(name, "name") is not None)
        or cross_problems(table, grid, range(n), [array_ids, row_list, col_list, _States(table.high)])
    ):
        # Let the constructor check (and name every problem) as it would have. (The defects have none,
        # by construction: the check above is a guard against a mistake here, never expected to fire.)
        chip = Chip(arrays=grid, defects=defects, device=device, periphery=periphery, name=name, grid=True)
    else:
        chip = Chip.trusted(grid, defects, device, periphery, name, True, table)
    if logger.isEnabledFor(logging.INFO):
        logger.info("synthesised %s", chip.summary())
    return chip
