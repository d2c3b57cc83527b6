"""SamplingParams: how one request picks its tokens, validated before admission.

Field names and defaults follow vLLM so that code moves over unchanged. The sampler itself runs in the
model backend, on the device; this module only describes and checks what is asked for.

Imports only the standard library, `checks`, `errors` and `structured_params`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from .checks import is_finite_number, is_int
from .errors import InvalidRequestError
from .structured_params import StructuredOutputsParams

T = TypeVar("T")

MAX_STOP_STRINGS = 64
"""Most stop strings one request may give: each is searched in every new piece of text."""
MAX_STOP_STRING_CHARS = 1024
"""Longest stop string: the detokenizer holds back up to this many characters of output."""
MAX_SEED = 2**64 - 1
"""Seeds are 64-bit: the sampler hashes them as unsigned 64-bit integers."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request sampling options; `temperature=0` is greedy."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    """-1 keeps every token."""
    min_p: float = 0.0
    seed: int | None = None
    """Same seed, same tokens, whatever else runs in the batch."""
    stop: tuple[str, ...] = ()
    """Strings that end the output; the stop string itself is not emitted."""
    stop_token_ids: tuple[int, ...] = ()
    """Token ids that end the output (the token is emitted, as for EOS)."""
    ignore_eos: bool = False
    logprobs: int | None = None
    """Return the log-probability of the sampled token and of the top-n tokens."""
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    structured_outputs: StructuredOutputsParams | None = None
    """A constraint the output must follow: a JSON schema, regex, choice or grammar (see
    `StructuredOutputsParams`)."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", _tuple_of("stop", self.stop, str))
        object.__setattr__(self, "stop_token_ids", _tuple_of("stop_token_ids", self.stop_token_ids, int))
        _check(is_int(self.max_tokens) and self.max_tokens >= 1, "max_tokens must be an integer >= 1", self.max_tokens)
        _check(is_finite_number(self.temperature) and self.temperature >= 0, "temperature must be a finite number >= 0",
               self.temperature)
        _check(is_finite_number(self.top_p) and 0 < self.top_p <= 1, "top_p must be in (0, 1]", self.top_p)
        _check(is_int(self.top_k) and (self.top_k == -1 or self.top_k >= 1), "top_k must be -1 or >= 1", self.top_k)
        _check(is_finite_number(self.min_p) and 0 <= self.min_p <= 1, "min_p must be in [0, 1]", self.min_p)
        _check(self.seed is None or (is_int(self.seed) and 0 <= self.seed <= MAX_SEED),
               "seed must be None or an integer in [0, 2**64 - 1]", self.seed)
        _check(len(self.stop) <= MAX_STOP_STRINGS, f"stop takes at most {MAX_STOP_STRINGS} strings",
               f"{len(self.stop)} strings")
        _check(all(s for s in self.stop), "stop strings must be non-empty", self.stop)
        _check(all(len(s) <= MAX_STOP_STRING_CHARS for s in self.stop),
               f"stop strings must be at most {MAX_STOP_STRING_CHARS} characters", [len(s) for s in self.stop])
        _check(all(_is_unicode(s) for s in self.stop), "stop strings must be valid Unicode (no lone surrogates)",
               self.stop)
        _check(all(t >= 0 for t in self.stop_token_ids), "stop_token_ids must be >= 0", self.stop_token_ids)
        _check(self.logprobs is None or (is_int(self.logprobs) and self.logprobs >= 0),
               "logprobs must be None or an integer >= 0", self.logprobs)
        _check(is_finite_number(self.repetition_penalty) and self.repetition_penalty > 0,
               "repetition_penalty must be a finite number > 0", self.repetition_penalty)
        _check(is_finite_number(self.presence_penalty) and -2 <= self.presence_penalty <= 2,
               "presence_penalty must be in [-2, 2]", self.presence_penalty)
        _check(is_finite_number(self.frequency_penalty) and -2 <= self.frequency_penalty <= 2,
               "frequency_penalty must be in [-2, 2]", self.frequency_penalty)
        _check(isinstance(self.ignore_eos, bool), "ignore_eos must be True or False", self.ignore_eos)
        _check(self.structured_outputs is None or isinstance(self.structured_outputs, StructuredOutputsParams),
               "structured_outputs must be None or StructuredOutputsParams", self.structured_outputs)

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0

    @property
    def needs_output_history(self) -> bool:
        """Whether the sampler must see the tokens generated so far (the penalties do)."""
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(ok: bool, message: str, value: object) -> None:
    """Refuse with a message that names the field (every message starts with it) and the value."""
    if not ok:
        raise InvalidRequestError(f"{message}, got {value!r}")


def _tuple_of(name: str, values: Iterable[object], kind: type[T]) -> tuple[T, ...]:
    try:
        items = tuple(values)
    except TypeError:
        raise InvalidRequestError(f"{name} must be a list of {kind.__name__}, got {values!r}") from None
    checked = tuple(v for v in items if isinstance(v, kind) and not isinstance(v, bool))
    if len(checked) != len(items):
        raise InvalidRequestError(f"{name} must be a list of {kind.__name__}, got {values!r}")
    return checked
