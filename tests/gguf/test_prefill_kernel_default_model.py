"""The default model's bf16 prefill on the CPU attention backend, whose chunks take the paged prefill
kernel (`prefill_attention`), against the torch backend's gather + SDPA and against fp32."""

from __future__ import annotations

import pytest

from sarathi_models.cpu_ops import kernels
from tests.gguf.test_quantized_default_model import agreement, greedy_tokens

RELATIVE_AGREEMENT = 0.8
"""The kernel rounds where SDPA does not (bf16 probabilities for the values' product, as decode
attention does), so its greedy tokens may part from the torch backend's where SmolLM2's top two logits
sit within a bf16 step. Against fp32 it must stay about as close as the torch backend: measured on this
CPU (2026-11-30), 32 prompts x 32 tokens, bf16 weights, token budget 64: 0.545 with the kernel and 0.521
with SDPA (at budget 256: 0.545 and 0.532). The measure moves by a tenth with the last bit of any bf16
step: when RMSNorm's 1 / sqrt became exact (2026-12-07; -ffast-math had made it an ISA-dependent
rsqrt estimate) the fp32 run kept every token and the kernel's share moved to 0.537, SDPA's to 0.630,
with 21 of SDPA's 32 texts changed; with RMSNorm's sum and silu's exp in one order for every ISA level,
0.557 and 0.640. The bar sits below that spread."""


@pytest.mark.skipif(not (kernels() and kernels().prefill_attention_supported()), reason="needs the AVX-512 BF16 kernels")
@pytest.mark.timeout(600)
async def test_bf16_prefill_takes_the_paged_kernel_and_stays_as_close_to_fp32_as_sdpa(smollm2_folder, monkeypatch):
    module = kernels()
    calls = []
    kernel = module.prefill_attention

    def counted(*args):
        calls.append(args[0].shape[0])
        return kernel(*args)

    monkeypatch.setattr(module, "prefill_attention", counted)
    # token_budget 64: prompts of 30-40 tokens prefill in chunks after a cached prefix as well as whole
    options = {"dtype": "bfloat16", "quantization": "none", "max_num_seqs": 4, "token_budget": 64}
    with_kernel = await greedy_tokens(smollm2_folder, **options)
    assert calls  # the chunks went through the kernel
    with_sdpa = await greedy_tokens(smollm2_folder, attention_backend="torch", **options)
    full = await greedy_tokens(smollm2_folder, dtype="float32", quantization="none", max_num_seqs=32,
                               token_budget=1024)
    kernel_share, sdpa_share = agreement(with_kernel, full), agreement(with_sdpa, full)
    assert kernel_share >= RELATIVE_AGREEMENT * sdpa_share, (kernel_share, sdpa_share)
