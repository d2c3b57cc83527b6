"""The fused CPU kernels against eager torch (the formulas they replace) and a float64 attention
reference: random block tables, contexts that end mid-block, GQA ratios 1 to 4, sliding windows.
Every test runs once per ISA level this CPU can execute (the `fused` fixture of conftest.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


DTYPES = [torch.float32, torch.bfloat16]


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> bool:
    """fp32: to 1e-5. bf16: within one bf16 step of the value (the order of fp32 sums may differ)."""
    if dtype == torch.float32:
        return torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    return bool(((got.float() - want.float()).abs() <= 2.0**-7 * want.float().abs() + 1e-6).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_matches_the_eager_formula(fused, dtype):
    x, w = torch.randn(5, 96).to(dtype), torch.randn(96).to(dtype)
    x32 = x.float()
    want = w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).to(dtype)
    assert _close(fused.rms_norm(x, w, 1e-5), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_and_mul_matches_the_eager_formula(fused, dtype):
    gate_up = torch.randn(4, 2 * 80).to(dtype)
    gate, up = gate_up.chunk(2, dim=-1)
    assert _close(fused.silu_and_mul(gate_up), F.silu(gate) * up, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotary_in_place_on_a_strided_view_matches_rotate_half(fused, dtype):
    t, heads, dim = 6, 3, 32
    projection = torch.randn(t, heads * dim + 17).to(dtype)  # q as a slice of a wider projection
    x = projection[:, : heads * dim].view(t, heads, dim)  # [T, H, D], row stride heads * dim + 17
    angles = torch.randn(t, 1, dim)
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)  # [T, 1, D]
    half = dim // 2
    want = x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin
    tail = projection[:, heads * dim :].clone()
    fused.rotary_(x, cos, sin)
    assert _close(x, want, dtype)
    assert torch.equal(projection[:, heads * dim :], tail)  # the rest of the projection is untouched


def reference_decode_attention(q, k_cache, v_cache, tables, lengths, scale, window):
    """float64, one decode at a time, keys gathered position by position."""
    n, hq, d = q.shape
    bs, hkv = k_cache.shape[1], k_cache.shape[2]
    out = torch.empty(n, hq, d, dtype=torch.float64)
    for i in range(n):
        length = int(lengths[i])
        first = max(0, length - window) if window else 0
        pos = torch.arange(first, length)
        slots = tables[i, pos // bs], pos % bs
        keys = k_cache[slots].double()  # [L, Hkv, D]
        values = v_cache[slots].double()
        for h in range(hq):
            kv = h // (hq // hkv)
            probs = torch.softmax(keys[:, kv] @ q[i, h].double() * scale, dim=0)  # [L]
            out[i, h] = probs @ values[:, kv]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [64, 32])  # 64 takes the AVX-512 path where the CPU has it
@pytest.mark.parametrize(("hq", "hkv"), [(4, 4), (4, 2), (8, 2), (9, 3)])
@pytest.mark.parametrize("window", [0, 7])
def test_decode_attention_reads_the_paged_cache_like_a_float64_reference(fused, dtype, dim, hq, hkv, window):
    gen = torch.Generator().manual_seed(hq * 100 + dim + window)
    num_blocks, bs = 40, 4
    k_cache = torch.randn(num_blocks, bs, hkv, dim, generator=gen).to(dtype)
    v_cache = torch.randn(num_blocks, bs, hkv, dim, generator=gen).to(dtype)
    lengths = torch.tensor([1, 5, 13, 30])  # ending mid-block, a single token, several blocks
    tables = torch.stack([torch.randperm(num_blocks, generator=gen)[:8] for _ in lengths])  # [N, 8]
    q = torch.randn(len(lengths), hq, dim, generator=gen).to(dtype)
    got = fused.decode_attention(q, k_cache, v_cache, tables, lengths, dim**-0.5, window)
    want = reference_decode_attention(q, k_cache, v_cache, tables, lengths, dim**-0.5, window)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(got.double(), want, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("hq", "hkv"), [(9, 3), (8, 2), (64, 8)])
@pytest.mark.parametrize("window", [0, 40])
def test_a_decode_attends_the_same_alone_or_among_many(fused, dtype, hq, hkv, window):
    """Many decodes run a KV head group per task and split the work by context rows; one decode runs a
    KV head per task. Each query head's arithmetic is the same either way, so the outputs are equal bit
    for bit, and both match the float64 reference."""
    gen = torch.Generator().manual_seed(hq + window)
    n, bs, dim = 24, 16, 64
    lengths = torch.randint(1, 200, (n,), generator=gen)  # very different contexts: uneven shares
    blocks = 200 // bs + 1
    k_cache = torch.randn(n * blocks, bs, hkv, dim, generator=gen).to(dtype)
    v_cache = torch.randn(n * blocks, bs, hkv, dim, generator=gen).to(dtype)
    tables = torch.randperm(n * blocks, generator=gen).view(n, blocks)
    q = torch.randn(n, hq, dim, generator=gen).to(dtype)
    together = fused.decode_attention(q, k_cache, v_cache, tables, lengths, dim**-0.5, window)
    alone = torch.cat([
        fused.decode_attention(q[i : i + 1], k_cache, v_cache, tables[i : i + 1], lengths[i : i + 1],
                                   dim**-0.5, window)
        for i in range(n)
    ])
    assert torch.equal(together, alone)
    want = reference_decode_attention(q, k_cache, v_cache, tables, lengths, dim**-0.5, window)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(together.double(), want, atol=tolerance, rtol=tolerance)


def reference_prefill_attention(q, k_cache, v_cache, table, length, scale):
    """float64: the chunk's T queries are positions length - T .. length - 1, each over keys 0 .. itself."""
    t, hq, _ = q.shape
    hkv, bs = k_cache.shape[2], k_cache.shape[1]
    pos = torch.arange(length)
    keys = k_cache[table[pos // bs], pos % bs].double().repeat_interleave(hq // hkv, 1)  # [L, Hq, D]
    values = v_cache[table[pos // bs], pos % bs].double().repeat_interleave(hq // hkv, 1)
    scores = torch.einsum("thd,lhd->htl", q.double(), keys) * scale  # [Hq, T, L]
    visible = pos[None, :] <= torch.arange(length - t, length)[:, None]  # [T, L]
    probs = torch.softmax(scores.masked_fill(~visible[None], float("-inf")), dim=-1)
    return torch.einsum("htl,lhd->thd", probs, values)


def paged_prefill_case(hq: int, hkv: int, t: int, length: int, q_scale: float = 1.0):
    """A chunk's q [T, Hq, 64] bf16, bf16 caches [num_blocks, 16, Hkv, 64] and a random block table
    covering `length` positions."""
    gen = torch.Generator().manual_seed(hq * 1000 + t * 7 + length)
    bs, dim = 16, 64
    blocks = length // bs + 1
    k_cache = torch.randn(2 * blocks, bs, hkv, dim, generator=gen).bfloat16()
    v_cache = torch.randn(2 * blocks, bs, hkv, dim, generator=gen).bfloat16()
    table = torch.randperm(2 * blocks, generator=gen)[:blocks]
    q = (torch.randn(t, hq, dim, generator=gen) * q_scale).bfloat16()
    return q, k_cache, v_cache, table


@pytest.mark.parametrize(("hq", "hkv"), [(9, 3), (8, 2), (4, 4), (16, 2)])
@pytest.mark.parametrize(("t", "length"), [(1, 1), (5, 5), (16, 16), (37, 50), (17, 300), (64, 64), (40, 129)])
def test_prefill_attention_reads_the_paged_cache_causally_like_a_float64_reference(fused, hq, hkv, t, length):
    """Whole prompts and chunks after a cached prefix, lengths on and off the 16-key blocks, GQA ratios
    1 to 8, a random block table. The avx512 and avx2 levels have this kernel (portable runs SDPA)."""
    if not fused.prefill_attention_supported():
        pytest.skip(f"the {fused.isa_level()} build has no prefill attention kernel")
    dim = 64
    q, k_cache, v_cache, table = paged_prefill_case(hq, hkv, t, length)
    got = fused.prefill_attention(q, k_cache, v_cache, table, length, dim**-0.5)
    want = reference_prefill_attention(q, k_cache, v_cache, table, length, dim**-0.5)
    assert torch.allclose(got.double(), want, atol=2e-2, rtol=2e-2)


def test_kernels_refuse_tensors_of_the_wrong_shape_with_an_error(fused):
    with pytest.raises(RuntimeError, match="contiguous"):
        fused.rms_norm(torch.randn(4, 8).t(), torch.randn(4), 1e-5)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        fused.silu_and_mul(torch.randn(2, 8).double())


def test_argmax_rows_is_torch_argmax_with_ties_nans_and_ragged_rows(fused):
    logits = torch.randn(7, 1000 + 13)  # [S, V], V not a multiple of 16
    logits[1, 5] = logits[1, 700] = 50.0  # a tie: the first index wins
    logits[2, 900] = float("nan")  # a NaN is the max, as in torch
    logits[3, 1] = logits[3, 1005] = float("nan")
    logits[4] = float("-inf")  # all -inf: index 0
    logits[5, 1012] = 99.0  # the max in the scalar tail
    got = fused.argmax_rows(logits)
    assert torch.equal(got, logits.argmax(dim=-1))
    assert got.tolist()[1:6] == [5, 900, 1, 0, 1012]
