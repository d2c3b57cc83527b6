"""Admission: turn a prompt and its parameters into a Request, or refuse them with a clear error.

Everything that could make a request fail later, or wait forever, is checked here, before the request
reaches the policy: an empty prompt, a prompt that is neither text nor a list of token ids (bytes are
refused, not read as ids), text that is not valid Unicode, token ids outside the vocabulary (stop
token ids too), a text prompt with no tokenizer, more log-probabilities than `max_logprobs`, a length
past the model's limit, and a request that could not fit in the whole KV cache even alone (the KV
manager counts its blocks: it alone knows the block size). Past `max_waiting_requests` a request is
refused as overload.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .checks import is_int
from .config import EngineConfig
from .errors import EngineOverloadedError, InvalidRequestError
from .interfaces import BatchPolicy, KVCacheManager, KVCacheSpec, Tokenizer
from .request import Request
from .sampling import SamplingParams

Prompt = str | Sequence[int]


def check_messages(messages: object) -> list[Mapping[str, Any]]:
    """A conversation is a non-empty list of {"role": str, "content": str} mappings; an assistant
    message that called tools may have `tool_calls` (a list) and no content, and a tool's result is
    {"role": "tool", "content": str, "tool_call_id": str}. Other keys pass to the template as they are."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(f"message {i} must be a dict with string 'role' and 'content', got {message!r}")
        content, calls = message.get("content"), message.get("tool_calls")
        if calls is not None and not (isinstance(calls, Sequence) and not isinstance(calls, (str, bytes))):
            raise InvalidRequestError(f"message {i}: tool_calls must be a list, got {calls!r}")
        if not isinstance(content, str) and not (content is None and calls):
            raise InvalidRequestError(f"message {i} must be a dict with string 'role' and 'content', got {message!r}")
        if content is not None:
            check_unicode(f"message {i}", content)
        check_unicode(f"message {i} role", message["role"])
    return list(messages)


def check_unicode(what: str, text: str) -> None:
    """Text must encode as UTF-8: a lone surrogate (say "\\ud800" from a bad JSON decode) cannot be
    tokenized."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"{what} is not valid Unicode: {exc.reason} at index {exc.start} ({text[exc.start]!r})"
        ) from None


class Admission:
    """Validates requests against the limits known once the engine has started."""

    def __init__(self, config: EngineConfig, spec: KVCacheSpec, kv: KVCacheManager,
                 tokenizer: Tokenizer | None) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = spec.vocab_size
        self._max_model_len = config.max_model_len or spec.max_model_len
        self._max_logprobs = min(config.max_logprobs, spec.vocab_size or config.max_logprobs)
        self._max_waiting = config.max_waiting_requests
        self._kv = kv
        self._arrivals = 0

    def check_capacity(self, policy: BatchPolicy) -> None:
        """Backpressure: refuse a request while `max_waiting_requests` wait, before anything changes."""
        if self._max_waiting is not None and (num_waiting := policy.stats().num_waiting) >= self._max_waiting:
            raise EngineOverloadedError(
                f"{num_waiting} requests are waiting (max_waiting_requests={self._max_waiting}); retry later"
            )

    def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> tuple[int, ...]:
        if isinstance(prompt, str):
            if self._tokenizer is None:
                raise InvalidRequestError("this engine has no tokenizer: give the prompt as a list of token ids")
            check_unicode("the prompt", prompt)
            token_ids = tuple(self._tokenizer.encode(prompt, add_special_tokens=add_special_tokens))
        elif isinstance(prompt, (bytes, bytearray, memoryview)):
            raise InvalidRequestError(
                f"a prompt is a string or a list of token ids, got {type(prompt).__name__}: decode bytes to str first"
            )
        elif isinstance(prompt, Sequence) and all(is_int(t) for t in prompt):
            token_ids = tuple(int(t) for t in prompt)
        else:
            raise InvalidRequestError(f"a prompt is a string or a list of token ids, got {type(prompt).__name__}")
        if not token_ids:
            raise InvalidRequestError("the prompt is empty")
        self._check_vocab("token id", token_ids)
        return token_ids

    def _check_vocab(self, what: str, token_ids: Sequence[int]) -> None:
        bad = [t for t in token_ids if t < 0 or (self._vocab_size is not None and t >= self._vocab_size)]
        if bad:
            raise InvalidRequestError(f"{what} {bad[0]} is outside the vocabulary of {self._vocab_size} tokens")

    def make_request(self, request_id: str, prompt_token_ids: tuple[int, ...], params: SamplingParams,
                     priority: int) -> Request:
        if not isinstance(params, SamplingParams):
            raise InvalidRequestError(f"params must be SamplingParams, got {type(params).__name__}")
        if not is_int(priority):
            raise InvalidRequestError(f"priority must be an integer, got {priority!r}")
        if params.stop and self._tokenizer is None:
            raise InvalidRequestError("stop strings need a tokenizer; use stop_token_ids")
        if params.logprobs is not None and params.logprobs > self._max_logprobs:
            raise InvalidRequestError(
                f"logprobs must be at most max_logprobs ({self._max_logprobs}), got {params.logprobs}"
            )
        self._check_vocab("stop_token_ids: token id", params.stop_token_ids)
        total = len(prompt_token_ids) + params.max_tokens
        if self._max_model_len is not None and total > self._max_model_len:
            raise InvalidRequestError(
                f"prompt ({len(prompt_token_ids)} tokens) plus max_tokens ({params.max_tokens}) exceeds "
                f"max_model_len ({self._max_model_len})"
            )
        eos = frozenset() if self._tokenizer is None else frozenset(self._tokenizer.eos_token_ids)
        request = Request(
            request_id=request_id,
            prompt_token_ids=prompt_token_ids,
            sampling_params=params,
            arrival_time=time.perf_counter(),
            arrival_index=self._arrivals + 1,
            priority=priority,
            eos_token_ids=eos,
        )
        blocks = self._kv.blocks_needed(request, total)
        if blocks > self._kv.num_blocks:
            raise InvalidRequestError(
                f"prompt plus max_tokens ({total} tokens) needs {blocks} KV blocks; the cache has {self._kv.num_blocks}"
            )
        self._arrivals += 1
        return request
