"""Checks of a Python API call's arguments, so that a wrong call is a `UsageError` naming the argument.

Without them a wrong type fails deep inside (`range()` of a float batch size, `os.fspath(None)`), as a bare
Python error that reads like a bug in leac. Each check names the argument, says what it must be and shows what
was given. The integer and number checks return plain Python values: a numpy scalar is taken wherever a Python
one is (`operator.index`), and never reaches a report, which `json` must write. A bool is never a number.
"""

from __future__ import annotations

import numbers
import operator
import os
from collections.abc import Callable, Sequence
from typing import SupportsIndex

import numpy as np

from lea_compiler.errors import UsageError

PathLike = str | os.PathLike[str]

_SHOWN_CHARS = 60
"""At most this much of a given value's repr is quoted in a message."""


def shown(value: object) -> str:
    """`value` for a message: the repr of a plain scalar (cut at `_SHOWN_CHARS`), else "a <type name>"."""
    if value is None or isinstance(value, (bool, numbers.Number, str, np.generic)):
        text = repr(value.item() if isinstance(value, np.generic) else value)
        return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def check_kind(value: object, name: str, kinds: type | tuple[type, ...], what: str, *,
               optional: bool = False) -> None:
    """Refuse `value` unless it is an instance of `kinds` (or None when `optional`); `what` says what it must be.

    Raises:
        UsageError: "`name` must be `what`[ or None], got ...".
    """
    if (optional and value is None) or isinstance(value, kinds):
        return
    raise UsageError(f"{name} must be {what}{' or None' if optional else ''}, got {shown(value)}")


def check_path(value: object, name: str, *, or_a: type | None = None, optional: bool = False) -> None:
    """Refuse `value` unless it is a file path (str or os.PathLike), an instance of `or_a` if given, or None
    when `optional`. An open file is not a path: leac opens its files itself.

    Raises:
        UsageError: "`name` must be a file path (str or os.PathLike)[, a `or_a`][ or None], got ...".
    """
    if (optional and value is None) or isinstance(value, (str, os.PathLike, *([] if or_a is None else [or_a]))):
        return
    kinds = ["a file path (str or os.PathLike)", *([] if or_a is None else [f"a {or_a.__name__}"]),
             *(["None"] if optional else [])]
    what = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
    raise UsageError(f"{name} must be {what}, got {shown(value)}")


def check_callable(value: object, name: str) -> None:
    """Refuse `value` unless it is None or callable (a callback).

    Raises:
        UsageError: naming `name`.
    """
    if value is not None and not callable(value):
        raise UsageError(f"{name} must be a function or None, got {shown(value)}")


def int_argument(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    """`value` as a Python int, if it is an integer (numpy's too, not a bool) from `minimum` (to `maximum`).

    Raises:
        UsageError: "`name` must be an integer >= `minimum`, got ..." (or "in `minimum`..`maximum`").
    """
    if isinstance(value, SupportsIndex) and not isinstance(value, (bool, np.bool_)):
        try:
            number = operator.index(value)
        except TypeError:  # a 0-d array of floats has __index__, and refuses it
            pass
        else:
            if minimum <= number and (maximum is None or number <= maximum):
                return number
    bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
    raise UsageError(f"{name} must be an integer {bounds}, got {shown(value)}")


def number_argument(value: object, name: str) -> float:
    """`value` as a Python float, if it is a real number (numpy's too, not a bool); its range is the caller's.

    Raises:
        UsageError: "`name` must be a number, got ...".
    """
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    raise UsageError(f"{name} must be a number, got {shown(value)}")


def bool_argument(value: object, name: str) -> bool:
    """`value` as a Python bool, if it is one (numpy's too): an on/off switch given "no" or 0 is refused, not
    read as true or false.

    Raises:
        UsageError: "`name` must be True or False, got ...".
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise UsageError(f"{name} must be True or False, got {shown(value)}")


def path_list(value: object, name: str,
              folder_files: Callable[[PathLike], Sequence[PathLike]] | None = None) -> list[PathLike]:
    """The files `value` names: one path, a list (or tuple) of paths, or with `folder_files` a folder (its files,
    as `folder_files` lists them).

    Raises:
        UsageError: `value` is none of these (an item of a list is named `name[i]`), and what `folder_files`
            raises.
    """
    if isinstance(value, (str, os.PathLike)):
        if folder_files is not None and os.path.isdir(value):
            return list(folder_files(value))
        return [value]
    what = "a file path (str or os.PathLike)" + (", a folder" if folder_files is not None else "")
    check_kind(value, name, (list, tuple), f"{what} or a list of file paths")
    assert isinstance(value, (list, tuple))
    for index, item in enumerate(value):
        check_path(item, f"{name}[{index}]")
    return list(value)


def check_keywords(given: Sequence[str], valid: Sequence[str], where: str) -> None:
    """Refuse keyword arguments that are not among `valid` (in the order given), naming them and listing the
    valid ones.

    Raises:
        UsageError: "`where`: unknown keyword(s) ...; the valid keywords are ...".
    """
    unknown = [name for name in given if name not in valid]
    if unknown:
        raise UsageError(f"{where}: unknown keyword{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; the valid keywords are {', '.join(valid)}")
