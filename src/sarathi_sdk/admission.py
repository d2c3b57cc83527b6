"""Admission: turn a prompt and its parameters into a Request, or refuse them with a clear error.

Everything that could make a request fail later, or wait forever, is checked here, before the request
reaches the policy: an empty prompt, token ids outside the vocabulary, a text prompt with no tokenizer,
a length past the model's limit, and a request that could not fit in the whole KV cache even alone.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from .config import EngineConfig
from .errors import InvalidRequestError
from .interfaces import KVCacheSpec, Tokenizer
from .request import Request
from .sampling import SamplingParams

Prompt = str | Sequence[int]


def check_messages(messages: object) -> list[Mapping[str, str]]:
    """A conversation is a non-empty list of {"role": str, "content": str} mappings."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not all(
            isinstance(message.get(key), str) for key in ("role", "content")
        ):
            raise InvalidRequestError(f"message {i} must be a dict with string 'role' and 'content', got {message!r}")
    return list(messages)


class Admission:
    """Validates requests against the limits known once the engine has started."""

    def __init__(self, config: EngineConfig, spec: KVCacheSpec, num_blocks: int,
                 tokenizer: Tokenizer | None) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = spec.vocab_size
        self._max_model_len = config.max_model_len or spec.max_model_len
        self._block_size = config.block_size
        self._num_blocks = num_blocks
        self._arrivals = 0

    def tokenize(self, prompt: Prompt, add_special_tokens: bool = True) -> tuple[int, ...]:
        if isinstance(prompt, str):
            if self._tokenizer is None:
                raise InvalidRequestError("this engine has no tokenizer: give the prompt as a list of token ids")
            token_ids = tuple(self._tokenizer.encode(prompt, add_special_tokens=add_special_tokens))
        elif isinstance(prompt, Sequence) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            token_ids = tuple(prompt)
        else:
            raise InvalidRequestError(f"a prompt is a string or a list of token ids, got {type(prompt).__name__}")
        if not token_ids:
            raise InvalidRequestError("the prompt is empty")
        bad = [t for t in token_ids if t < 0 or (self._vocab_size is not None and t >= self._vocab_size)]
        if bad:
            raise InvalidRequestError(f"token id {bad[0]} is outside the vocabulary of {self._vocab_size} tokens")
        return token_ids

    def make_request(self, request_id: str, prompt_token_ids: tuple[int, ...], params: SamplingParams,
                     priority: int) -> Request:
        if not isinstance(params, SamplingParams):
            raise InvalidRequestError(f"params must be SamplingParams, got {type(params).__name__}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidRequestError(f"priority must be an integer, got {priority!r}")
        if params.stop and self._tokenizer is None:
            raise InvalidRequestError("stop strings need a tokenizer; use stop_token_ids")
        total = len(prompt_token_ids) + params.max_tokens
        if self._max_model_len is not None and total > self._max_model_len:
            raise InvalidRequestError(
                f"prompt ({len(prompt_token_ids)} tokens) plus max_tokens ({params.max_tokens}) exceeds "
                f"max_model_len ({self._max_model_len})"
            )
        blocks = -(-total // self._block_size)
        if blocks > self._num_blocks:
            raise InvalidRequestError(
                f"prompt plus max_tokens ({total} tokens) needs {blocks} KV blocks; the cache has {self._num_blocks}"
            )
        self._arrivals += 1
        eos = frozenset() if self._tokenizer is None else frozenset(self._tokenizer.eos_token_ids)
        return Request(
            request_id=request_id,
            prompt_token_ids=prompt_token_ids,
            sampling_params=params,
            arrival_time=time.perf_counter(),
            arrival_index=self._arrivals,
            priority=priority,
            eos_token_ids=eos,
        )
