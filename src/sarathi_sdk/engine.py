"""Engine: the async front of sarathi-sdk: lifecycle, generate / complete / chat, abort, stats.

Written on anyio, so the same Engine serves under asyncio and trio. All engine state (requests, policy,
KV manager) lives on the event-loop thread; only `backend.execute()` runs elsewhere, on worker threads
(see `step_loop`), so nothing needs a lock. `start()` opens a task group that the engine owns until
`close()` (see `background`: any task may start or close an engine, in any order) and runs the step
loop in it; `generate()` only reads its request's stream, so leaving it
early (break, `aclose()`, cancellation) aborts the request, whose blocks are free before the next step.

Failure is contained where it happens: one request's output processing failing ends that request's
stream with `RequestError`; an observer plugin raising is logged; only the step loop itself failing (a
step raising or running past `step_timeout`, a policy error) kills the engine, ending every open
stream with `EngineDeadError`. Either way every KV block comes back, so `stats()` stays true.

Imports anyio, the contract modules and the plugin manager; never model code.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from .admission import Prompt, check_messages
from .background import BackgroundTasks
from .batch import ScheduledBatch
from .config import EngineConfig
from .errors import EngineDeadError, EngineStateError, InvalidRequestError
from .interfaces import ModelBackend, Tokenizer
from .live_requests import LiveRequest, LiveRequests
from .metrics import EngineStats
from .output import RequestOutput
from .plugins import PluginManager
from .sampling import SamplingParams
from .startup import Built, build_parts
from .step_loop import StepLoop

logger = logging.getLogger(__name__)


class EngineState(enum.Enum):
    """Where an engine is in its life: NEW -> STARTING -> RUNNING -> (DEAD ->) CLOSED."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DEAD = "dead"
    """The step loop failed; every request has ended, and close() is the only thing left to do."""
    CLOSED = "closed"
    """close() was called: no new work; `stats()` keeps the final numbers."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Parts:
    """What start() builds, held from start to close (and after, for `stats()`)."""

    built: Built
    live: LiveRequests
    steps: StepLoop
    tasks: BackgroundTasks
    loop: anyio.lowlevel.EventLoopToken
    """The event loop it was started in: its tasks and events serve no other."""


class Engine:
    """`async with Engine(model, **options) as engine:` serves requests until the block ends.

    `model` is a Hugging Face checkpoint folder or a .gguf file (None: the bundled default model);
    options are the fields of `EngineConfig`. `backend=` takes a ModelBackend object directly (such as
    `sarathi_sdk.testing.FakeBackend`), skipping the backend factory hook.
    """

    def __init__(self, model: str | None = None, *, backend: ModelBackend | None = None, **options: Any) -> None:
        self.config = EngineConfig.from_options(model, **options)
        self._given_options = frozenset(options)
        self._given_backend = backend
        self._state = EngineState.NEW
        self._tokenizer: Tokenizer | None = None
        self._parts: _Parts | None = None
        self._death: BaseException | None = None
        self._budget_profile: list[tuple[int, float]] | None = None

    @property
    def state(self) -> EngineState:
        """The engine's lifecycle state."""
        return self._state

    @property
    def tokenizer(self) -> Tokenizer | None:
        """The model's tokenizer once started; None before, or when prompts must be token ids."""
        return self._tokenizer

    @property
    def token_budget_profile(self) -> tuple[tuple[int, float], ...] | None:
        """With `token_budget="auto"`, the (budget, seconds per step) pairs profiled at start, the last
        one that met `tbt_slo` being the budget chosen; None otherwise (or before start)."""
        return None if self._budget_profile is None else tuple(self._budget_profile)

    @property
    def plugin_manager(self) -> PluginManager:
        """This engine's plugin manager (one per engine), once started."""
        return self._started().built.plugins

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Load plugins, the model and the KV cache, and start the step loop."""
        if self._state is not EngineState.NEW:
            raise EngineStateError(f"cannot start an engine that is {self._state.value}; make a new Engine")
        self._state = EngineState.STARTING
        try:
            built = await build_parts(self.config, self._given_options, self._given_backend)
        except BaseException:
            self._state = EngineState.CLOSED
            raise
        self.config, self._tokenizer, self._budget_profile = built.config, built.tokenizer, built.budget_profile
        live = LiveRequests(built.policy, built.plugins.notify)
        steps = StepLoop(built.policy, built.kv, built.backend, live, max_in_flight=self.config.pipeline_parallel_size,
                         step_timeout=self.config.step_timeout, on_step_end=self._on_step_end, on_death=self._die,
                         structured=built.structured, speculation=built.speculation)
        tasks = BackgroundTasks()
        self._parts = _Parts(built, live, steps, tasks, anyio.lowlevel.current_token())
        steps.start(await tasks.open())
        self._state = EngineState.RUNNING
        built.plugins.notify("sarathi_on_engine_start", config=self.config)

    async def close(self) -> None:
        """Abort every open request (each stream ends with finish_reason "abort"), let the steps in
        flight return, and release the model. Idempotent. Afterwards only `stats()` answers, with the
        final numbers.

        On a dead engine it does not wait for a step stuck past `step_timeout`: a thread cannot be
        killed, so that worker is abandoned, still running until `backend.execute` returns (and the
        interpreter waits for it at exit); the backend is closed all the same.
        """
        parts = self._parts
        if parts is None or self._state is EngineState.CLOSED:
            self._state = EngineState.CLOSED
            return
        self._check_loop(parts)
        self._state = EngineState.CLOSED  # refuses new requests; the step loop drains and returns
        try:
            for request_id in parts.live:
                parts.live.abort(request_id)
            await parts.steps.stop()
            await parts.tasks.close()
        finally:
            self._state = EngineState.CLOSED  # also after dying while draining
            parts.built.backend.close()
            if parts.built.speculation is not None:
                parts.built.speculation.proposer.close()
            parts.built.plugins.notify("sarathi_on_engine_stop", stats=self.stats())

    async def generate(self, prompt: Prompt, params: SamplingParams | None = None, *,
                       request_id: str | None = None, priority: int = 0) -> AsyncGenerator[RequestOutput, None]:
        """Stream a request's outputs: each holds the text and token ids new since the previous one."""
        compiled = await self._compile(params)
        live = self._add_request(prompt, params, request_id, priority, compiled)
        async for output in self._stream(live):
            yield output

    async def chat(self, messages: Sequence[Mapping[str, Any]], params: SamplingParams | None = None, *,
                   request_id: str | None = None, priority: int = 0,
                   tools: Sequence[Mapping[str, Any]] | None = None) -> AsyncGenerator[RequestOutput, None]:
        """`generate()` on the conversation rendered with the model's chat template; `tools` (OpenAI's
        function definitions) reach the template, as transformers passes them."""
        parts = self._check_running()
        if self._tokenizer is None:
            raise InvalidRequestError("chat needs a tokenizer with a chat template; this engine has none")
        checked = check_messages(messages)
        if tools is None:
            text = self._tokenizer.apply_chat_template(checked, add_generation_prompt=True)
        else:
            text = self._tokenizer.apply_chat_template(checked, add_generation_prompt=True,  # type: ignore[call-arg]
                                                       tools=list(tools))
        prompt_ids = parts.built.admission.tokenize(text, add_special_tokens=False)
        compiled = await self._compile(params)
        live = self._add_request(prompt_ids, params, request_id, priority, compiled)
        async for output in self._stream(live):
            yield output

    async def complete(self, prompt: Prompt, params: SamplingParams | None = None, *,
                       request_id: str | None = None, priority: int = 0) -> RequestOutput:
        """The whole result of one request, as one RequestOutput."""
        outputs = [output async for output in self.generate(prompt, params, request_id=request_id, priority=priority)]
        return RequestOutput.concat(outputs)

    async def abort(self, request_id: str) -> None:
        """End a request now; its stream yields a final output with finish_reason "abort". An unknown
        or finished id is ignored, as on a dead engine, whose requests have all ended already."""
        self._check_open().live.abort(request_id)

    async def check_health(self) -> None:
        """Return while the engine serves; raise `EngineDeadError` once its step loop has failed, and
        `EngineStateError` before start, after close or from another event loop."""
        self._check_running()

    def stats(self) -> EngineStats:
        """Counts between steps; after close (or death) the final ones: nothing waiting or running,
        every KV block free."""
        parts = self._started()
        policy = parts.built.policy.stats()
        speculation = parts.built.speculation
        return EngineStats(
            num_waiting=policy.num_waiting,
            num_running=policy.num_running,
            kv_blocks_total=parts.built.kv.num_blocks,
            kv_blocks_free=parts.built.kv.num_free_blocks(),
            num_steps=parts.steps.num_steps,
            num_preemptions=policy.num_preemptions,
            num_tokens_processed=parts.steps.num_tokens,
            prefix_cache_hit_rate=policy.num_cached_prompt_tokens / max(1, policy.num_prompt_tokens),
            num_proposed_tokens=0 if speculation is None else speculation.num_proposed_tokens,
            num_accepted_tokens=0 if speculation is None else speculation.num_accepted_tokens,
        )

    def _started(self) -> _Parts:
        if self._parts is None:
            raise EngineStateError("the engine is not started; use `async with Engine(...)`")
        return self._parts

    def _check_loop(self, parts: _Parts) -> None:
        """All engine state lives on one event loop, whose tasks and events cannot serve another: a call
        from elsewhere would wait forever."""
        if anyio.lowlevel.current_token() != parts.loop:
            raise EngineStateError(
                "the engine runs on the event loop it was started in; use it from that loop "
                "(one Engine per event loop: start another in the other one)"
            )

    def _check_open(self) -> _Parts:
        parts = self._started()
        self._check_loop(parts)
        if self._state is EngineState.CLOSED:
            raise EngineStateError("the engine is closed; make a new Engine")
        return parts

    def _check_running(self) -> _Parts:
        parts = self._check_open()
        if self._state is EngineState.DEAD:
            raise self._dead_error()
        return parts

    def _dead_error(self) -> EngineDeadError:
        cause = self._death
        error = EngineDeadError(f"the engine's step loop failed ({type(cause).__name__}: {cause}); "
                                "close it and start a new Engine")
        error.__cause__ = cause
        return error

    async def _compile(self, params: SamplingParams | None) -> Any:
        """The request's compiled `structured_outputs` (None without), compiled on a worker thread;
        an `InvalidRequestError` if it does not compile or no plugin compiles constraints."""
        if not isinstance(params, SamplingParams) or params.structured_outputs is None:
            return None
        backend = self._check_running().built.structured
        if backend is None:
            raise InvalidRequestError("structured_outputs needs a structured-output backend plugin; this engine has none")
        return await anyio.to_thread.run_sync(backend.compile, params.structured_outputs)

    def _add_request(self, prompt: Prompt, params: SamplingParams | None, request_id: str | None,
                     priority: int, compiled: Any = None) -> LiveRequest:
        parts = self._check_running()
        request_id = uuid.uuid4().hex if request_id is None else request_id
        if not isinstance(request_id, str) or request_id in parts.live:
            raise InvalidRequestError(f"request id {request_id!r} is not a new string")
        params = SamplingParams() if params is None else params
        prompt_ids = parts.built.admission.tokenize(prompt)
        request = parts.built.admission.make_request(request_id, prompt_ids, params, priority)
        parts.built.admission.check_capacity(parts.built.policy)
        detokenizer = None if self._tokenizer is None else self._tokenizer.detokenizer(prompt_ids)
        structured = parts.built.structured
        matcher = None if compiled is None or structured is None else structured.matcher(compiled)
        live = parts.live.add(request, detokenizer, matcher)
        parts.built.policy.add(request)
        # an observer raising here is logged and the request is served all the same
        parts.built.plugins.notify("sarathi_on_request_added", request_id=request_id,
                             prompt_token_ids=prompt_ids, sampling_params=params)
        parts.steps.wake()
        return live

    async def _stream(self, live: LiveRequest) -> AsyncGenerator[RequestOutput, None]:
        try:
            while True:
                output = await live.stream.get()
                yield output
                if output.finished:
                    return
        finally:
            if not live.request.is_finished and self._parts is not None:
                self._parts.live.abort(live.request.request_id)

    def _on_step_end(self, batch: ScheduledBatch) -> None:
        self._started().built.plugins.notify("sarathi_on_step_end", batch=batch, stats=self.stats())

    def _die(self, exc: BaseException) -> None:
        """End every open stream with `EngineDeadError` and take every request out of the policy, so
        their blocks are free (those of batches in flight: as the step loop exits)."""
        logger.error("the step loop failed; the engine is dead", exc_info=exc)
        self._state = EngineState.DEAD
        self._death = exc
        self._started().live.fail_all(self._dead_error)


__all__ = ["Engine", "EngineState"]
