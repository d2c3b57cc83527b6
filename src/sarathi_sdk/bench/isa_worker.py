"""The parent's handle on one ISA level's worker process (`isa_child`): start it, ask, close.

The CPU kernels are one module per process, chosen by environment variables at their first use, so
each level `bench.cpu --isa` measures lives in a process of its own, started here with the model
plugin's variables set: `SARATHI_CPU_ARCH=<level>` for a kernel build, `SARATHI_CPU_KERNELS=0` for the
torch path. The worker says which build its backend really runs once its engine is up: a level this
CPU lacks (or whose build failed) falls back to the torch path, and shows as a different
`kernel_variant` instead of passing for the level.

One command a line on the worker's stdin, one result line (`RESULT_PREFIX` + JSON) on its stdout; any
other stdout line (a compiler's log) is passed on to stderr. Every wait has a deadline. POSIX only
(`select` on the pipe). Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

RESULT_PREFIX = "sarathi-isa-result "
ARCH_ENV, KERNELS_ENV = "SARATHI_CPU_ARCH", "SARATHI_CPU_KERNELS"
"""The model plugin's variables (`sarathi_models.cpu_isa`, `cpu_ops`; the core cannot import them)."""
TORCH = "torch"
"""The level name of the plain torch path: the kernels turned off."""
START_TIMEOUT_S = 1800.0
"""A first start compiles the level's kernels: 1-2 minutes alone on 2 cores, more beside other builds."""
COMMAND_TIMEOUT_S = 1200.0
CHILD = (sys.executable, "-m", "sarathi_sdk.bench.isa_child")
"""The worker's command line, its model appended (a test gives a stand-in)."""


def level_env(level: str) -> dict[str, str]:
    """This process's environment with the kernel variables set for `level` (and only for it)."""
    env = {k: v for k, v in os.environ.items() if k not in (ARCH_ENV, KERNELS_ENV)}
    if level == TORCH:
        env[KERNELS_ENV] = "0"
    else:
        env[ARCH_ENV] = level
    return env


class LevelWorker:
    """A worker process with an engine on `level`'s kernels. `start` returns at once; `ready` waits
    for the engine and returns the kernel build it runs, so several workers build at the same time."""

    def __init__(self, level: str, model: str, child: Sequence[str] = CHILD) -> None:
        self.level = level
        self._buffer = b""
        self._proc = subprocess.Popen([*child, model], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      env=level_env(level))

    def ready(self) -> str:
        """The `kernel_variant` of the worker's backend, once its engine has started."""
        return str(self._read(START_TIMEOUT_S)["kernel_variant"])

    def ask(self, command: str, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        """Send `command` ("decode", "greedy"); the worker's result."""
        stdin = self._proc.stdin
        assert stdin is not None  # opened with a pipe
        try:
            stdin.write(command.encode() + b"\n")
            stdin.flush()
        except BrokenPipeError as exc:
            raise RuntimeError(f"the {self.level} worker exited (status {self._proc.wait()})") from exc
        return self._read(timeout)

    def pause(self) -> None:
        """Stop the worker's process (SIGSTOP) until `resume`: a stopped process takes no CPU time."""
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """End of input: the worker closes its engine and exits; killed if it has not within 60 s."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=30)

    def _read(self, timeout: float) -> dict[str, Any]:
        stdout = self._proc.stdout
        assert stdout is not None  # opened with a pipe
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, _, self._buffer = self._buffer.partition(b"\n")
                text = line.decode(errors="replace")
                if not text.startswith(RESULT_PREFIX):
                    print(text, file=sys.stderr)
                    continue
                result: dict[str, Any] = json.loads(text[len(RESULT_PREFIX):])
                if "error" in result:
                    raise RuntimeError(f"the {self.level} worker: {result['error']}")
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._proc.kill()
                raise TimeoutError(f"the {self.level} worker gave no result within {timeout:.0f} s")
            if select.select([stdout], [], [], remaining)[0]:
                chunk = os.read(stdout.fileno(), 1 << 16)
                if not chunk:
                    raise RuntimeError(f"the {self.level} worker exited (status {self._proc.wait()}); "
                                       "its stderr above says why")
                self._buffer += chunk



@contextlib.contextmanager
def paused(workers: Iterable[LevelWorker]) -> Iterator[None]:
    """`workers` stopped for the duration of the block. Idle engines in other processes still cost a
    measurement time (their threads, their pages in the shared caches): batch-16 decode on the avx2
    build measured 480 tok/s beside two idle workers and 650 alone (2026-12-07), so each measurement
    runs with every worker but its own stopped, and llama.cpp's with all of them stopped."""
    stopped = list(workers)
    for worker in stopped:
        worker.pause()
    try:
        yield
    finally:
        for worker in stopped:
            worker.resume()
