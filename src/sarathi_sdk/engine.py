"""Engine: the asyncio front of sarathi-sdk: lifecycle, generate / complete / chat, the step loop.

All engine state (requests, policy, KV manager) lives on the event-loop thread; only
`backend.execute()` runs elsewhere, on one worker thread per in-flight batch slot, so nothing needs a
lock. The step loop is a long-lived background task: schedule, execute, update, emit. It keeps up to
`pipeline_parallel_size` batches in flight, and the policy never schedules a request that is in one.
`generate()` only reads its request's stream; leaving it early (break, `aclose()`, cancellation)
aborts the request, whose blocks are free before the next step.

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
from .batch import ScheduledBatch, StepOutput
from .budget import profile_token_budget
from .config import AUTO, EngineConfig
from .errors import EngineDeadError, EngineStateError, InvalidRequestError, PluginError, RequestError
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
    """The step loop failed; close() is the only thing left to do."""
    CLOSED = "closed"


@dataclasses.dataclass(eq=False)
class _Live:
    """A request the engine is serving, with its output side."""

    request: Request
    processor: OutputProcessor
    stream: RequestStream


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
        """Abort every open request, stop the step loop and release the model. Idempotent."""
        if self._state in (EngineState.NEW, EngineState.CLOSED):
            self._state = EngineState.CLOSED
            return
        for request_id in list(self._live):
            self._abort(request_id)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._backend.close()
        self._plugins.notify("sarathi_on_engine_stop", stats=self.stats())
        self._state = EngineState.CLOSED

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
        """End a request now; its stream yields a final output with finish_reason "abort"."""
        self._abort(request_id)

    def stats(self) -> EngineStats:
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
        )

    def _check_running(self) -> None:
        if self._state is EngineState.DEAD:
            raise EngineDeadError("the engine's step loop failed; close it and start a new Engine")
        if self._state is not EngineState.RUNNING:
            raise EngineStateError(f"the engine is {self._state.value}; use `async with Engine(...)`")

    def _add_request(self, prompt: Prompt, params: SamplingParams | None, request_id: str | None,
                     priority: int) -> _Live:
        self._check_running()
        request_id = uuid.uuid4().hex if request_id is None else request_id
        if not isinstance(request_id, str) or request_id in self._live:
            raise InvalidRequestError(f"request id {request_id!r} is not a new string")
        params = SamplingParams() if params is None else params
        prompt_ids = self._admission.tokenize(prompt)
        request = self._admission.make_request(request_id, prompt_ids, params, priority)
        detokenizer = None if self._tokenizer is None else self._tokenizer.detokenizer(prompt_ids)
        live = _Live(request, OutputProcessor(request, detokenizer), RequestStream())
        self._live[request_id] = live
        self._policy.add(request)
        self._plugins.notify("sarathi_on_request_added", request_id=request_id,
                             prompt_token_ids=prompt_ids, sampling_params=params)
        self._wakeup.set()
        return live

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
        loop = asyncio.get_running_loop()
        in_flight: deque[tuple[ScheduledBatch, asyncio.Future[StepOutput]]] = deque()
        try:
            while True:
                while len(in_flight) < self.config.pipeline_parallel_size:
                    batch = self._policy.schedule()
                    if batch.is_empty:
                        break
                    self._record_scheduled(batch)
                    in_flight.append((batch, loop.run_in_executor(self._executor, self._backend.execute, batch)))
                if not in_flight:
                    if self._policy.has_work():
                        raise RuntimeError("the batch policy holds requests but scheduled none")
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch, pending = in_flight.popleft()
                self._process(batch, await pending)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._die(exc)

    def _record_scheduled(self, batch: ScheduledBatch) -> None:
        now = time.perf_counter()
        for chunk in batch.prefills:
            live = self._live.get(chunk.request_id)
            if live is not None and live.request.first_scheduled_time is None:
                live.request.first_scheduled_time = now

    def _process(self, batch: ScheduledBatch, output: StepOutput) -> None:
        """Record a step's tokens and send each request its delta."""
        self._policy.update(batch, output)
        self._num_steps += 1
        self._num_tokens += batch.num_tokens
        now = time.perf_counter()
        for request_id, token_id in output.sampled.items():
            live = self._live.get(request_id)
            if live is None:
                continue
            request = live.request
            request.token_times.append(now)
            try:
                if live.processor.add_token(token_id) and not request.is_finished:
                    self._policy.abort(request_id)
                    request.finish(FinishReason.STOP)
            except Exception as exc:
                self._fail_request(live, exc)
                continue
            logprobs = output.logprobs.get(request_id)
            delta = live.processor.delta((token_id,), None if logprobs is None else (logprobs,),
                                         now if request.is_finished else None)
            if request.is_finished:
                self._finish(live, delta)
            else:
                live.stream.put(delta)
        self._plugins.notify("sarathi_on_step_end", batch=batch, stats=self.stats())

    def _fail_request(self, live: _Live, exc: Exception) -> None:
        request_id = live.request.request_id
        logger.exception("request %s failed", request_id)
        self._policy.abort(request_id)
        del self._live[request_id]
        error = RequestError(f"request {request_id} failed: {exc}")
        error.__cause__ = exc
        live.stream.fail(error)

    def _die(self, exc: BaseException) -> None:
        logger.error("the step loop failed; the engine is dead", exc_info=exc)
        self._state = EngineState.DEAD
        error = EngineDeadError(f"the engine's step loop failed: {exc!r}")
        error.__cause__ = exc
        for live in self._live.values():
            live.stream.fail(error)
        self._live.clear()


def _required(obj: Any, what: str) -> Any:
    if obj is None:
        raise PluginError(f"no plugin provides a {what}")
    return obj


__all__ = ["Engine", "EngineState"]
