"""The Protocols that plugins implement: batch policy, KV-cache manager, model backend, tokenizer.

Each is a handful of methods, so a plugin author can hold one in their head. The engine talks to its
parts only through these; the parts talk to each other only through `Request` (policy and KV manager)
and the batch contract (policy and backend).

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .batch import ScheduledBatch, StepOutput
from .request import Request

if TYPE_CHECKING:
    from .config import EngineConfig


@dataclass(frozen=True, slots=True)
class KVCacheSpec:
    """What a backend tells the engine before the KV cache is sized."""

    bytes_per_block: int
    num_blocks: int
    """Blocks that fit in the memory the config allows."""
    max_model_len: int | None = None
    """Longest sequence the model takes; None is no limit."""
    vocab_size: int | None = None
    """Token ids must be below this; None is unchecked."""
    default_token_budget: int | None = None
    """The per-step token budget the backend measures best on its device, used when the user sets no
    `token_budget`; None keeps `EngineConfig`'s default."""


@dataclass(frozen=True, slots=True)
class PolicyStats:
    num_waiting: int
    num_running: int
    num_preemptions: int


@runtime_checkable
class KVCacheManager(Protocol):
    """Paged KV-cache bookkeeping: which blocks each request holds. No tensors, no torch."""

    @property
    def block_size(self) -> int: ...

    @property
    def num_blocks(self) -> int: ...

    def num_free_blocks(self) -> int: ...

    def allocate(self, request: Request, num_new_tokens: int) -> bool:
        """Grow `request.block_table` to cover `num_computed_tokens + num_new_tokens` positions.
        False, with nothing changed, when the free blocks do not suffice: the policy preempts."""
        ...

    def free(self, request: Request) -> None:
        """Return every block of the request and empty its block table."""
        ...


@runtime_checkable
class BatchPolicy(Protocol):
    """Forms each step's batch. Pure Python: owns the waiting and running requests."""

    def add(self, request: Request) -> None: ...

    def abort(self, request_id: str) -> Request | None:
        """Remove the request and free its blocks (after its in-flight batch returns, if any).
        Returns it, or None if the policy does not hold it."""
        ...

    def schedule(self) -> ScheduledBatch:
        """The next step; empty when nothing can run now. Never includes an in-flight request."""
        ...

    def update(self, batch: ScheduledBatch, output: StepOutput) -> list[Request]:
        """Advance the requests of an executed batch by its output; return those that finished
        (their blocks already freed, `finish_reason` set)."""
        ...

    def has_work(self) -> bool: ...

    def stats(self) -> PolicyStats: ...


@runtime_checkable
class ModelBackend(Protocol):
    """Runs batches on a device. `execute` is called on a worker thread, everything else on the loop."""

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec: ...

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        """Allocate the KV cache of `num_blocks` blocks of `config.block_size` tokens."""
        ...

    def execute(self, batch: ScheduledBatch) -> StepOutput: ...

    def close(self) -> None: ...


@runtime_checkable
class IncrementalDetokenizer(Protocol):
    def add(self, token_ids: Sequence[int]) -> str:
        """Text the new tokens complete; holds back bytes of an unfinished UTF-8 character."""
        ...


@runtime_checkable
class Tokenizer(Protocol):
    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str: ...

    def detokenizer(self, prompt_token_ids: Sequence[int]) -> IncrementalDetokenizer: ...

    def apply_chat_template(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
        ...
