"""The "ngram" proposer: prompt lookup decoding, no model.

An answer that summarizes, edits or quotes a text given in the prompt (code edits, retrieval-augmented
answers, a JSON document echoed back) repeats long runs of that text. The proposer looks for the
request's last n tokens (n from `MAX_N` down to `MIN_N`) earlier in its prompt or output, and proposes
the tokens that followed their latest occurrence, as vLLM's prompt lookup (`"ngram"`) and llama.cpp's
`--lookup` do. A proposal costs a dictionary lookup; when nothing matches it proposes nothing, and that
decode verifies nothing.

Each request has an index of the n-grams of its tokens (n-gram -> the position after its latest
occurrence), extended by the tokens added since the previous call, so a call costs the new tokens,
not the whole context. The index lives as long as its request (a weak reference), preemption included:
a request's tokens only grow.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from sarathi_sdk import Request

MIN_N = 2
"""Shortest suffix looked up: a single repeated token predicts the next one too rarely to pay."""
MAX_N = 4
"""Longest suffix looked up; a longer match is tried first, being the likelier to continue."""


@dataclass(eq=False, slots=True)
class _Index:
    """One request's tokens and, per n, n-gram -> the position after its latest occurrence that is not
    the request's own last n tokens."""

    tokens: list[int] = field(default_factory=list)
    ends: dict[int, dict[tuple[int, ...], int]] = field(default_factory=lambda: {n: {} for n in range(MIN_N, MAX_N + 1)})
    num_indexed: int = 0
    """N-grams ending at positions below this are in `ends`."""

    def extend(self, request: Request) -> None:
        """Take in the request's tokens added since the last call, and index every n-gram that ends
        before its last token (the one ending there is the suffix being looked up)."""
        tokens = self.tokens
        if not tokens:
            tokens.extend(request.prompt_token_ids)
        prompt_len = len(request.prompt_token_ids)
        tokens.extend(request.output_token_ids[len(tokens) - prompt_len :])
        last = len(tokens)
        for end in range(max(self.num_indexed, MIN_N), last):
            for n, ends in self.ends.items():
                if end >= n:
                    ends[tuple(tokens[end - n : end])] = end
        self.num_indexed = max(self.num_indexed, last)

    def lookup(self, num_tokens: int) -> tuple[int, ...]:
        """What followed the longest suffix found earlier, at most `num_tokens` tokens; () if none."""
        tokens = self.tokens
        for n in range(MAX_N, MIN_N - 1, -1):
            if len(tokens) <= n:
                continue
            end = self.ends[n].get(tuple(tokens[-n:]))
            if end is not None:
                return tuple(tokens[end : end + num_tokens])
        return ()


class NgramProposer:
    """Prompt lookup; see the module docstring."""

    runs_on_worker_thread = False

    def __init__(self) -> None:
        self._indexes: weakref.WeakKeyDictionary[Request, _Index] = weakref.WeakKeyDictionary()

    def propose(self, requests: Sequence[Request], num_tokens: Sequence[int]) -> list[tuple[int, ...]]:
        proposals = []
        for request, k in zip(requests, num_tokens):
            index = self._indexes.get(request)
            if index is None:
                index = self._indexes[request] = _Index()
            index.extend(request)
            proposals.append(index.lookup(k))
        return proposals

    def close(self) -> None:
        self._indexes.clear()
