"""The requests the engine is serving, each with its output side: deltas out, finishes, failures.

Runs on the event-loop thread, between steps. The batch policy owns every finish and its reason (see
`BatchPolicy.abort`); this table only turns what the policy decided into stream items: a delta per
sampled token, the final output (with metrics) of a finished request, `RequestError` for a request
whose output work failed, `EngineDeadError` for all when the engine dies.

Imports the standard library and the contract modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .batch import StepOutput, TokenLogprobs
from .errors import RequestError
from .interfaces import BatchPolicy, IncrementalDetokenizer
from .output import OutputProcessor, RequestOutput
from .request import FinishReason, Request
from .streams import RequestStream
from .structured_outputs import GrammarMatcher

logger = logging.getLogger(__name__)

Notify = Callable[..., None]


@dataclass(eq=False, slots=True)
class LiveRequest:
    """A request being served, with the processor making its deltas and the stream carrying them."""

    request: Request
    processor: OutputProcessor
    stream: RequestStream
    matcher: GrammarMatcher | None = None
    """Its grammar's state when it asked for structured output; it goes when the request ends."""
    num_emitted: int = 0
    """Tokens sent to the stream so far."""


class LiveRequests:
    """Request id -> `LiveRequest`, for every request admitted and not yet ended."""

    def __init__(self, policy: BatchPolicy, notify: Notify) -> None:
        self._policy = policy
        self._notify = notify
        self._live: dict[str, LiveRequest] = {}

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._live

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._live))

    def request(self, request_id: str) -> Request:
        return self._live[request_id].request

    def add(self, request: Request, detokenizer: IncrementalDetokenizer | None,
            matcher: GrammarMatcher | None = None) -> LiveRequest:
        live = LiveRequest(request, OutputProcessor(request, detokenizer), RequestStream(), matcher)
        self._live[request.request_id] = live
        return live

    def matcher(self, request_id: str) -> GrammarMatcher | None:
        """The request's grammar matcher; None for an unconstrained (or ended) request."""
        live = self._live.get(request_id)
        return None if live is None else live.matcher

    def emit(self, output: StepOutput, finished: Sequence[Request], now: float) -> None:
        """Send each request of a step its new tokens (a verification's accepted tokens, then the
        sampled one) in one delta; end the streams of those the policy finished, and of those whose
        text now holds a stop string or whose grammar has ended (the policy ends them with "stop")."""
        ended = {request.request_id for request in finished}
        for request_id in output.sampled:
            live = self._live.get(request_id)
            if live is None:
                continue  # aborted while its batch ran
            try:
                self._emit(live, output, now, ended)
            except Exception as exc:
                self.fail(request_id, exc)

    def _emit(self, live: LiveRequest, output: StepOutput, now: float, ended: set[str]) -> None:
        request = live.request
        request_id = request.request_id
        # the tokens the policy recorded: a verified run stops at a stop token or `max_tokens`
        tokens = output.new_tokens(request_id)[: len(request.output_token_ids) - live.num_emitted]
        logprobs: tuple[TokenLogprobs, ...] | None = None
        if request_id in output.logprobs:
            logprobs = output.accepted_logprobs.get(request_id, ()) + (output.logprobs[request_id],)
        stopped, count = False, 0
        for count, token_id in enumerate(tokens, start=1):
            request.token_times.append(now)
            grammar_ended = False
            if live.matcher is not None:
                if not live.matcher.accept(token_id):
                    raise RuntimeError(f"the sampled token {token_id} is outside the request's grammar")
                grammar_ended = live.matcher.is_terminated
            stopped = live.processor.add_token(token_id) or grammar_ended
            if stopped:
                break
        if count < len(tokens):  # a stop string ended the text inside a verified run: the rest never was
            tokens = tokens[:count]
            del request.output_token_ids[live.num_emitted + count :]
        if logprobs is not None:
            logprobs = logprobs[: len(tokens)]
        live.num_emitted += len(tokens)
        if stopped and request_id not in ended:
            self._policy.abort(request_id, FinishReason.STOP)
            ended.add(request_id)
        done = request_id in ended
        delta = live.processor.delta(tokens, logprobs, now if done else None)
        if done:
            self._end(live, delta)
        else:
            live.stream.put(delta)

    def abort(self, request_id: str) -> None:
        """End a request now with "abort": out of the policy, its final output to its stream."""
        live = self._live.get(request_id)
        if live is None:
            return
        self._policy.abort(request_id)
        self._end(live, live.processor.delta((), None, time.perf_counter()))

    def fail(self, request_id: str, exc: Exception) -> None:
        """End one request with `RequestError`, freeing its blocks; the others go on."""
        live = self._live.pop(request_id, None)
        if live is None:
            return
        logger.error("request %s failed; the engine goes on", request_id, exc_info=exc)
        self._policy.abort(request_id)
        error = RequestError(f"request {request_id} failed: {exc}")
        error.__cause__ = exc
        live.stream.fail(error)

    def fail_all(self, error: Callable[[], BaseException]) -> None:
        """End every stream with a fresh `error()` and take every request out of the policy."""
        live, self._live = self._live, {}
        for entry in live.values():
            entry.stream.fail(error())
        for request_id in live:
            self._policy.abort(request_id)

    def _end(self, live: LiveRequest, output: RequestOutput) -> None:
        del self._live[live.request.request_id]
        live.stream.put(output)
        self._notify("sarathi_on_request_finished", request_id=output.request_id, output=output)
