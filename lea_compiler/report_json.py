"""Strict JSON for every report leac prints or writes (`--json`, batch report files).

Python's `json.dumps` writes NaN and Infinity as the bare words `NaN` and
`Infinity`, which are not JSON: a strict parser (jq, JavaScript's JSON.parse,
most other languages) refuses the whole report. leac's chip validation keeps
every number it computes finite (lea_compiler.chip_limits); this is the last
line behind it: a report holding a non-finite number is an error that names
the value's path, never a report a reader cannot parse.
"""

from __future__ import annotations

import json
import math
from typing import Any

from lea_compiler.errors import LeacError


class NonFiniteReportError(LeacError):
    """A report holds NaN or Infinity, which strict JSON cannot express (exit 1: leac could not report)."""


def _non_finite_path(value: Any, path: str) -> str | None:
    """The JSON path of the first NaN or infinite float in `value`, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if (found := _non_finite_path(item, f"{path}.{key}")) is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if (found := _non_finite_path(item, f"{path}[{i}]")) is not None:
                return found
    return None


def dumps_report(report: Any, *, indent: int | None = 2, ensure_ascii: bool = True) -> str:
    """`report` as strict JSON text (no NaN, no Infinity).

    Raises:
        NonFiniteReportError: a number in the report is NaN or infinite; the message names its path.
    """
    try:
        return json.dumps(report, indent=indent, ensure_ascii=ensure_ascii, allow_nan=False)
    except ValueError as exc:
        if "JSON compliant" not in str(exc):
            raise
        path = _non_finite_path(report, "$") or "an unknown path"
        name = report.get("report") if isinstance(report, dict) else None
        what = f"the {name} report" if isinstance(name, str) else "the report"
        raise NonFiniteReportError(
            f"{what} holds a number that is not finite (NaN or Infinity) at {path}: strict JSON cannot hold "
            "it, so no report is printed; the chip's or the data's values overflow leac's arithmetic"
        ) from None
