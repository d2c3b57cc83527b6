"""Engine: the asyncio front of sarathi-sdk: lifecycle, generate / complete / chat, the step loop.

All engine state (requests, policy, KV manager) lives on the event-loop thread; only
`backend.execute()` runs elsewhere, on one worker thread per in-flight batch slot, so nothing needs a
lock. The step loop is a long-lived background task: schedule, execute, update, emit. It keeps up to
`pipeline_parallel_size` batches in flight, and the policy never schedules a request that is in one.
`generate()` only reads its request's stream; leaving it early (break, `aclose()`, cancellation)
aborts the request, whose blocks are free before the next step.

Failure is contained where it happens: one request's output processing failing ends that request's
stream with `RequestError`; an observer plugin raising is logged; only the step loop itself failing (a
step raising or running past `step_timeout`, a policy error) kills the engine, ending every open
stream with `EngineDeadError`. Either way every KV block comes back, so `stats()` stays true.

Imports the contract modules and the plugin manager; never model code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .admission import Admission, Prompt, check_messages
from .batch import ScheduledBatch, StepOutput, TokenLogprobs
from .budget import profile_token_budget
from .config import AUTO, EngineConfig
from .errors import (
    EngineDeadError,
    EngineOverloadedError,
    EngineStateError,
    InvalidRequestError,
    PluginError,
    RequestError,
)
from .interfaces import BatchPolicy, KVCacheManager, KVCacheSpec, ModelBackend, Tokenizer
from .metrics import EngineStats
from .output import OutputProcessor, RequestStream, aborted_output
from .plugins import PluginManager
from .request import FinishReason, Request, RequestOutput
from .sampling import SamplingParams

logger = logging.getLogger(__name__)


class EngineState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DEAD = "dead"
    """The step loop failed; every request has ended, and close() is the only thing left to do."""
    CLOSED = "closed"
    """close() was called: no new work; `stats()` keeps the final numbers."""


@dataclasses.dataclass(eq=False)
class _Live:
    """A request the engine is serving, with its output side."""

    request: Request
    processor: OutputProcessor
    stream: RequestStream


@dataclasses.dataclass(eq=False, slots=True)
class _InFlight:
    """A batch executing on a worker thread."""

    batch: ScheduledBatch
    requests: list[Request]
    output: asyncio.Future[StepOutput]
    deadline: float | None
    """Event-loop time by which it must return (`step_timeout`); each batch has its own worker thread,
    so it starts running as it is submitted."""

    def abandon(self, kv: KVCacheManager) -> None:
        """The batch will never be processed (the engine died): free its requests' blocks, which nothing
        else would, and drop its output, reading an error it already holds so that asyncio does not
        report it as never retrieved."""
        if not self.output.cancel() and not self.output.cancelled():
            self.output.exception()
        for request in self.requests:
            kv.free(request)


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
        self._plugins: PluginManager | None = None
        self._live: dict[str, _Live] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._death: BaseException | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._num_steps = 0
        self._num_tokens = 0
        self._budget_profile: list[tuple[int, float]] | None = None

    @property
    def state(self) -> EngineState:
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
        if self._plugins is None:
            raise EngineStateError("the engine is not started; use `async with Engine(...)`")
        return self._plugins

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
        self._loop = asyncio.get_running_loop()
        self._backend: ModelBackend | None = None
        try:
            await self._build()
        except BaseException:
            self._state = EngineState.CLOSED
            if self._backend is not None:
                self._backend.close()
            raise
        self._wakeup = asyncio.Event()
        self._loop_task = asyncio.create_task(self._step_loop(), name="sarathi-step-loop")
        self._state = EngineState.RUNNING
        self._plugins.notify("sarathi_on_engine_start", config=self.config)

    async def _build(self) -> None:
        self._plugins = PluginManager(self.config)
        hook = self._plugins.hook
        if self._given_backend is None or self.config.model is not None:
            resolved = await asyncio.to_thread(hook.sarathi_resolve_model, config=self.config)
            if resolved is not None:
                self.config = dataclasses.replace(self.config, model=resolved)
            self._tokenizer = hook.sarathi_make_tokenizer(config=self.config)
        backend = self._given_backend
        if backend is None:
            backend = await asyncio.to_thread(
                hook.sarathi_make_backend, config=self.config, plugin_manager=self._plugins
            )
        self._backend = _required(backend, "model backend")
        spec = self._backend.kv_cache_spec(self.config)
        self._apply_default_budget(spec)
        if spec.default_prefix_caching is not None and "enable_prefix_caching" not in self._given_options:
            self.config = dataclasses.replace(self.config, enable_prefix_caching=spec.default_prefix_caching)
        num_blocks = self.config.num_kv_blocks or spec.num_blocks
        await asyncio.to_thread(self._backend.start, self.config, num_blocks)
        if self.config.token_budget == AUTO:
            budget, self._budget_profile = await asyncio.to_thread(
                profile_token_budget, self._backend, self.config, spec, num_blocks)
            self.config = dataclasses.replace(self.config, token_budget=budget, tbt_slo=None)
        self._kv: KVCacheManager = _required(
            hook.sarathi_make_kv_cache_manager(config=self.config, num_blocks=num_blocks), "KV-cache manager"
        )
        self._policy: BatchPolicy = _required(
            hook.sarathi_make_batch_policy(config=self.config, kv_cache_manager=self._kv,
                                           plugin_manager=self._plugins),
            "batch policy",
        )
        self._admission = Admission(self.config, spec, num_blocks, self._tokenizer)
        self._executor = ThreadPoolExecutor(self.config.pipeline_parallel_size, thread_name_prefix="sarathi-exec")

    def _apply_default_budget(self, spec: KVCacheSpec) -> None:
        """Take the backend's measured budget for its device when the user set none. The defaults
        derived from the budget (`max_num_seqs`, `low_chunk_size`) follow it unless given; a given
        `max_num_seqs` or `low_chunk_size` larger than the suggestion raises the budget to it."""
        suggested = spec.default_token_budget
        if suggested is None or "token_budget" in self._given_options or suggested == self.config.token_budget:
            return
        derived = ("max_num_seqs", "low_chunk_size")
        given = [getattr(self.config, name) for name in derived if name in self._given_options]
        budget = max([suggested, *given])
        reset = {name: None for name in derived if name not in self._given_options}
        self.config = dataclasses.replace(self.config, token_budget=budget, **reset)

    async def close(self) -> None:
        """Abort every open request (each stream ends with finish_reason "abort"), let the steps in
        flight return, and release the model. Idempotent. Afterwards only `stats()` answers, with the
        final numbers.

        On a dead engine it does not wait for a step stuck past `step_timeout`: a thread cannot be
        killed, so that worker is abandoned, still running until `backend.execute` returns (and the
        interpreter waits for it at exit); the backend is closed all the same.
        """
        if self._state in (EngineState.NEW, EngineState.CLOSED):
            self._state = EngineState.CLOSED
            return
        self._check_loop()
        self._state = EngineState.CLOSED  # refuses new requests; the step loop drains and returns
        try:
            for request_id in list(self._live):
                self._abort(request_id)
            self._wakeup.set()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        finally:
            self._state = EngineState.CLOSED  # also after dying while draining
            self._executor.shutdown(wait=False)  # no step runs now but one the watchdog abandoned
            self._backend.close()
            self._plugins.notify("sarathi_on_engine_stop", stats=self.stats())

    async def generate(self, prompt: Prompt, params: SamplingParams | None = None, *,
                       request_id: str | None = None, priority: int = 0) -> AsyncIterator[RequestOutput]:
        """Stream a request's outputs: each holds the text and token ids new since the previous one."""
        live = self._add_request(prompt, params, request_id, priority)
        async for output in self._stream(live):
            yield output

    async def chat(self, messages: Sequence[Mapping[str, str]], params: SamplingParams | None = None, *,
                   request_id: str | None = None, priority: int = 0) -> AsyncIterator[RequestOutput]:
        """`generate()` on the conversation rendered with the model's chat template."""
        self._check_running()
        if self._tokenizer is None:
            raise InvalidRequestError("chat needs a tokenizer with a chat template; this engine has none")
        text = self._tokenizer.apply_chat_template(check_messages(messages), add_generation_prompt=True)
        prompt_ids = self._admission.tokenize(text, add_special_tokens=False)
        live = self._add_request(prompt_ids, params, request_id, priority)
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
        self._check_open()
        self._abort(request_id)

    async def check_health(self) -> None:
        """Return while the engine serves; raise `EngineDeadError` once its step loop has failed, and
        `EngineStateError` before start, after close or from another event loop."""
        self._check_running()

    def stats(self) -> EngineStats:
        """Counts between steps; after close (or death) the final ones: nothing waiting or running,
        every KV block free."""
        if self._state in (EngineState.NEW, EngineState.STARTING):
            raise EngineStateError("the engine is not started; use `async with Engine(...)`")
        policy = self._policy.stats()
        return EngineStats(
            num_waiting=policy.num_waiting,
            num_running=policy.num_running,
            kv_blocks_total=self._kv.num_blocks,
            kv_blocks_free=self._kv.num_free_blocks(),
            num_steps=self._num_steps,
            num_preemptions=policy.num_preemptions,
            num_tokens_processed=self._num_tokens,
            prefix_cache_hit_rate=policy.num_cached_prompt_tokens / max(1, policy.num_prompt_tokens),
        )

    def _check_loop(self) -> None:
        """All engine state lives on one event loop, whose tasks and events cannot serve another: a call
        from elsewhere would wait forever."""
        if asyncio.get_running_loop() is not self._loop:
            raise EngineStateError(
                "the engine runs on the event loop it was started in; use it from that loop "
                "(one Engine per event loop: start another in the other one)"
            )

    def _check_open(self) -> None:
        if self._state in (EngineState.NEW, EngineState.STARTING):
            raise EngineStateError("the engine is not started; use `async with Engine(...)`")
        self._check_loop()
        if self._state is EngineState.CLOSED:
            raise EngineStateError("the engine is closed; make a new Engine")

    def _check_running(self) -> None:
        self._check_open()
        if self._state is EngineState.DEAD:
            raise self._dead_error()

    def _dead_error(self) -> EngineDeadError:
        cause = self._death
        error = EngineDeadError(f"the engine's step loop failed ({type(cause).__name__}: {cause}); "
                                "close it and start a new Engine")
        error.__cause__ = cause
        return error

    def _add_request(self, prompt: Prompt, params: SamplingParams | None, request_id: str | None,
                     priority: int) -> _Live:
        self._check_running()
        request_id = uuid.uuid4().hex if request_id is None else request_id
        if not isinstance(request_id, str) or request_id in self._live:
            raise InvalidRequestError(f"request id {request_id!r} is not a new string")
        params = SamplingParams() if params is None else params
        prompt_ids = self._admission.tokenize(prompt)
        request = self._admission.make_request(request_id, prompt_ids, params, priority)
        self._check_capacity()
        detokenizer = None if self._tokenizer is None else self._tokenizer.detokenizer(prompt_ids)
        live = _Live(request, OutputProcessor(request, detokenizer), RequestStream())
        self._live[request_id] = live
        self._policy.add(request)
        # an observer raising here is logged and the request is served all the same
        self._plugins.notify("sarathi_on_request_added", request_id=request_id,
                             prompt_token_ids=prompt_ids, sampling_params=params)
        self._wakeup.set()
        return live

    def _check_capacity(self) -> None:
        """Backpressure: refuse a request while `max_waiting_requests` wait, before anything changes."""
        limit = self.config.max_waiting_requests
        if limit is not None and (waiting := self._policy.stats().num_waiting) >= limit:
            raise EngineOverloadedError(
                f"{waiting} requests are waiting (max_waiting_requests={limit}); retry later"
            )

    async def _stream(self, live: _Live) -> AsyncIterator[RequestOutput]:
        try:
            while True:
                output = await live.stream.get()
                yield output
                if output.finished:
                    return
        finally:
            if not live.request.is_finished:
                self._abort(live.request.request_id)

    def _abort(self, request_id: str) -> None:
        live = self._live.get(request_id)
        if live is None:
            return
        self._policy.abort(request_id)
        self._finish(live, aborted_output(live.request, live.processor, time.perf_counter()))

    def _finish(self, live: _Live, output: RequestOutput) -> None:
        del self._live[live.request.request_id]
        live.stream.put(output)
        self._plugins.notify("sarathi_on_request_finished", request_id=output.request_id, output=output)

    async def _step_loop(self) -> None:
        """Schedule, execute, update, emit, with up to `pipeline_parallel_size` batches in flight; after
        close() has aborted everything, return once nothing is in flight. Whatever escapes kills the
        engine: per-request and observer failures are caught closer to where they happen."""
        in_flight: deque[_InFlight] = deque()
        try:
            while True:
                while len(in_flight) < self.config.pipeline_parallel_size:
                    batch = self._policy.schedule()
                    if batch.is_empty:
                        break
                    in_flight.append(self._submit(batch))
                if not in_flight:
                    if self._state is EngineState.CLOSED:
                        return
                    if self._policy.has_work():
                        raise RuntimeError("the batch policy holds requests but scheduled none")
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                step = in_flight[0]
                self._process(step.batch, await self._result(step))
                in_flight.popleft()
        except asyncio.CancelledError:
            if self._state is EngineState.RUNNING:  # cancelled by its event loop ending, not by close()
                self._die(RuntimeError("the step loop was cancelled before close()"))
            raise
        except BaseException as exc:
            self._die(exc)
        finally:
            for step in in_flight:
                step.abandon(self._kv)

    def _submit(self, batch: ScheduledBatch) -> _InFlight:
        """Start a batch on a worker thread, noting when its requests were first scheduled."""
        now = time.perf_counter()
        requests = [self._live[request_id].request for request_id in batch.request_ids]
        for request in requests:
            if request.first_scheduled_time is None:
                request.first_scheduled_time = now
        timeout = self.config.step_timeout
        deadline = None if timeout is None else self._loop.time() + timeout
        output = self._loop.run_in_executor(self._executor, self._backend.execute, batch)
        return _InFlight(batch, requests, output, deadline)

    async def _result(self, step: _InFlight) -> StepOutput:
        """The batch's output, or a TimeoutError once it runs past `step_timeout` (the watchdog)."""
        watchdog = asyncio.timeout_at(step.deadline)
        try:
            async with watchdog:
                return await step.output
        except TimeoutError:
            if not watchdog.expired():
                raise  # the backend's own TimeoutError
            raise TimeoutError(
                f"step {step.batch.step_id} exceeded step_timeout ({self.config.step_timeout} seconds); "
                "its worker thread cannot be stopped and was abandoned"
            ) from None

    def _process(self, batch: ScheduledBatch, output: StepOutput) -> None:
        """Record a step's tokens and send each request its delta."""
        for request_id, reason in output.failed.items():
            live = self._live.get(request_id)
            if live is not None:
                self._fail_request(live, RuntimeError(f"sampling failed: {reason}"))
        self._policy.update(batch, output)
        self._num_steps += 1
        self._num_tokens += batch.num_tokens
        now = time.perf_counter()
        for request_id, token_id in output.sampled.items():
            live = self._live.get(request_id)
            if live is None:
                continue  # aborted while its batch ran
            try:
                self._emit(live, token_id, output.logprobs.get(request_id), now)
            except Exception as exc:
                self._fail_request(live, exc)
        self._plugins.notify("sarathi_on_step_end", batch=batch, stats=self.stats())

    def _emit(self, live: _Live, token_id: int, logprobs: TokenLogprobs | None, now: float) -> None:
        """Detokenize one request's new token, watch its stop strings, and send its delta."""
        request = live.request
        request.token_times.append(now)
        if live.processor.add_token(token_id) and not request.is_finished:
            self._policy.abort(request.request_id)
            request.finish(FinishReason.STOP)
        delta = live.processor.delta((token_id,), None if logprobs is None else (logprobs,),
                                     now if request.is_finished else None)
        if request.is_finished:
            self._finish(live, delta)
        else:
            live.stream.put(delta)

    def _fail_request(self, live: _Live, exc: Exception) -> None:
        """End one request with `RequestError`, freeing its blocks; the others go on."""
        request_id = live.request.request_id
        logger.exception("request %s failed; the engine goes on", request_id)
        self._policy.abort(request_id)
        del self._live[request_id]
        error = RequestError(f"request {request_id} failed: {exc}")
        error.__cause__ = exc
        live.stream.fail(error)

    def _die(self, exc: BaseException) -> None:
        """End every open stream with `EngineDeadError` and take every request out of the policy, so
        their blocks are free (those of batches in flight: as the step loop exits)."""
        logger.error("the step loop failed; the engine is dead", exc_info=exc)
        self._state = EngineState.DEAD
        self._death = exc
        live, self._live = self._live, {}
        for entry in live.values():
            entry.stream.fail(self._dead_error())
        for request_id in live:
            self._policy.abort(request_id)


def _required(obj: Any, what: str) -> Any:
    if obj is None:
        raise PluginError(f"no plugin provides a {what}")
    return obj


__all__ = ["Engine", "EngineState"]
