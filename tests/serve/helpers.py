"""A uvicorn server in a background thread, on its own event loop, for the serve tests.

The server binds 127.0.0.1 on a port the OS picks (a socket bound before uvicorn starts, so no race
for it). `call(coroutine)` runs a coroutine on the server's loop, where its Engine lives: the tests
compare the HTTP answers with the same engine's own `complete` / `chat`. Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI

from sarathi_sdk import Engine

T = TypeVar("T")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
CALL_TIMEOUT = 60.0
SMALL_ENGINE = {"num_kv_blocks": 1024}
"""Real-model servers use a small KV cache (16k tokens): plenty for the tests, quick to allocate."""


class ServerThread:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="serve-test-server", daemon=True)

    @property
    def engine(self) -> Engine:
        return self.app.state.engine

    @property
    def model_id(self) -> str:
        return self.app.state.sarathi.model_id

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self._socket]))
        finally:
            self.loop.close()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server stopped while starting (see its log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start in {START_TIMEOUT} s")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(STOP_TIMEOUT)
        self._socket.close()
        if self._thread.is_alive():
            raise TimeoutError(f"the server did not stop in {STOP_TIMEOUT} s")

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        """Run `coroutine` on the server's event loop (the engine's) and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def metrics(self) -> dict[str, float]:
        """`GET /metrics` as {"name{labels}": value}."""
        text = httpx.get(self.base_url + "/metrics", timeout=10).text
        return parse_metrics(text)

    def wait_for_metrics(self, condition, timeout: float = 15.0) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            values = self.metrics()
            if condition(values):
                return values
            if time.monotonic() > deadline:
                raise TimeoutError(f"metrics never met the condition: {values}")
            time.sleep(0.05)


@contextlib.contextmanager
def running(app: FastAPI) -> Iterator[ServerThread]:
    server = ServerThread(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def sse_payloads(lines: list[str]) -> list[str]:
    """The `data:` payloads of a server-sent event stream, in order."""
    return [match.group(1) for line in lines if (match := re.match(r"data: (.*)", line))]
