"""The Triton kernels against a float64 torch reference at tiny shapes (the interpreter without CUDA):
random block tables, ragged chunks starting mid-block, contexts that are not whole blocks, GQA 1/2/4,
sliding windows, a head size that is not a power of two."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from sarathi_triton.attention import paged_attention, step_sequences, write_kv
from tests.triton.reference import reference_attention

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _mixed_step(rng: random.Random, block_size: int, chunks: list[tuple[int, int]], decodes: list[int],
                num_blocks: int):
    """chunks: (start_pos, length); decodes: context lengths. Each sequence gets distinct random blocks.
    Returns the context object the model backend would build, and (q_start, q_len, ctx, table) rows."""
    free = list(range(1, num_blocks))  # block 0 is the padding block
    rng.shuffle(free)
    rows, slots, q_start = [], [], 0
    for start, length in chunks:
        ctx = start + length
        table = [free.pop() for _ in range(-(-ctx // block_size))]
        rows.append((q_start, length, ctx, table))
        slots += [table[p // block_size] * block_size + p % block_size for p in range(start, ctx)]
        q_start += length
    for ctx in decodes:
        table = [free.pop() for _ in range(-(-ctx // block_size))]
        rows.append((q_start, 1, ctx, table))
        slots.append(table[(ctx - 1) // block_size] * block_size + (ctx - 1) % block_size)
        q_start += 1

    def padded(tables):
        width = max((len(t) for t in tables), default=1)
        return torch.tensor([t + [0] * (width - len(t)) for t in tables] or [[0]], dtype=torch.int64,
                            device=DEVICE)[: len(tables)]

    context = SimpleNamespace(
        slot_mapping=torch.tensor(slots, dtype=torch.int64, device=DEVICE),
        num_prefill_tokens=sum(length for _, length in chunks),
        prefill_query_starts=tuple(r[0] for r in rows[: len(chunks)]),
        prefill_query_lens=tuple(r[1] for r in rows[: len(chunks)]),
        prefill_context_lens=tuple(r[2] for r in rows[: len(chunks)]),
        prefill_block_tables=padded([r[3] for r in rows[: len(chunks)]]),
        decode_context_lens=torch.tensor(decodes, dtype=torch.int64, device=DEVICE),
        decode_block_tables=padded([r[3] for r in rows[len(chunks):]]),
        num_prefills=len(chunks),
        num_decodes=len(decodes),
    )
    return context, rows


CASES = [
    # (block_size, q heads, kv heads, head_dim, chunks (start, length), decode contexts, window)
    (4, 2, 2, 16, [(0, 7)], [], None),
    (4, 4, 2, 16, [(5, 6), (0, 3)], [9, 1, 4], None),
    (8, 4, 1, 24, [(3, 20)], [17, 33], None),
    (4, 8, 2, 16, [(9, 5)], [6, 13], 5),
    (16, 2, 1, 32, [(0, 40), (17, 18)], [70], None),
]


@pytest.mark.parametrize("block_size,q_heads,kv_heads,head_dim,chunks,decodes,window", CASES)
def test_write_then_attend_matches_float64(block_size, q_heads, kv_heads, head_dim, chunks, decodes, window):
    rng = random.Random(block_size * 1000 + q_heads * 10 + head_dim)
    torch.manual_seed(rng.randrange(1 << 30))
    num_blocks = 64
    context, rows = _mixed_step(rng, block_size, chunks, decodes, num_blocks)
    tokens = rows[-1][0] + rows[-1][1]
    k_cache = torch.randn(num_blocks, block_size, kv_heads, head_dim, device=DEVICE)  # cached prefixes
    v_cache = torch.randn(num_blocks, block_size, kv_heads, head_dim, device=DEVICE)
    q = torch.randn(tokens, q_heads, head_dim, device=DEVICE)  # [T, Hq, D]
    k = torch.randn(tokens, kv_heads, head_dim, device=DEVICE)  # [T, Hkv, D]
    v = torch.randn(tokens, kv_heads, head_dim, device=DEVICE)
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    expected_k.view(-1, kv_heads, head_dim)[context.slot_mapping] = k
    expected_v.view(-1, kv_heads, head_dim)[context.slot_mapping] = v

    write_kv(k, v, k_cache, v_cache, context.slot_mapping)
    assert torch.equal(k_cache, expected_k) and torch.equal(v_cache, expected_v)

    scale = head_dim ** -0.5
    out = paged_attention(q, k_cache, v_cache, step_sequences(context), scale, window)
    expected = reference_attention(q.cpu(), k_cache.cpu(), v_cache.cpu(), rows, scale, window)
    torch.testing.assert_close(out.cpu().double(), expected, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("softcap", [0.5, 3.0])
def test_soft_capped_scores_match_float64(softcap):
    """Gemma 2's cap (c tanh(s / c)) on a mixed step with a window; the low caps bend every score."""
    rng = random.Random(7)
    torch.manual_seed(7)
    context, rows = _mixed_step(rng, 4, [(5, 6), (0, 9)], [9, 3], 64)
    tokens = rows[-1][0] + rows[-1][1]
    k_cache = torch.randn(64, 4, 2, 16, device=DEVICE) * 2  # [NB, BS, Hkv, D]: scores well past the caps
    v_cache = torch.randn(64, 4, 2, 16, device=DEVICE)
    q = torch.randn(tokens, 4, 16, device=DEVICE)  # [T, Hq, D]
    write_kv(torch.randn(tokens, 2, 16, device=DEVICE), torch.randn(tokens, 2, 16, device=DEVICE), k_cache, v_cache,
             context.slot_mapping)
    out = paged_attention(q, k_cache, v_cache, step_sequences(context), 0.25, 6, softcap)
    expected = reference_attention(q.cpu(), k_cache.cpu(), v_cache.cpu(), rows, 0.25, 6, softcap)
    torch.testing.assert_close(out.cpu().double(), expected, atol=2e-5, rtol=2e-5)
    uncapped = reference_attention(q.cpu(), k_cache.cpu(), v_cache.cpu(), rows, 0.25, 6)
    assert (uncapped - expected).abs().max() > 1e-2


