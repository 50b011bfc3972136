"""The chip as JSON: the dict of a chip file, its text, and the canonical text its fingerprint hashes.

One layout, docs/chip-format.md's: keys in the spec's order, the device and
periphery models written out in full (but `device.programming` and
`periphery.lines` only when they are not the default), one array or defect entry per line.
The defect lines (up to a million) are formatted straight from the valid
defects' exact int, str and float fields, to the text `json.dumps` would give.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lea_compiler.chip.defect_text import PlainEntries, plain_entries_text
from lea_compiler.chip.fields import FORMAT, OPTIONAL_PERIPHERY, STUCK_HIGH, STUCK_LOW, VERSION, fields_of
from lea_compiler.chip.parts import Array, Defect, Periphery
from lea_compiler.chip.store import DefectTable
from lea_compiler.chip.variability import VARIABILITY_KEYS

if TYPE_CHECKING:
    from lea_compiler.chip.model import Chip


def _array_json(a: Array) -> dict[str, int]:
    return {"id": a.id, "rows": a.rows, "cols": a.cols}


def _defect_json(d: Defect) -> dict[str, Any]:
    out: dict[str, Any] = {"array": d.array}
    if d.row is not None:
        out["row"] = d.row
    if d.col is not None:
        out["col"] = d.col
    out["state"] = d.state
    if d.g_uS is not None:
        out["g_uS"] = d.g_uS
    return out


DEFAULT_PERIPHERY = Periphery()


def chip_to_json(chip: Chip) -> dict[str, Any]:
    """The chip as a JSON-ready dict, keys in the spec's order, models written out in full (`programming` only
    when it is not the default)."""
    out = _chip_json_head(chip)
    out["defects"] = [_defect_json(d) for d in chip.defects]
    return out


def _chip_json_head(chip: Chip) -> dict[str, Any]:
    """`chip_to_json` without the `defects` key."""
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if chip.name is not None:
        out["name"] = chip.name
    device = fields_of(chip.device)
    device["levels_uS"] = list(chip.device.levels_uS)
    programming = device.pop("programming")
    if not programming.is_default:  # a chip without it keeps the text and fingerprint it always had
        device["programming"] = programming.to_json()
    for key in VARIABILITY_KEYS:  # written only when given, for the same reason
        section = device.pop(key)
        if section is not None:
            device[key] = section.to_json()
    out["device"] = device
    periphery = fields_of(chip.periphery)
    for key in OPTIONAL_PERIPHERY:
        if periphery[key] == getattr(DEFAULT_PERIPHERY, key):  # a file without it keeps its text and fingerprint
            del periphery[key]
    if "lines" in periphery:
        periphery["lines"] = periphery["lines"].to_json()
    out["periphery"] = periphery
    if chip.grid:
        first = chip.arrays[0]
        out["arrays"] = {"count": len(chip.arrays), "rows": first.rows, "cols": first.cols}
    else:
        out["arrays"] = [_array_json(a) for a in chip.arrays]
    return out


def _defect_lines(defects: Sequence[Defect]) -> list[str]:
    """The file lines of valid defects: what `_defect_json` and `json.dumps` give.

    json.dumps writes an exact int as `int.__repr__`, a finite float as
    `float.__repr__` and these ASCII strs verbatim, which is what the
    f-strings give. A device without g_uS, by far the most common entry, is
    written in one step.
    """
    return [
        f'    {{"array": {d.array}, "row": {d.row}, "col": {d.col}, "state": "{d.state}"}}'
        if d.g_uS is None and d.row is not None and d.col is not None
        else _defect_line(d)
        for d in defects
    ]


def _defect_line(d: Defect) -> str:
    parts = [f'"array": {d.array}']
    if d.row is not None:
        parts.append(f'"row": {d.row}')
    if d.col is not None:
        parts.append(f'"col": {d.col}')
    parts.append(f'"state": "{d.state}"')
    if d.g_uS is not None:
        parts.append(f'"g_uS": {d.g_uS!r}')
    return "    {" + ", ".join(parts) + "}"


def chip_to_text(chip: Chip) -> str:
    """The chip file's text: 2-space indented JSON, one array or defect entry per line.

    Deterministic: the same chip always gives the same text.
    """

    def leaf(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))

    obj: dict[str, Any] = _chip_json_head(chip)
    obj["defects"] = chip.defects
    lines = ["{"]
    for n, (key, value) in enumerate(obj.items()):
        comma = "," if n < len(obj) - 1 else ""
        if isinstance(value, dict) and key in ("device", "periphery"):
            inner = [f"    {leaf(k)}: {leaf(v)}" for k, v in value.items()]
            lines += [f"  {leaf(key)}: {{", ",\n".join(inner), f"  }}{comma}"]
        elif key == "defects" and value:
            lines += [f"  {leaf(key)}: [", ",\n".join(_defect_lines(value)), f"  ]{comma}"]
        elif isinstance(value, list) and value:
            inner = [f"    {leaf(item)}" for item in value]
            lines += [f"  {leaf(key)}: [", ",\n".join(inner), f"  ]{comma}"]
        else:
            lines.append(f"  {leaf(key)}: {leaf(value)}{comma}")  # an empty tuple of defects is []
    return "\n".join(lines) + "\n}\n"


def _canonical_defects(table: DefectTable, arrays: Sequence[Array]) -> bytes:
    """The defects' part of the canonical text: their `_canonical_defect_texts`, comma separated, UTF-8; written
    in bulk (defect_text.py) when every entry is a single device without g_uS, as nearly every entry is."""
    if ((table.row >= 0) & (table.col >= 0) & np.isnan(table.g_uS)).all():
        ids = np.array([a.id for a in arrays], dtype=np.int64)[table.pos]
        return plain_entries_text(PlainEntries(ids, table.row, table.col, table.high), canonical=True)
    return ",".join(_canonical_defect_texts(table, arrays)).encode("utf-8")


def _canonical_defect_texts(table: DefectTable, arrays: Sequence[Array]) -> list[str]:
    """Each defect of a valid chip as `json.dumps(_defect_json(d), sort_keys=True, separators=(",", ":"))`
    gives it, formatted straight from the chip's table (`store.DefectTable`, in the defects' order), so that
    fingerprinting a loaded chip needs no `Defect` objects (see `model._Defects`)."""
    ids = np.array([a.id for a in arrays], dtype=np.int64)[table.pos].tolist()
    states = list(map((STUCK_LOW, STUCK_HIGH).__getitem__, table.high.tolist()))
    plain = ((table.row >= 0) & (table.col >= 0) & np.isnan(table.g_uS)).tolist()
    return [
        f'{{"array":{a},"col":{c},"row":{r},"state":"{s}"}}' if p else _canonical_defect_text(a, r, c, s, g)
        for a, r, c, s, g, p in zip(ids, table.row.tolist(), table.col.tolist(), states, table.g_uS.tolist(),
                                    plain, strict=True)
    ]


def _canonical_defect_text(array: int, row: int, col: int, state: str, g_uS: float) -> str:
    """One entry of `_canonical_defect_texts`: -1 for an absent row or col, NaN for no g_uS (the table's)."""
    parts = [f'"array":{array}']
    if col >= 0:
        parts.append(f'"col":{col}')
    if not math.isnan(g_uS):
        parts.append(f'"g_uS":{g_uS!r}')
    if row >= 0:
        parts.append(f'"row":{row}')
    parts.append(f'"state":"{state}"')
    return "{" + ",".join(parts) + "}"


def fingerprint(chip: Chip, table: DefectTable) -> str:
    """SHA-256 (hex) of the chip's canonical JSON form (see `Chip.fingerprint`); `table` is its defects'.

    The canonical form is `chip_to_json` without `name` and with `arrays`
    always a list, serialised with sorted keys and no whitespace; the
    defects' part is formatted in bulk to the same text.
    """
    obj = _chip_json_head(chip)
    obj.pop("name", None)
    obj["arrays"] = [_array_json(a) for a in chip.arrays]
    obj["defects"] = []
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    head, tail = text.split('"defects":[]')  # the only string values are keys and FORMAT
    digest = hashlib.sha256(head.encode("utf-8"))
    digest.update(b'"defects":[')
    digest.update(_canonical_defects(table, chip.arrays))
    digest.update(b"]")
    digest.update(tail.encode("utf-8"))
    return digest.hexdigest()
