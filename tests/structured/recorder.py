"""A plugin object that gives the engine the bundled `XGrammarBackend` and keeps it within the test's
reach: its compile counters, and a weak reference to every matcher it made (so a test can tell that
none outlives its request)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Sequence, Set

from sarathi_sdk import hookimpl
from sarathi_structured.xgrammar_backend import XGrammarBackend, XGrammarMatcher


class Recorder:
    """`vocabulary` and `eos_token_ids` stand in for a tokenizer's (FakeBackend has none)."""

    def __init__(self, vocabulary: Callable[[], Sequence[bytes]] | None = None,
                 eos_token_ids: Set[int] | None = None) -> None:
        self.vocabulary = vocabulary
        self.eos_token_ids = eos_token_ids
        self.backend: XGrammarBackend | None = None
        self.matchers: list[weakref.ref[XGrammarMatcher]] = []

    @hookimpl
    def sarathi_make_structured_output_backend(self, config, tokenizer):
        recorder = self

        class Recording(XGrammarBackend):
            def matcher(self, compiled):
                made = super().matcher(compiled)
                recorder.matchers.append(weakref.ref(made))
                return made

        self.backend = Recording(self.vocabulary or tokenizer.token_bytes,
                                 tokenizer.eos_token_ids if self.eos_token_ids is None else self.eos_token_ids)
        return self.backend

    def live_matchers(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.matchers)
