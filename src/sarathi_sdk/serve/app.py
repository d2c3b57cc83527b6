"""`create_app`: the OpenAI-compatible FastAPI app over one Engine.

Routes: `POST /v1/chat/completions` (the model's chat template, `engine.chat`), `POST /v1/completions`
(`engine.generate` on text or token ids), `GET /v1/models`, `GET /health` (503 once the engine is dead
or not running), `GET /metrics` (Prometheus). The Engine is built in `create_app`, so a bad option
fails there, and is started and closed by the app's lifespan (unless it was started before, as
`sarathi_sdk.serve.server.serve` does): one app serves once.

A request is checked in full before it reaches the engine (body, model name, sampling values). A
response starts only once the request's first output exists, so everything the engine can refuse
(invalid, overloaded, dead) is a status code, never half a stream; a client that leaves at any point
aborts its request.

Imports fastapi and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from .. import RequestOutput
from ..engine import Engine, EngineState
from ..errors import ConfigError, InvalidRequestError
from ..hookspecs import hookimpl
from . import errors, metrics
from .defaults import DEFAULT_CHAT_MAX_TOKENS, DEFAULT_MAX_BODY_BYTES
from .errors import APIError
from .guard import Guard
from .protocol import (
    COMPLETION_DEFAULT_MAX_TOKENS,
    ChatCompletionRequest,
    CommonRequest,
    CompletionRequest,
    field_names,
)
from .responses import Reply, TokenTexts
from .tool_calls import PARSERS, ToolReply
from .streaming import ClientDisconnected, EventStream, collect, events, next_output, until_disconnected

CLIENT_CLOSED_REQUEST = 499


class OpenRequests:
    """Observer plugin: the ids of the requests the engine holds, so that a shutdown can end them."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    @hookimpl
    def sarathi_on_request_added(self, request_id: str) -> None:
        self.ids.add(request_id)

    @hookimpl
    def sarathi_on_request_finished(self, request_id: str) -> None:
        self.ids.discard(request_id)


def model_id(given: str | None, resolved: str | None) -> str:
    """The id clients send as `model`: the name of the folder or .gguf file the user gave, or for the
    bundled default model its converted folder's name without the cache's content hash."""
    if given is not None:
        path = Path(given)
        return path.stem if path.suffix == ".gguf" else path.name
    if resolved is None:
        return "default"
    return re.sub(r"-[0-9a-f]{12}$", "", Path(resolved).name)


class ServerState:
    """What the routes share: the engine, the served model's id, the observers."""

    def __init__(self, engine: Engine, observer: metrics.RequestObserver, open_requests: OpenRequests,
                 served_model_name: str | None, default_max_tokens: int, tool_call_parser: str | None = None) -> None:
        self.engine = engine
        self.tool_call_parser = tool_call_parser
        """Reads the model's own tool-call format for tool_choice "auto" (`tool_calls.PARSERS`); None refuses "auto"."""
        self.observer = observer
        self.open_requests = open_requests
        self.served_model_name = served_model_name
        self.default_max_tokens = default_max_tokens
        self.model_id = served_model_name or "default"
        self.given_model = engine.config.model
        """The model as the user named it, before the engine resolved it into a checkpoint folder."""
        self.created = int(time.time())
        self.token_texts = TokenTexts(None)

    def started(self) -> None:
        if self.served_model_name is None:
            self.model_id = model_id(self.given_model, self.engine.config.model)
        self.token_texts = TokenTexts(self.engine.tokenizer)
        self.created = int(time.time())

    async def abort_open_requests(self) -> int:
        """End every open request now (its stream ends with finish_reason "abort"); how many there were."""
        ids = list(self.open_requests.ids)
        self.open_requests.ids.clear()
        for request_id in ids:
            await self.engine.abort(request_id)
        return len(ids)

    def check_model(self, body: CommonRequest) -> None:
        if body.model != self.model_id:
            raise APIError(400, f"model {body.model!r} is not served here; this server serves {self.model_id!r}",
                           param="model", code="model_not_found")

    def reply(self, endpoint: Literal["chat", "completion"], body: CommonRequest,
              top_logprobs: int | None) -> Reply:
        prefix = "chatcmpl-" if endpoint == "chat" else "cmpl-"
        return Reply(endpoint, prefix + uuid.uuid4().hex, self.model_id, int(time.time()), self.token_texts,
                     top_logprobs=top_logprobs, include_usage=body.include_usage)


