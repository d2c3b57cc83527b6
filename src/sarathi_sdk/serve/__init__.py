"""`sarathi serve`: an OpenAI-compatible HTTP server over one `Engine` (the optional `serve` extra).

`create_app(model, **engine_options)` returns a FastAPI app that starts its Engine when the server
starts and closes it when the server stops; `sarathi serve` runs one with uvicorn. Modules:

- `app`: the app, its lifespan and routes
- `protocol`: request bodies (pydantic) and their mapping onto `SamplingParams`
- `responses`: OpenAI response bodies and stream chunks built from `RequestOutput`s
- `streaming`: server-sent events, and the end of a request whose client left
- `errors`: OpenAI-style error bodies and the status of each SDK error
- `guard`: the API key and the request body size cap (ASGI middleware)
- `metrics`: Prometheus text from engine stats and finished requests' metrics
- `server`: `serve(app, host, port)`, uvicorn with a shutdown that ends open requests cleanly
- `commands`: the `sarathi serve` command
- `defaults`: body cap, chat max_tokens, shutdown grace

Only this package imports fastapi, pydantic and uvicorn, and nothing here is imported by the core, so
the SDK works without the extra. Importing this package imports nothing else: `create_app` loads on
first use.
"""

from __future__ import annotations

from typing import Any

from .defaults import DEFAULT_CHAT_MAX_TOKENS, DEFAULT_MAX_BODY_BYTES, DEFAULT_SHUTDOWN_TIMEOUT

__all__ = ["DEFAULT_CHAT_MAX_TOKENS", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_SHUTDOWN_TIMEOUT", "create_app"]

def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
