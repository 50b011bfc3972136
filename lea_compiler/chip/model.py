"""The chip: its crossbar arrays, their defects, and the device and periphery models.

Every `Chip` object is valid: its constructor runs the same checks as the file
loader (validate.py), so code downstream (placement, simulation) never meets
an out-of-range defect or two contradictory defects on one device. A valid
chip keeps its defects as numpy columns too (store.py), from which its
queries are answered: stuck maps, defect counts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from lea_compiler.chip.forms import fingerprint
from lea_compiler.chip.parts import Array, Defect, DeviceModel, Periphery
from lea_compiler.chip.store import DefectTable, MapPlan, map_plan, table_defects
from lea_compiler.chip.validate import checked_table
from lea_compiler.errors import UsageError
from lea_compiler.geometry import find_sorted, ranges, region_starts


class _Defects:
    """`Chip.defects`, a field that a chip read from a file fills on first use.

    Loading a chip validates its defects in bulk as numpy columns (store.py)
    and keeps the table; the `Defect` objects, one Python object per entry
    (0.1 s for 84,000), are made from the table only when something reads
    `defects` (saving, placement, `chip show`), not when a Program is
    loaded to be simulated, which needs only the table's stuck maps and the
    fingerprint. A data descriptor, so that the dataclass's `__init__`,
    `__eq__`, `__hash__` and `__repr__` see the field as any other.
    """

    def __get__(self, chip: Chip | None, owner: type | None = None) -> tuple[Defect, ...]:
        if chip is None:
            return ()  # the class attribute: the field's default
        held = chip.__dict__
        if "defects" not in held:
            held["defects"] = tuple(table_defects(chip._table, chip.arrays))
        defects: tuple[Defect, ...] = held["defects"]
        return defects

    def __set__(self, chip: Chip, value: tuple[Defect, ...]) -> None:
        chip.__dict__["defects"] = value


@dataclass(frozen=True)
class Chip:
    """A chip: its arrays, their defects, and the device and periphery models.

    Constructing a Chip validates it (the same rules as the file loader), so
    every Chip in leac is a valid one. Equality compares every field but `file_name`.

    Attributes:
        arrays: The physical crossbar arrays, in file order.
        defects: The stuck devices and lines, in file order.
        device: The device model.
        periphery: The DAC/ADC, timing and energy model.
        name: Free text echoed in reports.
        grid: True if the file gave `arrays` as a uniform grid, so that saving
            writes it back the same way.
        file_name: The name of the file the chip was read from (`load_chip`),
            or None; not part of the chip (not saved, not compared, not in the
            fingerprint). Reports show it for a chip without a name
            (`display_name`).
    """

    arrays: tuple[Array, ...]
    defects: _Defects = _Defects()
    device: DeviceModel = DeviceModel()
    periphery: Periphery = Periphery()
    name: str | None = None
    grid: bool = False
    file_name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("arrays", "defects"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        self.__dict__["_table"] = checked_table(self)

    @classmethod
    def trusted(
        cls,
        arrays: tuple[Array, ...],
        defects: tuple[Defect, ...] | None,
        device: DeviceModel,
        periphery: Periphery,
        name: str | None,
        grid: bool,
        table: DefectTable,
    ) -> Chip:
        """A Chip from parts already validated together (`table` is their defects' table), without re-checking.

        For the loader and `synth_chip`, which check (or make) a million defects in bulk and would
        otherwise check them twice. `defects` None: made from the table when first read (`_Defects`).
        """
        chip = object.__new__(cls)
        for key, value in (("arrays", arrays), ("defects", defects), ("device", device),
                           ("periphery", periphery), ("name", name), ("grid", grid)):  # fmt: skip
            if value is not None or key != "defects":
                object.__setattr__(chip, key, value)
        chip.__dict__["_table"] = table
        return chip

    @cached_property
    def _table(self) -> DefectTable:
        # Normally set by the constructor; computed here only for an object made otherwise.
        return checked_table(self)

    @cached_property
    def _arrays_by_id(self) -> dict[int, Array]:
        return {a.id: a for a in self.arrays}

    @cached_property
    def _positions(self) -> dict[int, int]:
        return {a.id: p for p, a in enumerate(self.arrays)}

    @cached_property
    def _id_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The arrays' ids in ascending order, and each one's position in `arrays`."""
        ids = np.array([a.id for a in self.arrays], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        return ids[order], order

    def array_positions(self, array_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Each of the arrays `array_ids`' position in `arrays` (int64), found at once (thousands of 25 x 25 arrays).

        Raises:
            UsageError: the chip has no such array (`array`'s message).
        """
        ids, order = self._id_table
        wanted = np.asarray(array_ids).reshape(-1)
        if wanted.dtype.kind not in "iu" or (wanted.dtype.kind == "u" and wanted.size
                                             and int(wanted.max()) > np.iinfo(np.int64).max):
            # ids that are not all int64s: each through `array`, which refuses or finds it as a dict look-up does
            return np.array([self._positions[self.array(v).id] for v in wanted.tolist()], dtype=np.int64)
        wanted = wanted.astype(np.int64, copy=False)
        at, known = find_sorted(ids, wanted)
        if not known.all():
            self.array(int(wanted[np.argmin(known)]))  # raises, naming it
        return order[at]

    def array_shapes(self, array_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n, 2) int64: each of the arrays `array_ids`' rows and cols.

        Raises:
            UsageError: the chip has no such array.
        """
        return self._shapes[self.array_positions(array_ids)]

    @cached_property
    def _map_plan(self) -> MapPlan:
        return map_plan(self._table, self.arrays, self.device)

    def array(self, array_id: int) -> Array:
        """The array with id `array_id`.

        Raises:
            UsageError: the chip has no such array.
        """
        try:
            return self._arrays_by_id[array_id]
        except (KeyError, TypeError):
            ids = sorted(self._arrays_by_id)
            raise UsageError(
                f"{self._label()} has no array {array_id!r} (its array ids: {_id_ranges(ids)})"
            ) from None

    @property
    def device_count(self) -> int:
        """Total number of devices over all arrays."""
        return sum(a.devices for a in self.arrays)

    def stuck_map(self, array_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The stuck devices of one array as two rows x cols matrices.

        Line defects cover their whole row or column and are applied first, in
        file order; device defects are applied after them, in file order. So
        where one device is marked more than once (always with the same state
        in a valid chip), a device-level entry beats a line entry and otherwise
        the later entry wins. A defect without `g_uS` takes the device model's
        `stuck_high_uS` / `stuck_low_uS`.

        Args:
            array_id: Id of the array.

        Returns:
            `(state, g_uS)`: an int8 matrix (0 healthy, 1 stuck high, -1 stuck
            low) and a float64 matrix of each stuck device's conductance in uS
            (NaN where healthy). Both are fresh arrays the caller may modify.

        Raises:
            UsageError: the chip has no such array.
        """
        arr = self.array(array_id)
        plan = self._map_plan
        state = np.zeros((arr.rows, arr.cols), dtype=np.int8)
        g_uS = np.full((arr.rows, arr.cols), np.nan, dtype=np.float64)
        p = self._positions[arr.id]
        start, end = plan.line_bounds[p], plan.line_bounds[p + 1]
        if end > start:  # lines first, in file order
            for row, col, code, value in zip(
                plan.line_row[start:end].tolist(),
                plan.line_col[start:end].tolist(),
                plan.line_code[start:end].tolist(),
                plan.line_g[start:end].tolist(),
                strict=True,
            ):
                if col < 0:
                    state[row, :] = code
                    g_uS[row, :] = value
                else:
                    state[:, col] = code
                    g_uS[:, col] = value
        start, end = plan.device_bounds[p], plan.device_bounds[p + 1]
        if end > start:  # then the last entry of each device
            flat = plan.device_flat[start:end]
            state.flat[flat] = plan.device_code[start:end]
            g_uS.flat[flat] = plan.device_g[start:end]
        return state, g_uS

    def stuck_maps(self, array_ids: Iterable[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """`stuck_map` of many arrays at once, by id: the same matrices, views of one `stuck_flat` pass (an array
        with line defects goes through `stuck_map`), for a caller that needs thousands of small arrays' maps (the
        simulator on 25 x 25 arrays). Each map is a view of a buffer no one else holds.

        Raises:
            UsageError: the chip has no such array.
        """
        ids = list(dict.fromkeys(array_ids))
        state, g_uS = self.stuck_flat(ids)
        maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        at = 0
        for array_id in ids:
            arr = self._arrays_by_id[array_id]
            size = arr.rows * arr.cols
            maps[array_id] = (state[at:at + size].reshape(arr.rows, arr.cols),
                              g_uS[at:at + size].reshape(arr.rows, arr.cols))
            at += size
        return maps

    def stuck_flat(self, array_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The `stuck_map`s of the arrays `array_ids` laid end to end, each flattened row by row, in the order
        given: `(state, g_uS)`, two fresh flat arrays the caller may modify. One vectorised pass over the device
        entries of every array asked for, whatever their shapes (`stuck_devices`): the simulator programs
        thousands of regions at once from these.

        Raises:
            UsageError: the chip has no such array, or `array_ids` names one twice.
        """
        which, row, col, code, g = self.stuck_devices(array_ids)
        shapes = self.array_shapes(array_ids)
        sizes = shapes[:, 0] * shapes[:, 1]
        offsets = region_starts(shapes[:, 0], shapes[:, 1])
        total = int(sizes.sum())
        state = np.zeros(total, dtype=np.int8)
        g_uS = np.full(total, np.nan, dtype=np.float64)
        at = offsets[which] + row * shapes[which, 1] + col
        state[at] = code
        g_uS[at] = g
        return state, g_uS

    @cached_property
    def _shapes(self) -> np.ndarray:
        """(arrays, 2) int64: each array's rows and cols, in the order of `arrays`."""
        return np.array([(a.rows, a.cols) for a in self.arrays], dtype=np.int64).reshape(-1, 2)

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The map plan's `device_bounds` and `line_bounds` as int64 vectors (thousands of arrays: made once)."""
        plan = self._map_plan
        return np.asarray(plan.device_bounds, dtype=np.int64), np.asarray(plan.line_bounds, dtype=np.int64)

    def stuck_devices(self, array_ids: Sequence[int] | np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every stuck device of the arrays `array_ids`, as `stuck_map` finds them, without a map of every device:
        `(which, row, col, state, g_uS)`, one entry per stuck device, array after array in the order given and
        row by row within one: the position in `array_ids` of its array, its row and column, its state (1 stuck
        high, -1 stuck low) and its conductance (uS). Proportional to the defects, not to the arrays' devices (an
        array with line defects goes through its `stuck_map`).

        Raises:
            UsageError: the chip has no such array, or `array_ids` names one twice.
        """
        plan = self._map_plan
        positions = self.array_positions(array_ids)
        if np.any(np.diff(np.sort(positions)) == 0):
            raise UsageError("stuck_flat: an array id is given twice")
        device_bounds, line_bounds = self._bounds
        starts = device_bounds[positions]
        counts = device_bounds[positions + 1] - starts
        entry = ranges(starts, counts)
        # the last entry of each device (none twice), by flat index within each array (`map_plan` sorts them)
        which = np.repeat(np.arange(positions.size, dtype=np.int64), counts)
        row, col = np.divmod(plan.device_flat[entry], self._shapes[positions[which], 1])
        code, g = plan.device_code[entry], plan.device_g[entry]
        lined = np.flatnonzero(line_bounds[positions + 1] > line_bounds[positions]).tolist()
        if not lined:
            return which, row, col, code, g
        parts: list[tuple[np.ndarray, ...]] = []
        done = 0
        for index in lined:  # the arrays before it from the plan, then its map (lines first, then the devices)
            before = int(np.searchsorted(which, index))
            parts.append((which[done:before], row[done:before], col[done:before], code[done:before], g[done:before]))
            whole_state, whole_g = self.stuck_map(self.arrays[int(positions[index])].id)
            at_row, at_col = np.nonzero(whole_state)
            parts.append((np.full(at_row.size, index, dtype=np.int64), at_row, at_col, whole_state[at_row, at_col],
                          whole_g[at_row, at_col]))
            done = int(np.searchsorted(which, index, side="right"))
        parts.append((which[done:], row[done:], col[done:], code[done:], g[done:]))
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]

    @cached_property
    def _counts_by_array(self) -> dict[int, dict[str, int]]:
        # The chip is immutable, so the counts are computed once, on first use.
        plan = self._map_plan
        counts: dict[int, dict[str, int]] = {}
        line_bounds = plan.line_bounds
        for p, (arr, high, low, dead_rows, dead_cols) in enumerate(
            zip(
                self.arrays,
                plan.device_high.tolist(),
                plan.device_low.tolist(),
                plan.dead_rows.tolist(),
                plan.dead_cols.tolist(),
                strict=True,
            )
        ):
            if line_bounds[p + 1] > line_bounds[p]:  # lines: count the map
                state, _ = self.stuck_map(arr.id)
                high = int(np.count_nonzero(state == 1))
                low = int(np.count_nonzero(state == -1))
            counts[arr.id] = {
                "stuck_high": high,
                "stuck_low": low,
                "dead_rows": dead_rows,
                "dead_cols": dead_cols,
                "healthy": arr.devices - high - low,
            }
        return counts

    def defect_counts(self, array_id: int | None = None) -> dict[str, int]:
        """Defect counts of the whole chip, or of one array.

        Args:
            array_id: Count only this array; None counts the whole chip.

        Returns:
            A new dict with `stuck_high` and `stuck_low` (devices in that
            state, whether marked singly or by a line), `dead_rows` and
            `dead_cols` (distinct rows / columns marked as a whole line, in
            either state) and `healthy` (all other devices). stuck_high +
            stuck_low + healthy is the number of devices counted.

        Raises:
            UsageError: the chip has no array `array_id`.
        """
        if array_id is not None:
            return dict(self._counts_by_array[self.array(array_id).id])
        total = dict.fromkeys(("stuck_high", "stuck_low", "dead_rows", "dead_cols", "healthy"), 0)
        for counts in self._counts_by_array.values():
            for key, value in counts.items():
                total[key] += value
        return total

    def summary(self) -> str:
        """One line for people: name, arrays, devices and defect counts."""
        sizes = {(a.rows, a.cols) for a in self.arrays}
        if len(sizes) == 1:
            rows, cols = next(iter(sizes))
            shape = f"{rows} x {cols}"
        else:
            shape = "mixed sizes"
        n = len(self.arrays)
        total = self.device_count
        c = self.defect_counts()
        stuck = c["stuck_high"] + c["stuck_low"]
        share = 100.0 * stuck / total
        return (
            f"{self._label()}: {n} {'array' if n == 1 else 'arrays'} of {shape}, "
            f"{total} devices, {c['stuck_high']} stuck high, {c['stuck_low']} stuck low "
            f"({share:.2f}% stuck), {c['dead_rows']} dead rows, {c['dead_cols']} dead columns, "
            f"{c['healthy']} healthy"
        )

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the chip's canonical JSON form, so a program can name its chip.

        The canonical form is `chip_to_json` without the free-text `name` and
        with `arrays` always as an explicit list, serialised with sorted keys
        and no whitespace: renaming a chip or writing its arrays as a grid
        instead of a list does not change what the chip is.
        """
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        return fingerprint(self, self._table)

    @property
    def display_name(self) -> str | None:
        """What reports call the chip: its `name`, else the name of the file it was read from, else None.

        A chip made by `leac chip synth` or `leac chip import` without `--name` has no name; its reports
        then say `chip 'c.json'`, not `chip None`. The one place of this fallback.
        """
        return self.name if self.name is not None else self.file_name

    def with_file_name(self, file_name: str | None) -> Chip:
        """This chip, remembering `file_name` as the file it came from (the same object when already so)."""
        if file_name == self.file_name:
            return self
        chip = copy.copy(self)
        object.__setattr__(chip, "file_name", file_name)
        return chip

    def _label(self) -> str:  # the name only: the file's name is beside it wherever a summary is shown
        return f"chip {self.name!r}" if self.name is not None else "chip"


def _id_ranges(ids: Sequence[int]) -> str:
    """Sorted ids as compact ranges: [0, 1, 2, 5] -> '0..2, 5'."""
    parts: list[str] = []
    start = prev = None
    for i in [*ids, None]:
        if start is not None and (i is None or i != prev + 1):  # type: ignore[operator]
            parts.append(str(start) if start == prev else f"{start}..{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts) or "none"
