"""Flatten a `ScheduledBatch` into the tensors of one forward pass.

Prefill chunks come first, in batch order, then one token per decode. Index arithmetic runs in numpy on
the host (vectorised over decodes) and each array crosses to the device once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sarathi_sdk import DecodeSlot, PrefillChunk, ScheduledBatch

from .context import AttentionContext


@dataclass(frozen=True, slots=True)
class StepInputs:
    input_ids: torch.Tensor
    """[T] int64: token ids, prefill chunks then decodes."""
    positions: torch.Tensor
    """[T] int64."""
    context: AttentionContext
    sample_indices: torch.Tensor
    """[S] int64: the flat index of each token that samples (last chunk ends, then decodes)."""
    sample_rows: tuple[PrefillChunk | DecodeSlot, ...]
    """What each of those S rows samples for, in the same order."""


def build_step_inputs(batch: ScheduledBatch, block_size: int, device: torch.device) -> StepInputs:
    """The flat tensors of `batch`. A block table too short for its positions is a ValueError: the
    KV-cache manager must allocate before the policy schedules."""
    pre_tables = _padded_tables(
        [(c.request_id, c.block_table, c.start_pos + len(c.token_ids)) for c in batch.prefills], block_size
    )  # [P, max_blocks]
    ids: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    slots: list[np.ndarray] = []
    starts: list[int] = []
    sample_indices: list[int] = []
    rows: list[PrefillChunk | DecodeSlot] = []
    offset = 0
    for i, chunk in enumerate(batch.prefills):
        n = len(chunk.token_ids)
        pos = np.arange(chunk.start_pos, chunk.start_pos + n, dtype=np.int64)  # [n]
        ids.append(np.asarray(chunk.token_ids, dtype=np.int64))
        positions.append(pos)
        slots.append(pre_tables[i, pos // block_size] * block_size + pos % block_size)  # [n]
        starts.append(offset)
        offset += n
        if chunk.is_last_chunk:
            sample_indices.append(offset - 1)
            rows.append(chunk)
    num_prefill_tokens = offset

    num_decodes = len(batch.decodes)
    dec_pos = np.fromiter((d.position for d in batch.decodes), dtype=np.int64, count=num_decodes)  # [N]
    dec_tables = _padded_tables(
        [(d.request_id, d.block_table, d.position + 1) for d in batch.decodes], block_size
    )  # [N, max_blocks]
    ids.append(np.fromiter((d.token_id for d in batch.decodes), dtype=np.int64, count=num_decodes))
    positions.append(dec_pos)
    slots.append(dec_tables[np.arange(num_decodes), dec_pos // block_size] * block_size + dec_pos % block_size)
    sample_indices.extend(range(num_prefill_tokens, num_prefill_tokens + num_decodes))
    rows.extend(batch.decodes)

    def to_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device, non_blocking=True)

    context = AttentionContext(
        block_size=block_size,
        slot_mapping=to_device(np.concatenate(slots)),
        num_prefill_tokens=num_prefill_tokens,
        prefill_query_starts=tuple(starts),
        prefill_query_lens=tuple(len(c.token_ids) for c in batch.prefills),
        prefill_context_lens=tuple(c.start_pos + len(c.token_ids) for c in batch.prefills),
        prefill_block_tables=to_device(pre_tables),
        decode_context_lens=to_device(dec_pos + 1),
        decode_block_tables=to_device(dec_tables),
        decode_max_context_len=int(dec_pos.max()) + 1 if num_decodes else 0,
    )
    return StepInputs(
        input_ids=to_device(np.concatenate(ids)),
        positions=to_device(np.concatenate(positions)),
        context=context,
        sample_indices=to_device(np.asarray(sample_indices, dtype=np.int64)),
        sample_rows=tuple(rows),
    )


def _padded_tables(entries: list[tuple[str, tuple[int, ...], int]], block_size: int) -> np.ndarray:
    """(request_id, block_table, positions it must cover) per entry -> [n, max_blocks] int64, padded
    with block 0; a table too short for its positions is a ValueError."""
    tables = np.zeros((len(entries), max((len(t) for _, t, _ in entries), default=0)), dtype=np.int64)
    for i, (request_id, table, num_positions) in enumerate(entries):
        if len(table) * block_size < num_positions:
            raise ValueError(
                f"request {request_id!r}: block table of {len(table)} blocks of {block_size} tokens "
                f"cannot hold {num_positions} positions"
            )
        tables[i, : len(table)] = table
    return tables
