"""A task group for the engine's own tasks, held by a task outside the caller's task tree.

anyio exits a task group only in the task that entered it, and in the reverse order of entering. An
engine's life does not follow the caller's task structure: apps start it in one task and close it in
another (`asyncio.wait_for(engine.start())` runs start in a task of its own on Python 3.11), or close
several engines in the order they opened them. So the engine's task group lives in a task of its own,
which anyio's public API can start outside any task group only from another thread:
`anyio.from_thread.run` (a task on the loop, under asyncio and trio alike) called from a helper thread
that does nothing else but wait for it. The group ends when `close()` is called, or, cancelled, when
the event loop itself ends.

Imports anyio and the standard library.
"""

from __future__ import annotations

import threading

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import TaskGroup


class BackgroundTasks:
    """`await open()` -> a task group that outlives the calling task; `await close()` cancels what is
    left in it and waits for it to end."""

    def __init__(self) -> None:
        self._task_group: TaskGroup | None = None
        self._ready = anyio.Event()
        self._closing = anyio.Event()
        self._closed = anyio.Event()

    async def open(self) -> TaskGroup:
        token = anyio.lowlevel.current_token()
        threading.Thread(target=self._hold, args=(token,), name="sarathi-background", daemon=True).start()
        await self._ready.wait()
        assert self._task_group is not None
        return self._task_group

    async def close(self) -> None:
        """Shielded: a cancelled caller still waits for the group to end, which takes one pass of the
        loop since cancelling it abandons whatever waits on a thread."""
        with anyio.CancelScope(shield=True):
            self._closing.set()
            await self._closed.wait()

    def _hold(self, token: anyio.lowlevel.EventLoopToken) -> None:
        """The helper thread: run `_serve` on the loop until it ends. It ends by cancellation when the
        event loop shuts down first; nothing is left to report then."""
        try:
            anyio.from_thread.run(self._serve, token=token)
        except BaseException:  # the loop ended under the group, whose tasks already said why
            return

    async def _serve(self) -> None:
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                self._ready.set()
                await self._closing.wait()
                task_group.cancel_scope.cancel()
        finally:
            self._closed.set()
