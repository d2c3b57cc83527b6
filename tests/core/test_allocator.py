"""`release_free_memory` gives freed heap pages back: small blocks malloc'd and freed stay resident
until it runs."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import pytest

from sarathi_sdk.allocator import _malloc_trim, release_free_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(_malloc_trim() is None, reason="no glibc malloc_trim here")
def test_freed_small_blocks_go_back_to_the_system():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    release_free_memory()  # earlier tests' freed blocks would be reused without growing the resident set
    start = _rss_mb()
    blocks = []
    for _ in range(96 * 1024):  # 96 MB in 1 KB blocks: below the mmap threshold, so from the heap
        block = libc.malloc(1024)
        ctypes.memset(block, 1, 1024)  # touched, so resident
        blocks.append(block)
    keep = blocks.pop()  # the last one, at the heap's top, stays: free() alone cannot shrink the heap
    for block in blocks:
        libc.free(block)
    before = _rss_mb()
    release_free_memory()
    after = _rss_mb()
    libc.free(keep)
    assert before - start > 80, (start, before)  # free() kept the pages
    assert before - after > 48, (before, after)


def test_it_is_a_no_op_without_glibc(monkeypatch):
    _malloc_trim.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:
        assert _malloc_trim() is None
        release_free_memory()
    finally:
        _malloc_trim.cache_clear()
