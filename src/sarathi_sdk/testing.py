"""FakeBackend: a deterministic model backend with no model, for testing plugins and apps.

It honours the batch contract exactly. It keeps a real paged "KV cache" of token ids: each chunk and
decode writes its tokens into the slots its block table names, and reads its whole context back
through the block table before choosing a token. The chosen token is a hash of that context, so a
wrong block table, a block shared by two live requests or a chunk out of order changes the output or
raises, instead of passing silently. Same context, same token: whatever the batch composition. A row
with a grammar mask (`allowed_tokens`) gets the first allowed token at or after the hash, as a sampler
that honours the mask would. A decode's proposed tokens are verified as a model backend does
(`sarathi_sdk.speculative`): each row samples its position's token, so speculation never changes
the tokens.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .batch import DecodeSlot, PrefillChunk, ScheduledBatch, StepOutput
from .config import EngineConfig
from .interfaces import KVCacheSpec
from .speculative import expand_proposals, verify_proposals


class FakeBackendError(RuntimeError):
    """The batch broke the contract (a slot read before it was written), or failure was requested."""


class FakeBackend:
    """`execute` sleeps `step_delay` seconds per step and raises at step `fail_at_step` (1-based)."""

    def __init__(
        self,
        vocab_size: int = 1000,
        step_delay: float = 0.0,
        fail_at_step: int | None = None,
        num_blocks: int = 1024,
        max_model_len: int | None = None,
    ) -> None:
        self.vocab_size = vocab_size
        self.step_delay = step_delay
        self.fail_at_step = fail_at_step
        self._num_blocks = num_blocks
        self._max_model_len = max_model_len
        self._block_size = 0
        self._cache: list[list[int | None]] = []
        self.num_steps = 0
        self.batches: list[ScheduledBatch] = []
        """Every batch executed, for tests that inspect what the policy formed."""

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec:
        return KVCacheSpec(
            bytes_per_block=config.block_size * 8,
            num_blocks=self._num_blocks,
            max_model_len=self._max_model_len,
            vocab_size=self.vocab_size,
        )

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        self._block_size = config.block_size
        self._cache = [[None] * config.block_size for _ in range(num_blocks)]

    def execute(self, batch: ScheduledBatch) -> StepOutput:
        self.num_steps += 1
        self.batches.append(batch)
        if self.step_delay:
            time.sleep(self.step_delay)
        if self.fail_at_step is not None and self.num_steps >= self.fail_at_step:
            raise FakeBackendError(f"failure requested at step {self.fail_at_step}")
        batch = expand_proposals(batch)
        rows: list[PrefillChunk | DecodeSlot] = []
        tokens: list[int | None] = []
        for chunk in batch.prefills:
            self._write(chunk.block_table, chunk.start_pos, chunk.token_ids)
            if chunk.is_last_chunk:
                end = chunk.start_pos + len(chunk.token_ids)
                rows.append(chunk)
                tokens.append(self._allowed(self._next_token(chunk.block_table, end), chunk.allowed_tokens))
        for slot in batch.decodes:  # a proposal's rows: every write before any read, as a model's layers do
            self._write(slot.block_table, slot.position, (slot.token_id,))
        for slot in batch.decodes:
            rows.append(slot)
            tokens.append(self._allowed(self._next_token(slot.block_table, slot.position + 1), slot.allowed_tokens))
        return verify_proposals(batch.step_id, rows, tokens, [None] * len(rows))

    def close(self) -> None:
        self._cache = []

    def _write(self, block_table: tuple[int, ...], start: int, token_ids: tuple[int, ...]) -> None:
        for offset, token_id in enumerate(token_ids):
            block, slot = divmod(start + offset, self._block_size)
            self._cache[block_table[block]][slot] = token_id

    def _allowed(self, token: int, mask: Any) -> int:
        """`token`, or with a mask (int32 words, bit j of word w for token 32 w + j) the first allowed
        token from it on, wrapping around."""
        if mask is None:
            return token
        for offset in range(self.vocab_size):
            candidate = (token + offset) % self.vocab_size
            word, bit = divmod(candidate, 32)
            if word < len(mask) and (int(mask[word]) >> bit) & 1:
                return candidate
        raise FakeBackendError("the grammar mask allows no token")

    def _next_token(self, block_table: tuple[int, ...], length: int) -> int:
        context: list[int | None] = []
        for block in range(-(-length // self._block_size)):
            context.extend(self._cache[block_table[block]])
        context = context[:length]
        if None in context:
            raise FakeBackendError(f"position {context.index(None)} read before it was written")
        digest = hashlib.blake2b(repr(context).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.vocab_size
