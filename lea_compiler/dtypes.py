"""The one rule for the dtypes of data fed to a model (`x`) and of labels (`y`).

Data files (`leac simulate --data`, `leac compile --calibrate`), arrays given
to the Python API, and feeds given to the interpreter all go through
`convert`, so the rule is the same everywhere:

- Integer and floating-point arrays (numpy kinds `i`, `u`, `f`: int8 .. int64,
  uint8 .. uint64, float16 .. float64) are converted to the dtype the model
  takes (labels: to int64) when every value fits it:
  - to a floating-point type, each value is rounded to the nearest value of
    that type (float64 -> float32 loses digits, as any cast does), but a
    finite value beyond the type's range (1e40 for float32) is refused
    rather than turned into infinity. NaN and infinity pass through here;
    data files refuse them separately (`datasets.load_data`).
  - to an integer type, every value must be a whole number within the type's
    range (1.0 -> 1 is fine; 1.5, NaN, or 300 for uint8 are refused), so a
    conversion never truncates or wraps around.
- Every other dtype is refused: bool (give 0/1 as numbers if that is what is
  meant), complex, strings, bytes, Python objects, dates and structured arrays.
- An array already of the target dtype is used as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lea_compiler.errors import BadDataError

CONVERTIBLE_KINDS = "iuf"
"""numpy dtype kinds leac converts: signed and unsigned integers and floating point."""


def _where(array: np.ndarray, bad: np.ndarray) -> str:
    """`[i, j] = value` of the first True in `bad` (for messages)."""
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = array[index].item()
    shown = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f"[{', '.join(map(str, index))}] = {shown}" if array.ndim else f" = {shown}"


def convert(array: Any, dtype: np.dtype[Any] | type | str, what: str) -> np.ndarray:
    """`array` as `dtype` by the rule in this module's docstring.

    Args:
        array: The data (anything `np.asarray` takes).
        dtype: The dtype the model takes (or int64 for labels).
        what: How messages name the array, e.g. "input x" or "y".

    Raises:
        BadDataError: a dtype that is not converted, or a value the target dtype cannot hold.
    """
    array = np.asarray(array)
    target = np.dtype(dtype)
    if array.dtype == target:
        return array
    if array.dtype.kind not in CONVERTIBLE_KINDS:
        raise BadDataError(f"{what}: got {array.dtype} data, which leac does not convert to {target} (it "
                           "converts integer and floating-point data only)")
    if target.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            converted = array.astype(target)
        overflow = np.isinf(converted) & (np.isfinite(array) if array.dtype.kind == "f" else True)
        if np.any(overflow):
            raise BadDataError(f"{what}{_where(array, overflow)} is out of {target}'s range "
                               f"(+-{float(np.finfo(target).max):.4g}); scale the data down")
        return converted
    if target.kind in "iu":
        info = np.iinfo(target)
        if array.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                fraction = ~np.isfinite(array) | (np.trunc(array) != array)
                # the bounds as floats are exact (powers of two), so "< max + 1" is exact even for int64
                outside = (array < float(info.min)) | (array >= float(info.max + 1))
        else:
            fraction = np.zeros(array.shape, bool)
            outside = (array < info.min) | (array > info.max)
        if np.any(fraction):
            raise BadDataError(f"{what}{_where(array, fraction)} is not a whole number, so it does not convert "
                               f"to {target}")
        if np.any(outside):
            raise BadDataError(f"{what}{_where(array, outside)} is out of {target}'s range ({info.min} to "
                               f"{info.max})")
        return array.astype(target)
    raise BadDataError(f"{what}: the model takes {target}, which leac does not feed")
