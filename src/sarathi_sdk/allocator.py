"""Giving the C allocator's free pages back to the system after a load's temporaries.

glibc's malloc keeps memory freed in small pieces for reuse instead of returning it. Loading leaves a
lot of it: the Rust tokenizer library parses a whole `tokenizer.json` into a JSON tree, builds its
tables from it and drops the tree, and of the 31 MB that left resident for the default model's
tokenizer, 16 MB were such free pages (2026-12-07). `malloc_trim(0)` hands them back, so the model
loaded next does not sit on top of them. The engine calls `release_free_memory` after the tokenizer and
after the backend are built; it does nothing where there is no glibc (macOS, Windows, musl).

Imports only the standard library.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable
from typing import Any


@functools.cache
def _malloc_trim() -> Callable[[int], Any] | None:
    """glibc's `malloc_trim`, looked up among the process's own symbols, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        process = ctypes.CDLL(None)
    except OSError:
        return None
    return getattr(process, "malloc_trim", None)


def release_free_memory() -> None:
    """Return the C heap's free pages to the system (every thread's arena); a no-op without glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
