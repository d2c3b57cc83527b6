"""What a request's consumer receives: `RequestOutput` deltas, made from sampled tokens.

`OutputProcessor` runs on the event-loop thread. Text is held back while it could still be the start of
a stop string, so a stop string never reaches the app, even split across tokens; the detokenizer
itself holds back bytes of an unfinished UTF-8 character.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .batch import TokenLogprobs
from .interfaces import IncrementalDetokenizer
from .metrics import RequestMetrics
from .request import FinishReason, Request


@dataclass(frozen=True, slots=True)
class RequestOutput:
    """What a stream yields: the text and tokens new since the previous output of the same request.

    `metrics` is set on the final output only (`finished` true). `complete()` returns one
    RequestOutput holding the whole result.
    """

    request_id: str
    text: str
    token_ids: tuple[int, ...]
    finished: bool = False
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprobs, ...] | None = None
    metrics: RequestMetrics | None = None

    @staticmethod
    def concat(outputs: Sequence[RequestOutput]) -> RequestOutput:
        """Consecutive deltas of one request as one delta, built in one pass (not pairwise, which
        would copy the growing text once per delta)."""
        last = outputs[-1]
        logprobs = None
        if any(o.logprobs is not None for o in outputs):
            logprobs = tuple(lp for o in outputs for lp in o.logprobs or ())
        return RequestOutput(
            request_id=last.request_id,
            text="".join(o.text for o in outputs),
            token_ids=tuple(t for o in outputs for t in o.token_ids),
            finished=last.finished,
            finish_reason=last.finish_reason,
            logprobs=logprobs,
            metrics=last.metrics,
        )


class OutputProcessor:
    """Turns one request's sampled tokens into text deltas, watching for its stop strings."""

    def __init__(self, request: Request, detokenizer: IncrementalDetokenizer | None) -> None:
        self._request = request
        self._detokenizer = detokenizer
        self._stops = request.sampling_params.stop
        self._holdback = max((len(s) for s in self._stops), default=1) - 1
        self._text = ""
        self._emitted = 0

    def add_token(self, token_id: int) -> bool:
        """Detokenize a new token; True when the text now contains a stop string (cut before it)."""
        if self._detokenizer is None:
            return False
        searched_from = max(0, len(self._text) - self._holdback)
        self._text += self._detokenizer.add((token_id,))
        if not self._stops:
            return False
        hits = [i for i in (self._text.find(s, searched_from) for s in self._stops) if i >= 0]
        if not hits:
            return False
        self._text = self._text[: min(hits)]
        return True

    def delta(self, token_ids: tuple[int, ...], logprobs: tuple[TokenLogprobs, ...] | None,
              finish_time: float | None) -> RequestOutput:
        """The output since the last delta; final (with metrics) when `finish_time` is given."""
        request = self._request
        finished = finish_time is not None
        metrics = None if finish_time is None else RequestMetrics.of(request, finish_time)
        end = len(self._text) if finished else max(self._emitted, len(self._text) - self._holdback)
        text, self._emitted = self._text[self._emitted : end], end
        return RequestOutput(
            request_id=request.request_id,
            text=text,
            token_ids=token_ids,
            finished=finished,
            finish_reason=request.finish_reason if finished else None,
            logprobs=logprobs,
            metrics=metrics,
        )
