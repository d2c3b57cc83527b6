"""Busy cores: one spinning process per core beside a measurement, the contended mode of `bench.cpu --isa`.

A server shares its CPU with other work. How much of its decode rate an engine keeps then depends on
how its threads wait for each other: an OpenMP team that spins at every barrier loses whole time
slices to a busy neighbour, one that sleeps loses less. llama.cpp gets the same neighbours, so the
two loaded/quiet ratios say whose threads cope better. The busy processes are plain Python loops (no
memory traffic: they take cores, not bandwidth), started before a measurement and killed after it.

Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

SETTLE_S = 0.5
"""Seconds the busy processes get to start spinning before the measurement begins."""


@contextlib.contextmanager
def busy_cores(count: int | None = None) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` (default: one per core) processes spinning for the duration of the `with` block."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range((os.cpu_count() or 1) if count is None else count):
            procs.append(subprocess.Popen([sys.executable, "-I", "-c", "while True: pass"]))
        time.sleep(SETTLE_S)
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=30)
