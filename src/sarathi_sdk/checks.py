"""Type checks shared by the validated dataclasses (`EngineConfig`, `SamplingParams`) and admission.

Imports only the standard library.
"""

from __future__ import annotations

import math
from typing import TypeGuard


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (`True` is an int to Python, never a count to us). A type guard: where
    it holds, a type checker knows `value` is an int."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """An int or float that is a finite float: no NaN, no infinity, no bool, no int past float range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
