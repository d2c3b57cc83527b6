"""The queue between the step loop and one `generate()` consumer.

The step loop never waits on a consumer: `put` and `fail` return at once, and when the app reads slower
than tokens arrive, the deltas waiting in its stream are merged into one on the next read. Written on
anyio's `Semaphore`, so it serves under asyncio and trio alike.

Imports anyio, the standard library and `output`.
"""

from __future__ import annotations

from collections import deque

import anyio

from .output import RequestOutput


class RequestStream:
    """One request's deltas, in order, or the error that ended it."""

    def __init__(self) -> None:
        self._items: deque[RequestOutput] = deque()
        self._error: BaseException | None = None
        self._ready = anyio.Semaphore(0, fast_acquire=True)
        """Released once whenever there is something to read. A semaphore, not an Event: an anyio
        Event is set only once, and making a new one for every token costs more than the rest of a
        token's trip through the engine."""
        self._signalled = False

    def put(self, output: RequestOutput) -> None:
        self._items.append(output)
        self._signal()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._signal()

    async def get(self) -> RequestOutput:
        """The waiting deltas merged into one; raises the stream's error once they are read."""
        await self._ready.acquire()
        self._signalled = False
        if self._error is not None:
            self._signal()  # the error stays, for this read or the next
            if not self._items:
                raise self._error
        output = self._items[0] if len(self._items) == 1 else RequestOutput.concat(self._items)
        self._items.clear()
        return output

    def _signal(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._ready.release()