def test_negative_slots_are_skipped():
    k = torch.ones(3, 1, 16, device=DEVICE)
    cache_k = torch.zeros(2, 4, 1, 16, device=DEVICE)
    cache_v = torch.zeros(2, 4, 1, 16, device=DEVICE)
    write_kv(k, 2 * k, cache_k, cache_v, torch.tensor([5, -1, 0], device=DEVICE))
    written = cache_k.view(-1, 16)[:, 0]
    assert written.tolist() == [1, 0, 0, 0, 0, 1, 0, 0]
    assert cache_v.view(-1, 16)[5, 0].item() == 2


def test_shape_and_dtype_mismatches_are_refused_before_launch():
    from sarathi_sdk import ConfigError

    k = torch.zeros(2, 2, 16, device=DEVICE)
    cache = torch.zeros(4, 4, 2, 16, device=DEVICE)
    with pytest.raises(ConfigError, match="share a dtype"):
        write_kv(k, k, cache.double(), cache.double(), torch.zeros(2, dtype=torch.int64, device=DEVICE))
    with pytest.raises(ConfigError, match="slot_mapping"):
        write_kv(k, k, cache, cache, torch.zeros(3, dtype=torch.int64, device=DEVICE))
    with pytest.raises(ConfigError, match="multiple"):
        q = torch.zeros(2, 3, 16, device=DEVICE)
        paged_attention(q, cache, cache, None, 1.0, None)


def test_the_gpu_benchmark_says_it_needs_cuda(capsys):
    from sarathi_triton import bench

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run `python -m sarathi_triton.bench` instead")
    assert bench.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
