"""OpenAI response bodies and stream chunks, built from the engine's `RequestOutput`s.

One `Reply` per request knows its endpoint ("chat" or "completion"), id, model and options, and turns
outputs into plain dicts: the whole response, or the chunks of a stream (for chat: a first chunk with
the role, one per text delta, one with the finish reason, and a usage chunk when asked). Usage counts
come from the final output's metrics: the prompt's tokens as the engine admitted them (template
applied), and every generated token, a stop string's included.

Imports only the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import RequestOutput
from ..batch import TokenLogprobs
from ..interfaces import Tokenizer
from .tool_calls import ToolReply

FLOOR_LOGPROB = -9999.0
"""Stands in for -inf, which JSON cannot carry."""


class TokenTexts:
    """The text of single tokens, for log-probabilities; cached, the vocabulary being fixed."""

    def __init__(self, tokenizer: Tokenizer | None) -> None:
        self._tokenizer = tokenizer
        self._cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self._cache.get(token_id)
        if text is None:
            if self._tokenizer is None:
                text = f"token_id:{token_id}"
            else:
                text = self._tokenizer.decode([token_id], skip_special_tokens=False)
            self._cache[token_id] = text
        return text


def usage(output: RequestOutput, *, generated: int | None = None) -> dict[str, int]:
    metrics = output.metrics
    prompt = metrics.num_prompt_tokens if metrics is not None else 0
    completion = metrics.num_generated_tokens if metrics is not None else (generated or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finite(logprob: float) -> float:
    return logprob if math.isfinite(logprob) else FLOOR_LOGPROB


@dataclass
class Reply:
    """Response bodies of one request."""

    endpoint: Literal["chat", "completion"]
    id: str
    model: str
    created: int
    token_texts: TokenTexts
    top_logprobs: int | None = None
    """None: no logprobs; n: the sampled token's and the top n."""
    include_usage: bool = False
    tools: ToolReply | None = None
    """A chat request with tools: its output read for tool calls."""
    _text_offset: int = field(default=0, init=False)

    def response(self, output: RequestOutput) -> dict[str, Any]:
        """The non-streaming body, from the whole result (`RequestOutput.concat` of the stream)."""
        choice: dict[str, Any] = {"index": 0}
        finish = _finish_reason(output)
        if self.endpoint == "chat" and self.tools is not None:
            choice["message"], finish = self.tools.message(output.text, finish)
        elif self.endpoint == "chat":
            choice["message"] = {"role": "assistant", "content": output.text}
        else:
            choice["text"] = output.text
        choice["logprobs"] = self._logprobs(output.logprobs)
        choice["finish_reason"] = finish
        body = self._envelope("chat.completion" if self.endpoint == "chat" else "text_completion", [choice])
        body["usage"] = usage(output, generated=len(output.token_ids))
        return body

    def first_chunks(self) -> list[dict[str, Any]]:
        """What a stream sends before any text: chat announces the assistant role."""
        if self.endpoint != "chat":
            return []
        return [self._chunk({"delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None})]

    def chunks(self, output: RequestOutput) -> list[dict[str, Any]]:
        """The stream chunks of one delta: its text (if any), then the finish reason on the last one."""
        chunks = []
        logprobs = self._logprobs(output.logprobs) if output.logprobs else None
        finish = _finish_reason(output) if output.finished else None
        if self.endpoint == "chat" and self.tools is not None:
            deltas = self.tools.deltas(output.text)
            if output.finished:
                held, finish = self.tools.finish(finish)
                deltas += held
            for i, delta in enumerate(deltas):
                chunks.append(self._chunk({"delta": delta, "logprobs": logprobs if i == 0 else None,
                                           "finish_reason": None}))
            if output.finished:
                chunks.append(self._chunk({"delta": {}, "logprobs": None, "finish_reason": finish}))
        elif self.endpoint == "chat":
            if output.text or logprobs is not None:
                chunks.append(self._chunk({"delta": {"content": output.text}, "logprobs": logprobs,
                                           "finish_reason": None}))
            if output.finished:
                chunks.append(self._chunk({"delta": {}, "logprobs": None, "finish_reason": finish}))
        elif output.text or logprobs is not None or output.finished:
            chunks.append(self._chunk({"text": output.text, "logprobs": logprobs, "finish_reason": finish}))
        return chunks

    def usage_chunk(self, final: RequestOutput, generated: int) -> dict[str, Any]:
        body = self._envelope(self._chunk_object, [])
        body["usage"] = usage(final, generated=generated)
        return body

    @property
    def _chunk_object(self) -> str:
        return "chat.completion.chunk" if self.endpoint == "chat" else "text_completion"

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        body = self._envelope(self._chunk_object, [{"index": 0, **choice}])
        if self.include_usage:
            body["usage"] = None
        return body

    def _envelope(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices}

    def _logprobs(self, logprobs: Sequence[TokenLogprobs] | None) -> dict[str, Any] | None:
        if self.top_logprobs is None or logprobs is None:
            return None
        if self.endpoint == "chat":
            return {"content": [self._chat_token(lp) for lp in logprobs]}
        return self._completion_logprobs(logprobs)

    def _chat_token(self, lp: TokenLogprobs) -> dict[str, Any]:
        entry = self._token_entry(lp.token_id, lp.logprob)
        entry["top_logprobs"] = [self._token_entry(t, p) for t, p in lp.top[: self.top_logprobs]]
        return entry

    def _token_entry(self, token_id: int, logprob: float) -> dict[str, Any]:
        text = self.token_texts(token_id)
        return {"token": text, "logprob": _finite(logprob), "bytes": list(text.encode("utf-8", "replace"))}

    def _completion_logprobs(self, logprobs: Sequence[TokenLogprobs]) -> dict[str, Any]:
        tokens, token_logprobs, top, offsets = [], [], [], []
        for lp in logprobs:
            text = self.token_texts(lp.token_id)
            tokens.append(text)
            token_logprobs.append(_finite(lp.logprob))
            top.append({self.token_texts(t): _finite(p) for t, p in lp.top[: self.top_logprobs]})
            offsets.append(self._text_offset)
            self._text_offset += len(text)
        return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}


def _finish_reason(output: RequestOutput) -> str | None:
    return None if output.finish_reason is None else str(output.finish_reason)
