"""The Protocols that plugins implement: batch policy, KV-cache manager, model backend (and its
pipeline stages), tokenizer.

Each is a handful of methods, so a plugin author can hold one in their head. The engine talks to its
parts only through these; the parts talk to each other only through `Request` (policy and KV manager)
and the batch contract (policy and backend).

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .batch import ScheduledBatch, StepOutput
from .request import FinishReason, Request

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
    max_decode_rows: int | None = None
    """Most decode rows (decodes and their proposed tokens) one step runs on the backend's fast path,
    where a step of more costs far more per row (the CPU kernels' quantized decode: 16); speculative
    decoding proposes within it. None: no such limit."""
    default_prefix_caching: bool | None = None
    """Whether prefix caching should be on when the user does not say: on where the KV cache's memory
    is committed up front anyway (a GPU), so keeping freed blocks cached costs nothing; None keeps
    `EngineConfig`'s default."""


@dataclass(frozen=True, slots=True)
class PolicyStats:
    """A policy's counts, read by `engine.stats()` between steps, so the engine never looks inside
    the policy's queues."""

    num_waiting: int
    num_running: int
    num_preemptions: int
    num_prompt_tokens: int = 0
    """Prompt tokens of the requests admitted so far (each request once, at its first admission)."""
    num_cached_prompt_tokens: int = 0
    """Of those, the tokens found in the prefix cache (`Request.num_cached_tokens`)."""


@runtime_checkable
class KVCacheManager(Protocol):
    """Paged KV-cache bookkeeping: which blocks each request holds. No tensors, no torch.

    The prefix cache is one method, `match_prefix`, which the policy calls for the request at the
    head of its waiting queue before sizing its first chunk. A manager without a cache returns 0 there.
    With one, blocks are shared between requests and reference-counted: a block is shared only once it
    is full and its KV is written (its tokens are below its request's `num_computed_tokens`), and a
    request writes only at positions from its own `num_computed_tokens` on, into blocks it holds
    alone. So sharing is block-aligned and needs no copy-on-write. `free` drops a request's references;
    a cached block nobody holds counts in `num_free_blocks` and is evicted only for a fresh block.
    """

    @property
    def num_blocks(self) -> int: ...

    def blocks_needed(self, request: Request, num_new_tokens: int) -> int:
        """Blocks `allocate(request, num_new_tokens)` would take now: the one place that knows how
        tokens map onto blocks (admission asks it whether a request could ever fit)."""
        ...

    def num_free_blocks(self) -> int: ...

    def allocate(self, request: Request, num_new_tokens: int) -> bool:
        """Grow `request.block_table` to cover `num_computed_tokens + num_new_tokens` positions.
        False, with nothing changed, when the free blocks do not suffice: the policy preempts."""
        ...

    def free(self, request: Request) -> None:
        """Return every block of the request and empty its block table."""
        ...

    def trim(self, request: Request) -> None:
        """Return the blocks past those holding the request's `num_computed_tokens` positions: after a
        speculative verification, the blocks allocated for proposed tokens it rejected (their KV is
        never read; the positions are written again as the request grows)."""
        ...

    def match_prefix(self, request: Request) -> int:
        """For a request holding no blocks (new, or preempted and queued again): put the cached blocks
        of the longest whole-block prefix of its tokens in its block table, never the block of its
        last token (that token is always computed, for its logits), and return the tokens they hold.
        The policy sets `num_computed_tokens` to the result, so the first chunk starts after them; if
        the request then does not start this step, the policy `free`s it and sets it back to 0."""
        ...


@runtime_checkable
class BatchPolicy(Protocol):
    """Forms each step's batch. Pure Python: owns the waiting and running requests."""

    def add(self, request: Request) -> None: ...

    def abort(self, request_id: str, reason: FinishReason = FinishReason.ABORT) -> Request | None:
        """End the request with `reason` and free its blocks (after its in-flight batch returns, if
        any). Returns it, or None if the policy does not hold it. The policy owns every finish: here
        (an abort, or "stop" when the engine found a stop string in the text) and in `update`."""
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
class PipelineStage(Protocol):
    """A contiguous range of a model's layers, run by one process of a pipeline-parallel engine.

    Every stage sees the same `ScheduledBatch` (the pipeline plugin rebuilds it from tensors in the
    other processes, with placeholder request ids and default sampling parameters) and keeps the KV
    cache of its own layers under the same block ids, so the engine's one KV-cache manager serves
    them all. The first stage also embeds the tokens and, once the last stage is done, samples.
    Tensors are the backend's (torch) tensors; the core never touches them.
    """

    layers: tuple[int, int]
    """The model layers `[first, last)` this stage runs."""

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec:
        """As `ModelBackend.kv_cache_spec`, for this stage's layers only."""
        ...

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        """Allocate this stage's layers' KV cache of `num_blocks` blocks."""
        ...

    def forward(self, batch: ScheduledBatch, hidden: Any) -> Any:
        """Run this stage's layers: `hidden` [T, H] from the previous stage, None on the first stage
        (which embeds `batch`'s token ids). Returns [T, H] for the next stage; the last stage returns
        only the rows that sample, [S, H] (last prefill chunks, then decodes, in batch order)."""
        ...

    def sample(self, batch: ScheduledBatch, hidden: Any) -> StepOutput:
        """First stage only: final norm, LM head and sampler on the last stage's rows [S, H]."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StageStats:
    """One pipeline stage's time while the pipeline had work in flight (a pipeline backend's
    `pipeline_stats()`). Busy is the stage computing a micro-batch; the rest of the in-flight time it
    waited on another stage or on the engine: the pipeline bubble SARATHI's uniform batches shrink."""

    stage_index: int
    layers: tuple[int, int]
    """The model layers `[first, last)` this stage runs."""
    num_micro_batches: int
    busy_seconds: float
    in_flight_seconds: float
    """Wall time with at least one batch in the pipeline, the same for every stage."""

    @property
    def bubble_seconds(self) -> float:
        return max(0.0, self.in_flight_seconds - self.busy_seconds)

    @property
    def bubble_fraction(self) -> float:
        """Share of the in-flight time this stage sat idle; 0 before any batch ran."""
        return self.bubble_seconds / self.in_flight_seconds if self.in_flight_seconds > 0 else 0.0


@runtime_checkable
class IncrementalDetokenizer(Protocol):
    """Turns one request's tokens into text as they arrive: decoding each token alone would split
    multi-byte characters and lose the spaces that depend on the tokens before."""

    def add(self, token_ids: Sequence[int]) -> str:
        """Text the new tokens complete; holds back bytes of an unfinished UTF-8 character."""
        ...


@runtime_checkable
class Tokenizer(Protocol):
    """Text to token ids and back, end-of-sequence ids and the chat template; one per engine, used on
    the event-loop thread only (admission and streaming), never by the backend. A tokenizer that also
    has `token_bytes()` (each token's bytes, by id; b"" for special tokens, as the bundled ones do)
    serves structured outputs with the bundled grammar plugin."""

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str: ...

    def detokenizer(self, prompt_token_ids: Sequence[int]) -> IncrementalDetokenizer: ...

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True) -> str:
        """The conversation as one prompt. A tokenizer whose templates take tools also accepts
        `tools=` (OpenAI's function definitions); the engine passes it only when a request has tools."""
        ...
