"""Argument checks shared by the Python API: a bad argument is an
`InputError` naming it, never a bare TypeError or OverflowError from the
extension's conversions. The bounds themselves are the Rust core's
(``_native.MAX_*``), which checks them again: one set of bounds for every shell."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Optional

from fruits.errors import InputError


def count(name: str, value: Any, lo: int, hi: int) -> int:
    """`value` as an int in ``lo..=hi``, or InputError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise InputError(f"{name} must be from {lo} to {hi}, got {value}")
    return value


def optional_count(name: str, value: Any, lo: int, hi: int) -> Optional[int]:
    """As `count`, letting None through (the default applies)."""
    return None if value is None else count(name, value, lo, hi)


def positive(name: str, value: Any, hi: float = math.inf) -> float:
    """`value` as a finite float in ``(0, hi]``, or InputError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and 0 < value <= hi):
        raise InputError(f"{name} must be above 0 and at most {hi}, got {value}")
    return value


def path(name: str, value: Any) -> str:
    """`value` as a path string (str or os.PathLike), or InputError naming `name`."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise InputError(f"{name} holds bytes: give paths as str (bytes are a photo's content)")
    if not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{name} holds {value!r} ({type(value).__name__}): give paths as str")
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        raise InputError(f"{name} holds an empty or non-text path: {value!r}")
    return text
