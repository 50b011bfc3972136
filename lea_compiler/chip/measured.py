"""Chips from measured conductance maps: one array per map, stuck devices and dead lines by threshold."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np

from lea_compiler.chip.fields import STUCK_HIGH, STUCK_LOW, number_problem
from lea_compiler.chip.io import read_text
from lea_compiler.chip.model import Chip
from lea_compiler.chip.parts import Array, Defect, DeviceModel
from lea_compiler.chip.validate import is_grid
from lea_compiler.chip_limits import MAX_ARRAY_DEVICES
from lea_compiler.errors import BadDataError, UsageError

logger = logging.getLogger(__name__)

MapSource: TypeAlias = "str | os.PathLike[str] | tuple[str | os.PathLike[str], np.ndarray]"
"""A conductance map for `import_maps`: a text file, or (name, matrix in siemens)."""

_IMPLAUSIBLE_SIEMENS = 1e-2
"""A median reading above 10 mS is no memristor in siemens: the map is in other units."""


def _check_map(matrix: np.ndarray, label: str) -> np.ndarray:
    """`matrix` as a float64 conductance map in siemens, or a BadDataError saying what is wrong."""
    if matrix.dtype == object or not (
        np.issubdtype(matrix.dtype, np.integer) or np.issubdtype(matrix.dtype, np.floating)
    ):
        raise BadDataError(f"{label}: a conductance map must hold real numbers, not {matrix.dtype}")
    if matrix.ndim != 2:
        raise BadDataError(
            f"{label}: a conductance map must be 2-D (rows x columns), not of shape {matrix.shape}"
        )
    if matrix.size == 0:
        raise BadDataError(f"{label}: the conductance map is empty")
    if matrix.size > MAX_ARRAY_DEVICES:
        raise BadDataError(
            f"{label}: {matrix.shape[0]} x {matrix.shape[1]} is more devices than leac accepts "
            f"in one array ({MAX_ARRAY_DEVICES})"
        )
    matrix = matrix.astype(np.float64)
    bad = ~np.isfinite(matrix)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise BadDataError(
            f"{label}: {int(bad.sum())} readings are not finite numbers "
            f"(the first at row {r}, col {c}: {matrix[r, c]})"
        )
    median = float(np.median(np.abs(matrix)))
    if median > _IMPLAUSIBLE_SIEMENS:
        raise BadDataError(
            f"{label}: the median reading {median:g} S is not a plausible conductance in siemens "
            f"(is the map in microsiemens? leac expects siemens)"
        )
    return matrix


def load_conductance_map(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a measured conductance map: a whitespace-separated text matrix in siemens.

    One array row per line, like the seed paper's published kernel maps.
    Blank lines and `#` comments are skipped.

    Args:
        path: The text file.

    Returns:
        A float64 matrix (rows x columns) in siemens.

    Raises:
        InvalidInputError: the file cannot be read.
        BadDataError: the text is not a rectangular matrix of finite numbers.
    """
    source = os.fspath(path)
    text = read_text(path, "conductance map")
    rows: list[np.ndarray] = []
    width = first_line = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        if not rows:
            width, first_line = len(tokens), lineno
        elif len(tokens) != width:
            raise BadDataError(
                f"{source}: line {lineno} has {len(tokens)} values but line {first_line} has "
                f"{width} (every row of a map needs the same number of columns)"
            )
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            for col, token in enumerate(tokens, start=1):
                try:
                    float(token)
                except ValueError:
                    hint = " (values must be separated by whitespace)" if "," in token else ""
                    raise BadDataError(
                        f"{source}: line {lineno}, value {col}: {token!r} is not a number{hint}"
                    ) from None
            raise  # pragma: no cover - numpy and float() disagree
        if not np.isfinite(values).all():
            col = int(np.flatnonzero(~np.isfinite(values))[0])
            raise BadDataError(
                f"{source}: line {lineno}, value {col + 1}: {tokens[col]!r} is not a finite number"
            )
        rows.append(values)
    if not rows:
        raise BadDataError(f"{source}: no values (an empty conductance map)")
    return _check_map(np.vstack(rows), source)


def _classify_map(
    array_id: int,
    g_uS: np.ndarray,
    high_above_uS: float,
    low_below_uS: float,
    dead_line_fraction: float,
) -> list[Defect]:
    """The defects of one measured map (in uS): dead lines first, then single devices."""
    high = g_uS > high_above_uS
    low = g_uS < low_below_uS
    dead_rows = np.flatnonzero((low.mean(axis=1) >= dead_line_fraction) & ~high.any(axis=1))
    dead_cols = np.flatnonzero((low.mean(axis=0) >= dead_line_fraction) & ~high.any(axis=0))

    def line_g(readings: np.ndarray, stuck: np.ndarray) -> float | None:
        positive = readings[stuck & (readings > 0)]
        return float(np.median(positive)) if positive.size else None

    defects = [
        Defect(array_id, r, None, STUCK_LOW, line_g(g_uS[r, :], low[r, :]))
        for r in dead_rows.tolist()
    ]
    defects += [
        Defect(array_id, None, c, STUCK_LOW, line_g(g_uS[:, c], low[:, c]))
        for c in dead_cols.tolist()
    ]
    single = high | low
    single[dead_rows, :] = False
    single[:, dead_cols] = False
    r_idx, c_idx = np.nonzero(single)
    for r, c, g, h in zip(
        r_idx.tolist(),
        c_idx.tolist(),
        g_uS[r_idx, c_idx].tolist(),
        high[r_idx, c_idx].tolist(),
        strict=True,
    ):
        if h:
            defects.append(Defect(array_id, r, c, STUCK_HIGH, g))
        else:
            defects.append(Defect(array_id, r, c, STUCK_LOW, g if g > 0 else None))
    return defects


