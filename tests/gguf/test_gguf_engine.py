"""`Engine("model.gguf")`: a GGUF file served directly, text in and text out, as the original model."""

from __future__ import annotations

import asyncio

import sentencepiece

from sarathi_sdk import Engine, SamplingParams
from tests.gguf.tiny_gguf import random_llama, reference_greedy, write_llama_gguf

PROMPT = "def main():\n    return 0"


async def test_engine_serves_a_gguf_file_with_the_original_greedy_tokens(sp_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
    processor = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    reference = random_llama(processor.get_piece_size()).eval()
    write_llama_gguf(tmp_path / "tiny.gguf", reference, sp_model)
    params = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True)
    async with asyncio.timeout(120):
        async with Engine(str(tmp_path / "tiny.gguf"), dtype="float32", token_budget=8) as engine:
            prompt_ids = engine.tokenizer.encode(PROMPT)
            streamed = [o async for o in engine.generate(PROMPT, params)]
    want = reference_greedy(reference, prompt_ids, 20)
    assert [t for o in streamed for t in o.token_ids] == want
    assert "".join(o.text for o in streamed) == engine.tokenizer.decode(want)
