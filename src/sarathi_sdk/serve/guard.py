"""ASGI middleware in front of every route: the request body size cap, then the API key.

- A body larger than `max_body_bytes` (by its Content-Length or as it arrives) is a 413 before any
  route parses it. The rest of such a body is read and dropped, up to `DRAIN_LIMIT_BYTES`, so the
  client reads the 413 instead of a connection reset; past that the connection is closed.
- With an API key, a request to `/v1/...` without `Authorization: Bearer KEY` is a 401; the key is
  compared in constant time. `/health` and `/metrics` stay open, for probes and scrapers.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware) so that streaming responses and their
cancellation pass through untouched. The body, once read, is handed to the app from memory; later
`receive()` calls reach the server, so the app still hears a disconnect.

Imports only the standard library and starlette's types.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .defaults import DEFAULT_MAX_BODY_BYTES
from .errors import APIError

DRAIN_LIMIT_BYTES = 16 << 20
PROTECTED_PREFIX = "/v1"


class Guard:
    def __init__(self, app: ASGIApp, *, api_key: str | None = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except _ClientGone:
            return
        if body is None:
            error = APIError(413, f"the request body is larger than {self.max_body_bytes} bytes",
                             code="request_too_large", headers={"Connection": "close"})
            await error.response()(scope, receive, send)
            return
        if self.api_key is not None and scope["path"].startswith(PROTECTED_PREFIX) and not self._authorized(scope):
            error = APIError(401, "missing or incorrect API key: send the header 'Authorization: Bearer KEY'",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            await error.response()(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key)
        return False

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it is over the cap (the rest drained as far as the limit)."""
        declared = _content_length(scope)
        too_big = declared is not None and declared > self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        more = declared is None or declared <= DRAIN_LIMIT_BYTES
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                too_big = True
            if too_big:
                chunks.clear()
                if size > DRAIN_LIMIT_BYTES:
                    break
            else:
                chunks.append(chunk)
        return None if too_big else b"".join(chunks)


class _ClientGone(Exception):
    """The client left while sending its body."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
