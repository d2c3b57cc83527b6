"""The structured-output contract: a backend that compiles constraints, and per-request matchers.

A request with `SamplingParams.structured_outputs` gets its constraint compiled before admission
(`StructuredOutputBackend.compile`, on a worker thread: a schema takes milliseconds to seconds; an
invalid one is an `InvalidRequestError` naming the field) and a `GrammarMatcher` of its own. Before
every step the engine asks each matcher whose request samples in that step for the tokens the
grammar allows next, as a row of one bitmask the backend allocated for the step
(`allocate_bitmask`), and hands each row to the model backend on its `PrefillChunk` / `DecodeSlot`
(`allowed_tokens`); the sampler masks every other token before penalties, temperature and the rest.
The token sampled then advances the matcher (`accept`); a matcher that reached its end
(`is_terminated`: the grammar complete and a stop token taken) finishes its request with "stop".

A matcher that also has `rollback(num_tokens)` (xgrammar's and llguidance's do) lets its request
use speculative decoding: the engine steps it through a proposal to mask each proposed position, then
rolls it back (`can_roll_back`).

The bitmask layout is the one xgrammar and llguidance share: int32 words, bit j of word w set when
token 32 w + j is allowed; a token past the row's last word is not allowed.

The bundled backend is `sarathi_structured` (xgrammar); another plugin provides its own through the
`sarathi_make_structured_output_backend` hook.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .structured_params import StructuredOutputsParams


@runtime_checkable
class GrammarMatcher(Protocol):
    """One request's position in its grammar; used on the event-loop thread only."""

    def fill_bitmask(self, bitmask: Any, row: int) -> None:
        """Write the tokens allowed next into row `row` of `bitmask` (see the module docstring)."""
        ...

    def accept(self, token_id: int) -> bool:
        """Advance past a sampled token; False if the grammar does not allow it (the state is kept)."""
        ...

    @property
    def is_terminated(self) -> bool:
        """The grammar is complete and a stop token was accepted: nothing more may follow."""
        ...


def can_roll_back(matcher: GrammarMatcher) -> bool:
    """Whether the matcher also has `rollback(num_tokens)` (undo its last accepted tokens), which
    speculative decoding needs to make masks for proposed tokens; a request whose matcher has not is
    decoded without proposals."""
    return callable(getattr(matcher, "rollback", None))


@runtime_checkable
class StructuredOutputBackend(Protocol):
    """Compiles constraints for one engine's tokenizer and makes matchers for them."""

    def compile(self, params: StructuredOutputsParams) -> Any:
        """The compiled constraint (cached: the same constraint again costs nothing); an
        `InvalidRequestError` naming the field if it does not compile. Called on worker threads."""
        ...

    def matcher(self, compiled: Any) -> GrammarMatcher:
        """A fresh matcher at the start of the compiled constraint."""
        ...

    def allocate_bitmask(self, rows: int) -> Any:
        """A bitmask of `rows` rows covering the tokenizer's vocabulary, for one step."""
        ...
