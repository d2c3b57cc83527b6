"""The step loop: schedule, execute, update, emit, with up to `pipeline_parallel_size` batches in flight.

It runs as one long-lived task in a task group that the engine's task holds from start to close. Each
batch executes on a worker thread
(`anyio.to_thread.run_sync`, through a limiter of one thread per in-flight slot) from its own task in
that group, which also holds the `step_timeout` watchdog: a thread cannot be killed, so a batch past
its deadline is abandoned and reported as a `TimeoutError`. Results are processed in the order the
batches were scheduled. Whatever escapes the loop kills the engine; per-request and observer failures
are caught closer to where they happen.

Imports anyio, the standard library and the contract modules.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from .batch import ScheduledBatch, StepOutput
from .grammar_masks import constrain
from .interfaces import BatchPolicy, KVCacheManager, ModelBackend
from .live_requests import LiveRequests
from .proposals import Speculation
from .request import Request
from .structured_outputs import StructuredOutputBackend, can_roll_back


@dataclass(eq=False, slots=True)
class InFlight:
    """A batch executing on a worker thread, and what came of it once it returned."""

    batch: ScheduledBatch
    requests: list[Request]
    deadline: float
    """anyio clock time by which it must return (`step_timeout`; inf without one). Each in-flight slot
    has its own thread, so the batch starts running as it is submitted."""
    done: anyio.Event | None = None
    """Set when a batch run by a task of its own returns; None for a batch the loop runs itself."""
    output: StepOutput | None = None
    error: BaseException | None = None

    def result(self) -> StepOutput:
        if self.error is not None:
            raise self.error
        assert self.output is not None
        return self.output


class StepLoop:
    """Drives the policy and the backend, and hands each executed batch's tokens to the live requests."""

    def __init__(self, policy: BatchPolicy, kv: KVCacheManager, backend: ModelBackend, live: LiveRequests, *,
                 max_in_flight: int, step_timeout: float | None, on_step_end: Callable[[ScheduledBatch], None],
                 on_death: Callable[[BaseException], None], structured: StructuredOutputBackend | None = None,
                 speculation: Speculation | None = None) -> None:
        self._policy = policy
        self._kv = kv
        self._backend = backend
        self._live = live
        self._structured = structured
        self._speculation = speculation
        self._max_in_flight = max_in_flight
        self._step_timeout = step_timeout
        self._on_step_end = on_step_end
        self.num_steps = 0
        self.num_tokens = 0
        """Tokens (prefill and decode) executed since start."""
        self._on_death = on_death
        self._limiter = anyio.CapacityLimiter(max_in_flight)
        self._wakeup = anyio.Event()
        self._done = anyio.Event()
        self._closing = False

    def wake(self) -> None:
        """New work: stop idling."""
        self._wakeup.set()

    def start(self, task_group: TaskGroup) -> None:
        """Run the loop, and each batch it submits, as tasks of `task_group` (the engine's own)."""
        task_group.start_soon(self._run, task_group, name="sarathi-step-loop")

    async def stop(self) -> None:
        """Let the batches in flight return and be processed, then return; call it with every request
        aborted. On a dead engine the loop has ended already; a step stuck past its watchdog is then
        left to the task group's cancellation, which abandons its thread."""
        self._closing = True
        with anyio.CancelScope(shield=True):  # a cancelled caller still gets every process back
            self._wakeup.set()
            await self._done.wait()

    async def _run(self, task_group: TaskGroup) -> None:
        """The loop's task: whatever escapes the loop kills the engine."""
        try:
            await self._loop(task_group)
        except anyio.get_cancelled_exc_class():
            if not self._closing:  # cancelled from outside (a scope around the engine), not by stop()
                self._on_death(RuntimeError("the step loop was cancelled before close()"))
            raise
        except BaseException as exc:
            self._on_death(exc)
        finally:
            self._done.set()

    async def _loop(self, task_group: TaskGroup) -> None:
        """Until close() with nothing in flight. A batch's requests are out of the policy's reach until
        `update`, so the policy builds each in-flight batch from the requests not in another."""
        in_flight: deque[InFlight] = deque()
        try:
            while True:
                while len(in_flight) < self._max_in_flight:
                    batch = self._policy.schedule()
                    if batch.is_empty:
                        break
                    batch = constrain(batch, self._live.matcher, self._structured)
                    in_flight.append(self._submit(batch, task_group))
                if not in_flight:
                    if self._closing:
                        return
                    if self._policy.has_work():
                        raise RuntimeError("the batch policy holds requests but scheduled none")
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                    continue
                step = in_flight[0]
                if step.done is None:
                    await self._execute(step)
                elif not step.done.is_set() and len(in_flight) < self._max_in_flight:
                    # a slot is free: a request arriving now fills it without waiting for the head
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()  # an arrival, or a batch returning
                    continue
                else:
                    await step.done.wait()
                self._process(step, step.result())
                in_flight.popleft()
                if self._speculation is not None:
                    await self._propose(self._speculation, step.requests)
        finally:
            for step in in_flight:  # never processed: free what only `update` would have freed
                for request in step.requests:
                    self._kv.free(request)

    def _process(self, step: InFlight, output: StepOutput) -> None:
        """Record a step's tokens: the policy advances (and finishes) its requests, each gets its delta."""
        batch = step.batch
        for request_id, reason in output.failed.items():
            self._live.fail(request_id, RuntimeError(f"sampling failed: {reason}"))
        finished = self._policy.update(batch, output)
        if self._speculation is not None:
            self._speculation.record(batch, output, step.requests)
        self.num_steps += 1
        self.num_tokens += batch.num_tokens
        self._live.emit(output, finished, time.perf_counter())
        self._on_step_end(batch)

    async def _propose(self, speculation: Speculation, requests: list[Request]) -> None:
        """Proposals for the step's requests that are decodes now, before the next step is formed
        (speculative decoding runs one batch in flight, so none of them is in another)."""
        decodes = [r for r in requests if r.is_decode and not r.is_finished and not r.proposal
                   and ((matcher := self._live.matcher(r.request_id)) is None or can_roll_back(matcher))]
        planned, counts = speculation.plan(decodes)
        if not planned:
            return
        proposer = speculation.proposer
        if proposer.runs_on_worker_thread:
            proposals = await anyio.to_thread.run_sync(proposer.propose, planned, counts)
        else:
            proposals = proposer.propose(planned, counts)
        speculation.apply(planned, counts, proposals)

    def _submit(self, batch: ScheduledBatch, task_group: TaskGroup) -> InFlight:
        """Start a batch on a worker thread, noting when its requests were first scheduled."""
        now = time.perf_counter()
        requests = [self._live.request(request_id) for request_id in batch.request_ids]
        for request in requests:
            if request.first_scheduled_time is None:
                request.first_scheduled_time = now
        timeout = math.inf if self._step_timeout is None else self._step_timeout
        step = InFlight(batch, requests, anyio.current_time() + timeout)
        if self._max_in_flight > 1:  # with one slot the loop runs the batch itself: no task to spawn
            step.done = anyio.Event()
            task_group.start_soon(self._execute, step, name=f"sarathi-step-{batch.step_id}")
        return step

    async def _execute(self, step: InFlight) -> None:
        """Run one batch; never raises but cancellation, so a task group running it stays whole."""
        try:
            with anyio.CancelScope(deadline=step.deadline) as watchdog:
                step.output = await anyio.to_thread.run_sync(
                    self._backend.execute, step.batch, limiter=self._limiter, abandon_on_cancel=True)
            if watchdog.cancelled_caught:
                step.error = TimeoutError(
                    f"step {step.batch.step_id} exceeded step_timeout ({self._step_timeout} seconds); "
                    "its worker thread cannot be stopped and was abandoned")
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:  # the step loop, not this task, decides what a failed step means
            step.error = exc
        finally:
            if step.done is not None:
                step.done.set()
                self._wakeup.set()
