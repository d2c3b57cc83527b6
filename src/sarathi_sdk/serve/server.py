"""`serve(app, host, port)`: run an app from `create_app` with uvicorn, as `sarathi serve` does.

The engine starts before the port is bound, so a model that cannot load is an SDK error (one line
from the CLI), not a server that never comes up. On SIGINT / SIGTERM uvicorn stops accepting
connections and open requests get `shutdown_timeout` seconds to finish; those still running are then
aborted, so their clients get a proper end (finish_reason "abort", then `[DONE]` for a stream) rather
than a cut connection. The engine is closed before uvicorn re-raises the signal.

Imports uvicorn and the serve app.
"""

from __future__ import annotations

import logging
import socket

import anyio
import uvicorn
from fastapi import FastAPI

from .app import ServerState
from .defaults import DEFAULT_SHUTDOWN_TIMEOUT

logger = logging.getLogger(__name__)

BACKSTOP_SECONDS = 2.0
"""After the aborts, how long uvicorn still waits for connections before cancelling their tasks."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState, shutdown_timeout: float) -> None:
        super().__init__(config)
        self.state = state
        self.shutdown_timeout = shutdown_timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drained = anyio.Event()
        error: list[Exception] = []

        async def drain() -> None:
            try:
                await super(_Server, self).shutdown(sockets=sockets)
            except Exception as exc:  # raised below as it is, not inside an ExceptionGroup
                error.append(exc)
            finally:
                drained.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(drain)
            with anyio.move_on_after(self.shutdown_timeout):
                await drained.wait()
            if not drained.is_set():
                aborted = await self.state.abort_open_requests()
                logger.warning("aborted %d request(s) still open %s s after the shutdown began", aborted,
                               self.shutdown_timeout)
        if error:
            raise error[0]
        await self.state.engine.close()


async def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
    """Start the app's engine, then serve until SIGINT / SIGTERM."""
    state: ServerState = app.state.sarathi
    await state.engine.start()
    try:
        # uvicorn annotates the grace as `int | None` but passes it to asyncio.wait_for: seconds, any float.
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                                timeout_graceful_shutdown=shutdown_timeout + BACKSTOP_SECONDS)  # type: ignore[arg-type]
        await _Server(config, state, shutdown_timeout).serve()
    finally:
        await state.engine.close()
