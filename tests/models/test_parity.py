"""fp32 parity with transformers: chunked prefills, mixed steps and greedy decoding, per architecture."""

from __future__ import annotations

import pytest
import torch

from sarathi_sdk import DecodeSlot, PrefillChunk, SamplingParams, ScheduledBatch
from tests.models.conftest import ARCH_VARIANTS
from tests.models.helpers import (
    GREEDY,
    RecordingSampler,
    make_backend,
    reference_greedy,
    reference_last_logits,
    run_steps,
)

PROMPT = torch.randint(0, 256, (530,), generator=torch.Generator().manual_seed(1)).tolist()


@pytest.fixture(scope="module")
def backends(checkpoint):
    """One fp32 backend per variant (block size 4), recording every step's logits."""
    built = {}

    def get(name: str):
        if name not in built:
            sampler = RecordingSampler()
            built[name] = (make_backend(checkpoint(name), sampler=sampler), sampler)
        sampler = built[name][1]
        sampler.logits.clear()
        return built[name]

    return get


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 512])
@pytest.mark.parametrize("variant", ARCH_VARIANTS)
def test_chunked_prefill_last_logits_match_hf(variant, chunk_size, backends, reference):
    backend, sampler = backends(variant)
    run_steps(backend, [PROMPT], max_new_tokens=1, token_budget=chunk_size)
    want = reference_last_logits(reference(variant), PROMPT)
    torch.testing.assert_close(sampler.logits["r0"][0], want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", ARCH_VARIANTS)
def test_mixed_steps_match_hf_logits_and_greedy_tokens(variant, backends, reference):
    """Four prompts of different lengths through 16-token steps that mix chunks and decodes: every
    sampled position's logits match HF's full forward, and 33 greedy tokens match HF generate."""
    backend, sampler = backends(variant)
    prompts = [PROMPT[:5], PROMPT[40:63], PROMPT[100:140], PROMPT[200:270]]
    outputs, batches = run_steps(backend, prompts, max_new_tokens=33, token_budget=16)

    assert any(b.prefills and b.decodes for b in batches)
    assert any(len(b.prefills) > 1 for b in batches)
    ref = reference(variant)
    for i, (prompt, output) in enumerate(zip(prompts, outputs)):
        assert output == reference_greedy(ref, prompt, 33), f"prompt {i}"
        with torch.no_grad():
            full = ref(torch.tensor([prompt + output[:-1]])).logits[0, len(prompt) - 1 :]  # [33, V]
        torch.testing.assert_close(torch.stack(sampler.logits[f"r{i}"]), full, atol=1e-4, rtol=0)


def test_greedy_decode_of_a_long_prompt_past_the_sliding_window_matches_hf(backends, reference):
    backend, _ = backends("mistral")
    outputs, _ = run_steps(backend, [PROMPT[:100]], max_new_tokens=40, token_budget=64)
    assert outputs[0] == reference_greedy(reference("mistral"), PROMPT[:100], 40)


def test_seeded_sampling_gives_the_same_tokens_alone_and_in_a_batch(backends):
    backend, _ = backends("llama")
    seeded = SamplingParams(temperature=0.9, top_k=50, seed=42, max_tokens=1024)
    alone, _ = run_steps(backend, [PROMPT[:30]], max_new_tokens=20, token_budget=8, params=seeded)
    together, _ = run_steps(backend, [PROMPT[50:90], PROMPT[:30], PROMPT[300:310]], max_new_tokens=20,
                            token_budget=12, params=seeded)
    assert together[1] == alone[0]
    assert together[0] != alone[0]


def test_step_output_carries_logprobs_for_requests_that_ask(backends):
    backend, sampler = backends("llama")
    params = SamplingParams(temperature=0, logprobs=3)
    chunk = PrefillChunk("a", tuple(PROMPT[:10]), 0, (0, 1, 2), True, params)
    decode = DecodeSlot("b", PROMPT[0], 0, (5,), GREEDY)
    out = backend.execute(ScheduledBatch(step_id=0, prefills=(chunk,), decodes=(decode,)))
    assert set(out.sampled) == {"a", "b"} and set(out.logprobs) == {"a"}
    expected = torch.log_softmax(sampler.logits["a"][0], -1)
    assert [t for t, _ in out.logprobs["a"].top] == expected.topk(3).indices.tolist()
    assert out.logprobs["a"].logprob == pytest.approx(float(expected.max()), abs=1e-6)
