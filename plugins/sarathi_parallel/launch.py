"""Starting and ending the stage processes of one engine, and noticing when one dies.

Single node: the engine serves a TCPStore on a free port of 127.0.0.1 and starts stages 1 .. N-1 as
`python -m sarathi_parallel.worker` subprocesses, with the same environment-variable rendezvous
torchrun sets (`MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`). A fresh interpreter, not a
multiprocessing child: nothing is pickled to start it, and the application's `__main__` is never
imported again (a script without an `if __name__ == "__main__":` guard, a notebook, still work). Each
stage holds the read end of a pipe whose write end only the engine holds, so a stage exits when the
engine's process does, however it ends. Multi-node: torchrun started every rank (see `worker.main`)
and this process, rank 0, only connects.

`StageProcesses.watch` runs a thread per spawned process that calls back when it exits before
`stop()`; `stop()` waits for them to exit on their own (after STOP), then terminates, then kills, and
reaps them: no stage outlives the engine, not even as a zombie.

Imports torch and the standard library, and this package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist

from sarathi_sdk import ConfigError

from .groups import (
    LOOPBACK,
    PARENT_FD,
    SETUP_TIMEOUT,
    Groups,
    Rendezvous,
    connect_store,
    rendezvous_from_env,
    serve_store,
)

JOIN_TIMEOUT = 10.0
"""Seconds a stage gets to exit after STOP, and again after SIGTERM, before SIGKILL."""


class StageDied(RuntimeError):
    """A stage process exited while the pipeline was running."""


class StageProcesses:
    """The spawned stage processes (none under torchrun) and this process's groups."""

    def __init__(self, num_stages: int) -> None:
        self.num_stages = num_stages
        self.processes: list[subprocess.Popen[bytes]] = []
        self._parent_fds: list[int] = []
        self._stopping = threading.Event()
        found = rendezvous_from_env()
        if found is not None and found[0].world_size > 1:
            rendezvous, rank = found
            if rank != 0 or rendezvous.world_size != num_stages:
                raise ConfigError(
                    f"under torchrun the engine runs on rank 0 with pipeline_parallel_size == WORLD_SIZE; "
                    f"this is rank {rank} of {rendezvous.world_size} with pipeline_parallel_size={num_stages}"
                )
            self.groups = Groups(connect_store(rendezvous, 0), rendezvous, 0)
            return
        store, rendezvous = serve_store(num_stages)
        try:
            for rank in range(1, num_stages):
                self.processes.append(self._spawn(rendezvous, rank))
        except BaseException:
            self.stop(graceful=False)
            raise
        self.groups = self._join(store, rendezvous)

    def _spawn(self, rendezvous: Rendezvous, rank: int) -> subprocess.Popen[bytes]:
        reader, writer = os.pipe()
        self._parent_fds.append(writer)
        # where this process found the packages, in case it found them through its own sys.path
        modules = (sys.modules["sarathi_sdk"], sys.modules[__package__])
        packages = [str(Path(str(module.__file__)).resolve().parents[1]) for module in modules]
        env = dict(os.environ, MASTER_ADDR=rendezvous.host, MASTER_PORT=str(rendezvous.port),
                   WORLD_SIZE=str(rendezvous.world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                   **{PARENT_FD: str(reader), LOOPBACK: "1"})
        env["PYTHONPATH"] = os.pathsep.join([*packages, *filter(None, [os.environ.get("PYTHONPATH")])])
        try:
            return subprocess.Popen([sys.executable, "-m", "sarathi_parallel.worker"], env=env, pass_fds=(reader,),
                                    stdin=subprocess.DEVNULL)
        finally:
            os.close(reader)

    @property
    def spawned(self) -> bool:
        return bool(self.processes)

    def _join(self, store: dist.TCPStore, rendezvous: Rendezvous) -> Groups:
        """Build the groups while watching the children: one dying first fails the start at once
        instead of after the store's timeout."""
        result: list[Groups | BaseException] = []

        def connect() -> None:
            try:
                result.append(Groups(store, rendezvous, 0))
            except BaseException as exc:  # handed to the caller below
                result.append(exc)

        thread = threading.Thread(target=connect, daemon=True, name="sarathi-pipeline-connect")
        thread.start()
        while not result:
            exited = [p for p in self.processes if p.poll() is not None]
            if exited:
                self.stop(graceful=False)
                raise StageDied(f"stage process {exited[0].pid} exited with code {exited[0].returncode} "
                                "before the pipeline connected")
            thread.join(0.05)
            if not thread.is_alive() and not result:
                break
        if not result or isinstance(result[0], BaseException):
            self.stop(graceful=False)
            cause = result[0] if result else None
            raise RuntimeError(f"the pipeline's processes did not connect within {SETUP_TIMEOUT}") from cause
        return result[0]

    def watch(self, on_death: Callable[[StageDied], None]) -> None:
        """Call `on_death` (on a watcher thread) when a spawned stage exits before `stop()`."""

        def run(process: subprocess.Popen[bytes]) -> None:
            code = process.wait()
            if not self._stopping.is_set():
                on_death(StageDied(f"pipeline stage process {process.pid} died with exit code {code}"))

        for process in self.processes:
            threading.Thread(target=run, args=(process,), daemon=True, name="sarathi-stage-watch").start()

    def stop(self, graceful: bool = True) -> None:
        """Make sure every spawned stage has exited and is reaped: wait (if `graceful`, after STOP was
        sent), then SIGTERM, then SIGKILL. Idempotent."""
        self._stopping.set()
        for process in self.processes:
            if graceful:
                _wait(process)
            if process.poll() is None:
                process.terminate()
                _wait(process)
            if process.poll() is None:
                process.kill()
                process.wait()
        for fd in self._parent_fds:
            os.close(fd)
        self._parent_fds = []

    @staticmethod
    def threads_per_stage(num_stages: int) -> int:
        """The cores this process may use, shared evenly between the stages on this machine."""
        return max(1, len(os.sched_getaffinity(0)) // num_stages)


def _wait(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(JOIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