def create_app(model: str | None = None, *, api_key: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, served_model_name: str | None = None,
               default_max_tokens: int = DEFAULT_CHAT_MAX_TOKENS, tool_call_parser: str | None = None,
               **engine_options: Any) -> FastAPI:
    """The app serving `Engine(model, **engine_options)`; `model` None is the bundled default model.

    `served_model_name` is the id clients send as `model` (default: the model folder's or file's
    name). With `api_key`, `/v1` routes need `Authorization: Bearer <api_key>`. Bodies over
    `max_body_bytes` are refused with 413. `tool_call_parser` ("hermes" or "llama3_json") reads tool
    calls out of the model's output for tool_choice "auto". `engine_options` go to the Engine as they
    are (`backend=` included); a metrics observer joins any `plugins` given.
    """
    if tool_call_parser is not None and tool_call_parser not in PARSERS:
        raise ConfigError(f"tool_call_parser must be one of {', '.join(PARSERS)}, got {tool_call_parser!r}")
    observer, open_requests = metrics.RequestObserver(), OpenRequests()
    plugins = (*engine_options.pop("plugins", ()), observer, open_requests)
    engine = Engine(model, plugins=plugins, **engine_options)
    state = ServerState(engine, observer, open_requests, served_model_name, default_max_tokens, tool_call_parser)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine.state is EngineState.NEW  # `serve.server.serve` starts it before binding the port
        if owned:
            await engine.start()
        state.started()
        try:
            yield
        finally:
            if owned:
                await engine.close()

    app = FastAPI(title="sarathi-sdk", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sarathi = state
    app.state.engine = engine
    errors.install(app, field_names())
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=max_body_bytes)
    _add_routes(app, state)
    return app


def _add_routes(app: FastAPI, state: ServerState) -> None:
    engine = state.engine

    @app.get("/health")
    async def health() -> dict[str, str]:
        await engine.check_health()  # EngineDeadError, EngineStateError: a 503 (errors.from_sdk_error)
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus() -> Response:
        text = metrics.render(metrics.engine_stats(engine), state.observer, engine.state is EngineState.RUNNING)
        return PlainTextResponse(text, media_type=metrics.CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": state.model_id, "object": "model", "created": state.created, "owned_by": "sarathi-sdk"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        state.check_model(body)
        tools = body.checked_tools(state.tool_call_parser)
        params = body.chat_params(state.default_max_tokens, tools)
        reply = state.reply("chat", body, params.logprobs)
        if tools is not None:
            reply.tools = ToolReply(tools, state.tool_call_parser)
        stream = engine.chat(body.template_messages(), params, request_id=reply.id,
                             tools=None if tools is None else list(tools.tools))
        return await _respond(request, body, reply, stream)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        state.check_model(body)
        params = body.sampling_params(COMPLETION_DEFAULT_MAX_TOKENS)
        reply = state.reply("completion", body, params.logprobs)
        stream = engine.generate(body.engine_prompt(), params, request_id=reply.id)
        return await _respond(request, body, reply, stream)


async def _respond(request: Request, body: CommonRequest, reply: Reply,
                   stream: AsyncGenerator[RequestOutput, None]) -> Response:
    """Wait for the first output (streaming) or the whole result, then answer; an error the engine
    raises before that is a status code."""
    try:
        if body.stream:
            first = await until_disconnected(request.receive, next_output(stream))
            return EventStream(events(reply, first, stream), source=stream)
        output = await until_disconnected(request.receive, collect(stream))
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except InvalidRequestError as exc:
        raise APIError(400, str(exc), param=body.param_for(str(exc))) from None
    return JSONResponse(reply.response(output))
