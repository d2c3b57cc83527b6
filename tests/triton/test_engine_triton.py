"""The whole engine with attention_backend="triton" (the interpreter without CUDA) gives the greedy
tokens of attention_backend="torch" on tiny random models: chunked prefills crossing blocks, mixed
steps of chunks and decodes, GQA, and a sliding window."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("transformers")
from sarathi_sdk import Engine, SamplingParams  # noqa: E402
from tests.models.helpers import save_tiny  # noqa: E402

TIMEOUT = 120.0
PROMPTS = [[(11 * i + 5 * j) % 250 + 3 for j in range(9 + 7 * i)] for i in range(4)]


async def _greedy(folder, backend: str, max_tokens: int = 6, **options) -> list[tuple[int, ...]]:
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    async with Engine(str(folder), attention_backend=backend, dtype="float32", device="cpu", token_budget=16,
                      max_num_seqs=4, block_size=4, quantization="none", **options) as engine:
        outputs = await asyncio.wait_for(asyncio.gather(*(engine.complete(p, params) for p in PROMPTS)), TIMEOUT)
        if "speculative" in options:
            assert engine.stats().num_accepted_tokens > 0
    return [o.token_ids for o in outputs]


@pytest.mark.parametrize("architecture,overrides", [
    ("LlamaForCausalLM", {}),
    ("MistralForCausalLM", {"sliding_window": 8}),
])
async def test_triton_attention_gives_the_torch_backends_tokens(tmp_path, architecture, overrides):
    folder = save_tiny(tmp_path / "tiny", architecture, **overrides)
    assert await _greedy(folder, "triton") == await _greedy(folder, "torch")


async def test_speculative_verification_rows_attend_causally_under_triton(tmp_path):
    # a decode's proposed tokens run as rows of one request at consecutive positions: the kernel must
    # see each row's K/V, written in the same launch's step, from the rows after it
    folder = save_tiny(tmp_path / "tiny", "LlamaForCausalLM")
    want = await _greedy(folder, "torch", max_tokens=16)
    assert await _greedy(folder, "triton", max_tokens=16, speculative="ngram") == want


def test_without_cuda_or_the_interpreter_the_backend_says_what_it_needs(monkeypatch):
    import torch

    from sarathi_sdk import ConfigError, EngineConfig
    from sarathi_triton.hooks import _triton_attention

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the backend builds")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        _triton_attention(EngineConfig())