def import_maps(
    maps: Sequence[MapSource],
    *,
    high_above_uS: float = 300.0,
    low_below_uS: float = 50.0,
    dead_line_fraction: float = 0.9,
    device: DeviceModel = DeviceModel(),  # noqa: B008 - frozen, so a shared default is safe
    name: str | None = None,
) -> Chip:
    """Build a chip from measured conductance maps, one array per map (`import_measured`, without the
    conductances)."""
    return import_measured(maps, high_above_uS=high_above_uS, low_below_uS=low_below_uS,
                           dead_line_fraction=dead_line_fraction, device=device, name=name)[0]


def import_measured(
    maps: Sequence[MapSource],
    *,
    high_above_uS: float = 300.0,
    low_below_uS: float = 50.0,
    dead_line_fraction: float = 0.9,
    device: DeviceModel = DeviceModel(),  # noqa: B008 - frozen, so a shared default is safe
    name: str | None = None,
) -> tuple[Chip, dict[int, np.ndarray]]:
    """Build a chip from measured conductance maps, one array per map, and keep every device's reading.

    A device reading above `high_above_uS` is stuck high, below
    `low_below_uS` stuck low; each keeps its measured conductance in `g_uS`
    (omitted for a reading <= 0, as the format needs positive conductances).
    A row or column with no stuck-high device in which at least
    `dead_line_fraction` of the devices are stuck low becomes one whole-line
    stuck-low defect whose `g_uS` is the median of its positive stuck-low
    readings (omitted if there are none); its devices are not listed again.

    Args:
        maps: Text files (see `load_conductance_map`) or (name, matrix in
            siemens) pairs; array ids are 0..n-1 in this order.
        high_above_uS: Stuck-high threshold; must be above the top device level.
        low_below_uS: Stuck-low threshold; must be below the bottom device level.
        dead_line_fraction: Share of stuck-low devices that makes a line dead, in (0, 1].
        device: The device model written into the chip.
        name: The chip's name.

    Returns:
        The chip (its arrays are a grid when every map has the same shape), and per array id every device's
        reading in uS, healthy devices included (what a read-back file holds; NaN for a reading <= 0).

    Raises:
        UsageError: no maps, or thresholds that make no sense for the device levels.
        InvalidInputError: a map file cannot be read.
        BadDataError: a map is malformed.
    """
    problems = [
        number_problem(high_above_uS, "high_above_uS"),
        number_problem(low_below_uS, "low_below_uS", positive=False),
        number_problem(dead_line_fraction, "dead_line_fraction"),
    ]
    found = [p for p in problems if p]
    if not found:
        top, bottom = device.levels_uS[-1], device.levels_uS[0]
        if high_above_uS <= top:
            found.append(
                f"high_above_uS: {high_above_uS} uS is not above the top device level ({top} uS)"
            )
        if low_below_uS >= bottom:
            found.append(
                f"low_below_uS: {low_below_uS} uS is not below the bottom device level "
                f"({bottom} uS)"
            )
        if dead_line_fraction > 1:
            found.append(f"dead_line_fraction: {dead_line_fraction} is more than 1")
    if isinstance(maps, (str, os.PathLike)):
        found.append("maps: give a list of maps, not one path")
    elif not maps:
        found.append("no conductance maps given")
    if found:
        raise UsageError("invalid map import options:\n" + "\n".join(f"  {p}" for p in found))
    loaded: list[tuple[str, np.ndarray]] = []
    for item in maps:
        if isinstance(item, tuple):
            label, matrix = os.fspath(item[0]), item[1]
            loaded.append((label, _check_map(np.asarray(matrix), label)))
        else:
            loaded.append((os.fspath(item), load_conductance_map(item)))
    arrays: list[Array] = []
    defects: list[Defect] = []
    readings: dict[int, np.ndarray] = {}
    for array_id, (label, matrix) in enumerate(loaded):
        readings[array_id] = np.where(matrix > 0, matrix * 1e6, np.nan)
        found_defects = _classify_map(
            array_id, matrix * 1e6, high_above_uS, low_below_uS, dead_line_fraction
        )
        arrays.append(Array(array_id, matrix.shape[0], matrix.shape[1]))
        defects += found_defects
        logger.info("%s: array %d, %d defect entries", label, array_id, len(found_defects))
    chip = Chip(
        arrays=tuple(arrays),
        defects=tuple(defects),
        device=device,
        name=name,
        grid=is_grid(arrays),
    )
    return chip, readings
