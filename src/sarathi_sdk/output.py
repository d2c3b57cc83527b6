"""Per-request output: incremental detokenization, stop strings, and the stream the app reads.

Runs on the event-loop thread. Text is held back while it could still be the start of a stop string,
so a stop string never reaches the app, even split across tokens; the detokenizer itself holds back
bytes of an unfinished UTF-8 character. When the app reads slower than tokens arrive, the deltas
waiting in its stream are merged into one.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .batch import TokenLogprobs
from .interfaces import IncrementalDetokenizer
from .request import FinishReason, Request, RequestMetrics, RequestOutput


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
        end = len(self._text) if finished else max(self._emitted, len(self._text) - self._holdback)
        text, self._emitted = self._text[self._emitted : end], end
        return RequestOutput(
            request_id=request.request_id,
            text=text,
            token_ids=token_ids,
            finished=finished,
            finish_reason=request.finish_reason if finished else None,
            logprobs=logprobs,
            metrics=RequestMetrics.of(request, finish_time) if finished else None,
        )


class RequestStream:
    """The queue between the step loop and one `generate()` consumer."""

    def __init__(self) -> None:
        self._items: deque[RequestOutput] = deque()
        self._error: BaseException | None = None
        self._ready = asyncio.Event()

    def put(self, output: RequestOutput) -> None:
        self._items.append(output)
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.set()

    async def get(self) -> RequestOutput:
        """The waiting deltas merged into one; raises the stream's error once they are read."""
        await self._ready.wait()
        if not self._items and self._error is not None:
            raise self._error
        output = self._items[0] if len(self._items) == 1 else RequestOutput.concat(self._items)
        self._items.clear()
        if self._error is None:
            self._ready.clear()
        return output


def aborted_output(request: Request, processor: OutputProcessor, finish_time: float) -> RequestOutput:
    """The final output of a request that ended without a new token."""
    if request.finish_reason is None:
        request.finish(FinishReason.ABORT)
    return processor.delta((), None, finish_time)
