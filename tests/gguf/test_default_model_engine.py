"""End to end with the one real model: `Engine()` with no model answers a question."""

from __future__ import annotations

import pytest

from sarathi_sdk import Engine, SamplingParams
from tests.gguf.smollm2 import PARIS_QUESTION


@pytest.mark.timeout(180)
async def test_the_default_model_knows_the_capital_of_france(smollm2_folder, monkeypatch):
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(smollm2_folder.parent))
    async with Engine() as engine:
        assert engine.config.model == str(smollm2_folder)
        messages = [{"role": "user", "content": PARIS_QUESTION}]
        params = SamplingParams(max_tokens=16, temperature=0)
        outputs = [output async for output in engine.chat(messages, params)]
    text = "".join(output.text for output in outputs)
    assert "Paris" in text
    assert outputs[-1].finished and outputs[-1].finish_reason == "stop"
