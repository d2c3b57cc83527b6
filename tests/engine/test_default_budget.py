"""A backend's measured default token budget applies only where the user set no budget."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from sarathi_sdk import Engine, SamplingParams
from sarathi_sdk.testing import FakeBackend

TIMEOUT = 30.0


class SuggestingBackend(FakeBackend):
    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget

    def kv_cache_spec(self, config):
        return dataclasses.replace(super().kv_cache_spec(config), default_token_budget=self.budget)


async def _started(**options) -> Engine:
    engine = Engine(backend=SuggestingBackend(options.pop("suggest", 64)), **options)
    await asyncio.wait_for(engine.start(), TIMEOUT)
    return engine


async def test_the_suggestion_replaces_the_default_and_its_derived_defaults():
    engine = await _started(suggest=64)
    try:
        assert engine.config.token_budget == 64
        assert engine.config.max_num_seqs == 64 and engine.config.low_chunk_size == 64
        out = await asyncio.wait_for(engine.complete(list(range(1, 300)), SamplingParams(max_tokens=3)), TIMEOUT)
        assert len(out.token_ids) == 3
        assert max(b.num_tokens for b in engine._parts.built.backend.batches) == 64
    finally:
        await engine.close()


async def test_a_budget_the_user_set_is_kept():
    engine = await _started(suggest=64, token_budget=512)
    try:
        assert engine.config.token_budget == 512
    finally:
        await engine.close()


async def test_given_max_num_seqs_and_low_chunk_size_stay_and_raise_the_budget():
    engine = await _started(suggest=64, max_num_seqs=100)
    try:
        assert (engine.config.token_budget, engine.config.max_num_seqs) == (100, 100)
    finally:
        await engine.close()
    engine = await _started(suggest=64, max_num_seqs=8, low_chunk_size=96)
    try:
        assert (engine.config.token_budget, engine.config.max_num_seqs, engine.config.low_chunk_size) == (96, 8, 96)
    finally:
        await engine.close()


async def test_without_a_suggestion_the_config_default_holds():
    engine = Engine(backend=FakeBackend())
    await asyncio.wait_for(engine.start(), TIMEOUT)
    try:
        assert engine.config.token_budget == 512
    finally:
        await engine.close()


async def test_the_bundled_backend_takes_its_measured_cpu_budget(tmp_path):
    pytest.importorskip("transformers")
    from tests.models.helpers import save_tiny

    folder = save_tiny(tmp_path / "tiny", "LlamaForCausalLM")
    for options, budget in (({}, 256), ({"token_budget": 512}, 512)):
        engine = Engine(str(folder), device="cpu", **options)
        await asyncio.wait_for(engine.start(), TIMEOUT)
        try:
            assert engine.config.token_budget == budget
            assert engine.config.enable_prefix_caching is False  # on the CPU it stays off by default
        finally:
            await engine.close()


class CachingBackend(FakeBackend):
    def kv_cache_spec(self, config):
        return dataclasses.replace(super().kv_cache_spec(config), default_prefix_caching=True)


async def test_the_backends_prefix_caching_default_applies_only_when_unset():
    for options, expected in (({}, True), ({"enable_prefix_caching": False}, False)):
        engine = Engine(backend=CachingBackend(), **options)
        await asyncio.wait_for(engine.start(), TIMEOUT)
        try:
            assert engine.config.enable_prefix_caching is expected
            prompt = list(range(1, 40))
            await asyncio.wait_for(engine.complete(prompt, SamplingParams(max_tokens=2)), TIMEOUT)
            again = await asyncio.wait_for(engine.complete(prompt, SamplingParams(max_tokens=2)), TIMEOUT)
            assert (again.metrics.num_cached_tokens > 0) is expected
        finally:
            await engine.close()
