"""The tensor encoding of a batch between stages: what the layers need survives, nothing is pickled."""

from __future__ import annotations

import torch

from sarathi_parallel import wire
from sarathi_sdk import DecodeSlot, PrefillChunk, SamplingParams, ScheduledBatch

PARAMS = SamplingParams(temperature=0.7, max_tokens=9)


def test_a_mixed_batch_round_trips_through_int64_tensors():
    batch = ScheduledBatch(
        step_id=42,
        prefills=(PrefillChunk("a", (5, 6, 7), 16, (3, 9), False, PARAMS),
                  PrefillChunk("b", (1,), 0, (4,), True, PARAMS)),
        decodes=(DecodeSlot("c", 11, 40, (1, 2, 8), PARAMS), DecodeSlot("d", 12, 3, (0,), PARAMS)),
    )
    head, body = wire.encode_batch(batch)
    assert head.dtype == body.dtype == torch.int64
    assert body.numel() == wire.body_length(head)
    got = wire.decode_batch(head, body)
    assert got.step_id == 42 and got.num_tokens == batch.num_tokens
    assert [(c.token_ids, c.start_pos, c.block_table, c.is_last_chunk) for c in got.prefills] == [
        (c.token_ids, c.start_pos, c.block_table, c.is_last_chunk) for c in batch.prefills]
    assert [(d.token_id, d.position, d.block_table) for d in got.decodes] == [
        (d.token_id, d.position, d.block_table) for d in batch.decodes]
    assert len(set(got.request_ids)) == 4  # placeholders, but distinct


def test_the_header_carries_the_hidden_states_shape_and_dtype():
    head, _ = wire.encode_batch(ScheduledBatch(step_id=1, decodes=(DecodeSlot("x", 1, 0, (0,), PARAMS),)))
    hidden = torch.zeros(1, 24, dtype=torch.bfloat16)  # [T, H]
    buffer = wire.hidden_buffer(wire.with_hidden(head, hidden), 1, torch.device("cpu"))
    assert buffer.shape == (1, 24) and buffer.dtype == torch.bfloat16


def test_setup_documents_are_json_bytes():
    head, payload = wire.encode_json(wire.CONFIG, {"model": "/m", "block_size": 16, "plugins": ["x"]})
    assert payload.dtype == torch.uint8 and int(head[2]) == payload.numel()
    assert wire.decode_json(payload) == {"model": "/m", "block_size": 16, "plugins": ["x"]}
