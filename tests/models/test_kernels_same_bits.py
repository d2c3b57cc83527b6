"""Every ISA level computes the same bits (`cpu_isa`), so the default model's greedy text does not
depend on the CPU it runs on: decode attention (the avx2 and portable kernels replay the avx512 ones'
arithmetic in 8-lane vectors, `vec8.h`), the fast builds' prefill attention (the portable build leaves
it to SDPA), and every build's norms, activations, rotary and argmax (the quantized products:
`test_quant_matmul.py`). ARM64's NEON builds are checked against these outside torch, under qemu
(`test_kernel_cores_isas.py`)."""

from __future__ import annotations

import pytest
import torch

from sarathi_models.cpu_isa import runnable_levels
from sarathi_models.cpu_ops import kernels_for
from tests.models.test_cpu_kernels import paged_prefill_case

LEVELS = [level.name for level in runnable_levels()]
FAST = [level.name for level in runnable_levels() if level.fast]
pytestmark = pytest.mark.skipif(len(LEVELS) < 2, reason=f"this CPU runs one level ({LEVELS})")


def on_every_level(call, levels=LEVELS):
    """call(module) on each build of `levels`; the results, which must all be equal."""
    if len(levels) < 2:
        pytest.skip(f"this CPU runs one of the levels ({levels})")
    results = []
    for level in levels:
        module = kernels_for(level)
        if module is None:
            pytest.skip("no C++ compiler")
        results.append(call(module))
    return results


def assert_same_bits(results):
    assert all(torch.equal(results[0], other) for other in results[1:])


@pytest.mark.parametrize(("hq", "hkv"), [(9, 3), (8, 2), (4, 4), (32, 8)])
@pytest.mark.parametrize("window", [0, 40])
@pytest.mark.parametrize("decodes", [1, 24])  # one KV head a task, or whole rows a task
def test_decode_attention_is_the_same_bits_on_every_level(hq, hkv, window, decodes):
    gen = torch.Generator().manual_seed(hq + window + decodes)
    bs, dim = 16, 64
    lengths = torch.randint(1, 200, (decodes,), generator=gen)  # [N]
    blocks = 200 // bs + 1
    k_cache = torch.randn(decodes * blocks, bs, hkv, dim, generator=gen).bfloat16()
    v_cache = torch.randn(decodes * blocks, bs, hkv, dim, generator=gen).bfloat16()
    tables = torch.randperm(decodes * blocks, generator=gen).view(decodes, blocks)  # [N, blocks]
    q = (torch.randn(decodes, hq, dim, generator=gen) * 3).bfloat16()  # [N, Hq, D]
    assert_same_bits(on_every_level(
        lambda m: m.decode_attention(q, k_cache, v_cache, tables, lengths, dim**-0.5, window)))


@pytest.mark.parametrize(("hq", "hkv"), [(9, 3), (8, 2), (16, 2)])
@pytest.mark.parametrize(("t", "length"), [(1, 1), (16, 16), (37, 50), (17, 300), (40, 129)])
def test_prefill_attention_is_the_same_bits_on_every_level(hq, hkv, t, length):
    q, k_cache, v_cache, table = paged_prefill_case(hq, hkv, t, length, q_scale=3.0)
    assert_same_bits(on_every_level(lambda m: m.prefill_attention(q, k_cache, v_cache, table, length, 64**-0.5),
                                    FAST))


def heavy_tailed(*shape: int, gen: torch.Generator) -> torch.Tensor:
    """Values over many orders of magnitude, as a model's hidden states have (outlier channels): sums
    that a plain random test would add in any order alike come out differently here."""
    return torch.randn(*shape, generator=gen) * torch.exp(2 * torch.randn(*shape, generator=gen))


@pytest.mark.parametrize("rows", [1, 7, 33, 64])
def test_norm_activation_rotary_and_argmax_are_the_same_bits_on_every_level(rows):
    gen = torch.Generator().manual_seed(rows)
    x = heavy_tailed(rows, 576, gen=gen).bfloat16()  # [T, H]
    w = torch.randn(576, generator=gen).bfloat16()  # [H]
    assert_same_bits(on_every_level(lambda m: m.rms_norm(x, w, 1e-5)))
    assert_same_bits(on_every_level(lambda m: m.rms_norm(x.float(), w.float(), 1e-5)))
    gate_up = heavy_tailed(rows, 2 * 1536, gen=gen).bfloat16()  # [T, 2I]
    assert_same_bits(on_every_level(lambda m: m.silu_and_mul(gate_up)))
    angles = torch.randn(rows, 1, 64, generator=gen)
    cos, sin = angles.cos().bfloat16(), angles.sin().bfloat16()  # [T, 1, D]
    qk = torch.randn(rows, 9, 64, generator=gen).bfloat16()  # [T, H, D]

    def rotated(m):
        out = qk.clone()
        m.rotary_(out, cos, sin)
        return out

    assert_same_bits(on_every_level(rotated))
    logits = torch.randn(rows, 49152, generator=gen)  # [S, V]
    assert_same_bits(on_every_level(lambda m: m.argmax_rows(logits)))
