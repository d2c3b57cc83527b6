"""Server-sent events, and what happens to a request whose client leaves.

A stream is `data: {json}\\n\\n` per chunk and a final `data: [DONE]\\n\\n`; an error after the
headers went out is sent as one `data: {"error": ...}` event before `[DONE]` (the `openai` client
raises it). Leaving the engine's stream aborts its request and frees its KV blocks, so every way a
response can end closes it at once: the event generator closes the engine stream in `finally`, and
`EventStream` closes the event generator when the response ends for any reason (client gone, server
stopping), instead of leaving it to the garbage collector. `until_disconnected` does the same for
the wait before a response starts (a non-streaming request, or a stream's first token).

Imports only the standard library, starlette, and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .. import RequestOutput
from ..errors import SarathiError
from .errors import from_sdk_error
from .responses import Reply

T = TypeVar("T")
DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientDisconnected(Exception):
    """The client closed the connection before the response started."""


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class EventStream(StreamingResponse):
    """A `text/event-stream` response that closes its event generator, and the engine stream it
    reads, however it ends (even before the generator started: a client gone before the headers)."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], source: AsyncGenerator[RequestOutput, None]) -> None:
        super().__init__(events, headers=SSE_HEADERS)
        self._events = events
        self._source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()
            await self._source.aclose()


async def events(reply: Reply, first: RequestOutput,
                 stream: AsyncGenerator[RequestOutput, None]) -> AsyncGenerator[bytes, None]:
    """The SSE body of one request, starting from its first output (already read, so that errors
    before any output could still be a status code)."""
    try:
        for chunk in reply.first_chunks():
            yield event(chunk)
        output, generated = first, 0
        while True:
            generated += len(output.token_ids)
            for chunk in reply.chunks(output):
                yield event(chunk)
            if output.finished:
                break
            output = await anext(stream)
        if reply.include_usage:
            yield event(reply.usage_chunk(output, generated))
    except SarathiError as exc:
        yield event(from_sdk_error(exc).body())
    finally:
        await stream.aclose()
    yield DONE


async def until_disconnected(receive: Receive, awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, cancelling it (which aborts an engine request it reads) if the client
    disconnects first; then raises ClientDisconnected. What `awaitable` raises is raised as it is."""
    outcome: list[T] = []
    error: list[Exception] = []

    async def work(done: anyio.CancelScope) -> None:
        try:
            outcome.append(await awaitable)
        except Exception as exc:  # raised below, outside the task group, so never as an ExceptionGroup
            error.append(exc)
        finally:
            done.cancel()

    async def watch(done: anyio.CancelScope) -> None:
        try:
            await _disconnect(receive)
        except Exception:  # a receive channel that fails is a client gone
            pass
        finally:
            done.cancel()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(work, tasks.cancel_scope)
        tasks.start_soon(watch, tasks.cancel_scope)
    if error:
        raise error[0]
    if not outcome:
        raise ClientDisconnected
    return outcome[0]


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def next_output(stream: AsyncGenerator[RequestOutput, None]) -> RequestOutput:
    return await anext(stream)


async def collect(stream: AsyncGenerator[RequestOutput, None]) -> RequestOutput:
    """A whole stream as one RequestOutput."""
    return RequestOutput.concat([output async for output in stream])
