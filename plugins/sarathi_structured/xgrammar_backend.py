"""`StructuredOutputBackend` on xgrammar, with an LRU cache of compiled constraints.

xgrammar (what vLLM and SGLang use by default) compiles a constraint against the tokenizer's
vocabulary once, into per-state token masks it mostly precomputes, so a step's mask costs
microseconds (1.6 us for a JSON schema's first state over SmolLM2's 49,152 tokens, 2026-12-07).

How each kind compiles:
- `json`: `compile_json_schema` in strict mode (an object without `additionalProperties` takes only
  its listed properties, as OpenAI's strict schemas do) and without free whitespace between tokens:
  with it, a small model sampling at temperature 1 can write whitespace until `max_tokens`;
- `json_object`: the schema {"type": "object"} with any properties;
- `regex`: `compile_regex`; `choice`: an EBNF alternation of the strings as literals;
- `grammar`: `compile_grammar` (EBNF, start rule `root`).

The vocabulary is the tokenizer's `token_bytes()` read as raw bytes; its end-of-sequence ids are the
grammar's stop tokens, so a request ends when its grammar is complete and the model stops.

Imports numpy, the standard library and the public `sarathi_sdk` API; xgrammar when first used.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence, Set
from typing import Any

import numpy as np

from sarathi_sdk import InvalidRequestError, StructuredOutputsParams

_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")
"""xgrammar's messages start with its log line's time and source position: "[14:43:27] /project/cpp/x.cc:94: "."""
CACHE_SIZE = 128
"""Compiled constraints kept (least recently used dropped first): an agent's few schemas, many turns."""


class XGrammarMatcher:
    """One request's `xgrammar.GrammarMatcher`, in the `GrammarMatcher` protocol."""

    def __init__(self, matcher: Any) -> None:
        self._matcher = matcher

    def fill_bitmask(self, bitmask: Any, row: int) -> None:
        self._matcher.fill_next_token_bitmask(bitmask, row)

    def accept(self, token_id: int) -> bool:
        return bool(self._matcher.accept_token(token_id))

    @property
    def is_terminated(self) -> bool:
        return bool(self._matcher.is_terminated())

    def rollback(self, num_tokens: int) -> None:
        """Undo the last `num_tokens` accepted tokens (speculative decoding's proposals)."""
        self._matcher.rollback(num_tokens)


class XGrammarBackend:
    """Compiles constraints for one tokenizer; `compiles` and `cache_hits` count what `compile` did."""

    def __init__(self, token_bytes: Callable[[], Sequence[bytes]], eos_token_ids: Set[int]) -> None:
        self._token_bytes = token_bytes
        self._eos_token_ids = sorted(eos_token_ids)
        self._compiler: Any = None
        self._words = 0
        self._cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._compiling: dict[tuple[str, str], threading.Lock] = {}
        """A lock per constraint being compiled."""
        self._lock = threading.Lock()
        self.compiles = 0
        self.cache_hits = 0

    def compile(self, params: StructuredOutputsParams) -> Any:
        """Compiled once per constraint: callers of a constraint being compiled wait for it (20
        requests with a new schema arriving together compiled it 2-8 times before)."""
        key = params.key
        with self._lock:
            one_at_a_time = self._compiling.setdefault(key, threading.Lock())
        with one_at_a_time:
            with self._lock:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    self.cache_hits += 1
                    return self._cache[key]
                compiler = self._ensure_compiler()
            try:
                compiled = _compile(compiler, params)
            except Exception as exc:  # xgrammar raises RuntimeError (and its own types) with the parser's message
                with self._lock:
                    self._compiling.pop(key, None)
                message = _LOG_PREFIX.sub("", str(exc).strip()) or type(exc).__name__
                raise InvalidRequestError(f"structured_outputs.{params.kind} does not compile: {message}") from None
            with self._lock:  # cached before the key's lock goes: a caller arriving now finds it
                self.compiles += 1
                self._cache[key] = compiled
                self._compiling.pop(key, None)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
            return compiled

    def matcher(self, compiled: Any) -> XGrammarMatcher:
        import xgrammar

        return XGrammarMatcher(xgrammar.GrammarMatcher(compiled))

    def allocate_bitmask(self, rows: int) -> np.ndarray:
        """int32 [rows, ceil(V / 32)], every token allowed until a matcher fills its row."""
        return np.full((rows, self._words), -1, dtype=np.int32)

    def _ensure_compiler(self) -> Any:
        """xgrammar's compiler for this vocabulary, built on first use: 0.9 s for SmolLM2's 49,152 tokens,
        0.8 s of it importing xgrammar (which imports transformers), 2026-12-07."""
        if self._compiler is None:
            import xgrammar

            vocab = list(self._token_bytes())
            info = xgrammar.TokenizerInfo(vocab, xgrammar.VocabType.RAW, vocab_size=len(vocab),
                                          stop_token_ids=self._eos_token_ids)
            self._compiler = xgrammar.GrammarCompiler(info, max_threads=2, cache_enabled=False)
            self._words = -(-len(vocab) // 32)
        return self._compiler


def _compile(compiler: Any, params: StructuredOutputsParams) -> Any:
    if params.json is not None:
        return compiler.compile_json_schema(params.json, any_whitespace=False, strict_mode=True)
    if params.json_object:
        return compiler.compile_json_schema('{"type": "object"}', any_whitespace=False, strict_mode=False)
    if params.regex is not None:
        return compiler.compile_regex(params.regex)
    if params.choice is not None:
        literals = " | ".join(json.dumps(choice, ensure_ascii=False) for choice in params.choice)
        return compiler.compile_grammar(f"root ::= {literals}")
    return compiler.compile_grammar(params.grammar)
