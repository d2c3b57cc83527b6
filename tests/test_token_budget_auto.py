"""`token_budget="auto"` with `tbt_slo=`: the engine profiles its backend at start and takes the largest
candidate budget whose step time meets the SLO."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from sarathi_sdk import ConfigError, Engine, EngineConfig, SamplingParams, ScheduledBatch, StepOutput
from sarathi_sdk.testing import FakeBackend

TIMEOUT = 30.0


# --- configuration ---------------------------------------------------------------------------------


def test_auto_budget_defers_the_checks_that_need_an_int_budget():
    config = EngineConfig(token_budget="auto", tbt_slo=0.2)
    assert config.token_budget == "auto" and config.tbt_slo == 0.2
    assert config.max_num_seqs is None and config.low_chunk_size is None


def test_given_max_num_seqs_and_low_chunk_size_are_kept_while_the_budget_is_auto():
    config = EngineConfig(token_budget="auto", tbt_slo=1, max_num_seqs=64, low_chunk_size=100)
    assert (config.max_num_seqs, config.low_chunk_size) == (64, 100)


def test_replacing_auto_by_an_int_budget_runs_the_deferred_checks_and_defaults():
    import dataclasses

    config = EngineConfig(token_budget="auto", tbt_slo=0.2)
    resolved = dataclasses.replace(config, token_budget=64, tbt_slo=None)
    assert resolved.token_budget == 64
    assert resolved.max_num_seqs == 64 and resolved.low_chunk_size == 64
    with pytest.raises(ConfigError, match="must not exceed token_budget"):
        dataclasses.replace(EngineConfig(token_budget="auto", tbt_slo=0.2, max_num_seqs=100), token_budget=64,
                            tbt_slo=None)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"token_budget": "auto"}, "needs tbt_slo"),
        ({"token_budget": "auto", "tbt_slo": None}, "needs tbt_slo"),
        ({"tbt_slo": 0.2}, "only applies to token_budget='auto'"),
        ({"token_budget": 256, "tbt_slo": 0.2}, "only applies to token_budget='auto'"),
        ({"token_budget": "Auto", "tbt_slo": 0.2}, "token_budget must be"),
        ({"token_budget": "512"}, "token_budget must be"),
        ({"token_budget": "auto", "tbt_slo": 0}, "tbt_slo must be"),
        ({"token_budget": "auto", "tbt_slo": -1.0}, "tbt_slo must be"),
        ({"token_budget": "auto", "tbt_slo": math.inf}, "tbt_slo must be"),
        ({"token_budget": "auto", "tbt_slo": math.nan}, "tbt_slo must be"),
        ({"token_budget": "auto", "tbt_slo": True}, "tbt_slo must be"),
        ({"token_budget": "auto", "tbt_slo": "0.2"}, "tbt_slo must be"),
        ({"token_budget": "auto", "tbt_slo": 0.2, "max_num_seqs": 0}, "max_num_seqs"),
        ({"token_budget": "auto", "tbt_slo": 0.2, "low_chunk_size": 0}, "low_chunk_size"),
    ],
)
def test_bad_auto_budget_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        EngineConfig(**options)


def test_engine_refuses_tbt_slo_without_auto_before_starting():
    with pytest.raises(ConfigError, match="tbt_slo"):
        Engine(backend=FakeBackend(), tbt_slo=0.1)


# --- the choice, on a backend whose step time is a + b * tokens -------------------------------------

A, B = 0.002, 1e-5
"""Step time of LinearBackend: 2 ms plus 10 us per token (32 tokens: 2.3 ms, 512: 7.1 ms, 1024: 12.2 ms)."""


class LinearBackend(FakeBackend):
    """A FakeBackend whose every step takes `a + b * num_tokens` seconds (its own work included)."""

    def __init__(self, a: float = A, b: float = B, **options) -> None:
        super().__init__(**options)
        self.a, self.b = a, b

    def execute(self, batch: ScheduledBatch) -> StepOutput:
        deadline = time.perf_counter() + self.a + self.b * batch.num_tokens
        output = super().execute(batch)
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        return output


def expected_budget(slo: float, cap: int = 4096) -> int:
    """The largest power of two from 32 to `cap` whose step time a + b * B meets the SLO, by hand."""
    candidates = [2**k for k in range(5, 13) if 2**k <= cap]
    return max(c for c in candidates if A + B * c <= slo)


async def serve_two(engine: Engine) -> list:
    params = SamplingParams(max_tokens=5, temperature=0, ignore_eos=True)
    prompts = [list(range(1, 300)), [7, 8, 9]]
    return await asyncio.wait_for(asyncio.gather(*(engine.complete(p, params) for p in prompts)), TIMEOUT)


async def test_auto_picks_the_largest_budget_meeting_the_slo_and_serves_with_it():
    slo = 0.011  # 512 tokens: 7.1 ms meets it; 1024 tokens: 12.2 ms (a sleep never ends early) does not
    assert expected_budget(slo) == 512
    backend = LinearBackend()
    engine = Engine(backend=backend, token_budget="auto", tbt_slo=slo)
    await asyncio.wait_for(engine.start(), TIMEOUT)
    try:
        assert engine.config.token_budget == 512
        assert engine.config.max_num_seqs == 128 and engine.config.low_chunk_size == 128
        profile = engine.token_budget_profile
        assert [budget for budget, _ in profile] == [32, 64, 128, 256, 512, 1024]  # stops at the first miss
        assert all(seconds <= slo for _, seconds in profile[:-1]) and profile[-1][1] > slo
        profiled = len(backend.batches)
        outputs = await serve_two(engine)
        assert [len(o.token_ids) for o in outputs] == [5, 5]
        assert all(o.finish_reason == "length" for o in outputs)
        served = backend.batches[profiled:]
        assert served and all(batch.num_tokens <= 512 for batch in served)
    finally:
        await asyncio.wait_for(engine.close(), TIMEOUT)


async def test_profile_batches_carry_exactly_the_candidate_tokens_as_one_chunk_plus_decodes():
    backend = LinearBackend(max_model_len=256)
    async with asyncio.timeout(TIMEOUT):
        async with Engine(backend=backend, token_budget="auto", tbt_slo=10.0, max_num_seqs=8) as engine:
            assert engine.config.token_budget == 256  # capped by the model's length; every candidate met the SLO
            assert engine.config.max_num_seqs == 8
            assert [budget for budget, _ in engine.token_budget_profile] == [32, 64, 128, 256]
    timed = [b for b in backend.batches if b.num_tokens in (32, 64, 128, 256) and b.decodes]
    assert len(timed) == 4 * 4  # one warm-up and three timed runs per candidate
    for batch in timed:
        (chunk,) = batch.prefills
        assert chunk.is_last_chunk and chunk.sampling_params.temperature == 0
        assert len(batch.decodes) == min(8, batch.num_tokens // 4)


async def test_given_max_num_seqs_is_the_smallest_candidate():
    backend = LinearBackend(max_model_len=512)
    async with asyncio.timeout(TIMEOUT):
        async with Engine(backend=backend, token_budget="auto", tbt_slo=10.0, max_num_seqs=48) as engine:
            assert [budget for budget, _ in engine.token_budget_profile] == [48, 64, 128, 256, 512]
            assert engine.config.token_budget == 512


async def test_too_strict_slo_is_a_config_error_naming_the_measured_time():
    backend = LinearBackend()
    engine = Engine(backend=backend, token_budget="auto", tbt_slo=0.001)  # 32 tokens take 2.3 ms
    with pytest.raises(ConfigError, match=r"32 tokens.*ms.*tbt_slo"):
        await asyncio.wait_for(engine.start(), TIMEOUT)
    assert backend._cache == []  # closed
    await asyncio.wait_for(engine.close(), TIMEOUT)


async def test_fixed_budget_has_no_profile():
    async with asyncio.timeout(TIMEOUT):
        async with Engine(backend=FakeBackend(), token_budget=64) as engine:
            assert engine.token_budget_profile is None
            assert engine.config.token_budget == 64


# --- the real torch backend on a tiny random Llama -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from tests.models.helpers import save_tiny

    return save_tiny(tmp_path_factory.mktemp("auto_budget") / "llama", "LlamaForCausalLM", seed=3)


async def test_auto_budget_on_a_tiny_llama_picks_an_int_budget_and_generates_as_a_fixed_one(tiny_llama):
    prompts = [[(13 * i + 3) % 256 for i in range(n)] for n in (9, 40)]
    params = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    options = dict(dtype="float32", device="cpu", block_size=4)
    async with asyncio.timeout(120):
        async with Engine(str(tiny_llama), token_budget="auto", tbt_slo=10.0, **options) as engine:
            budget = engine.config.token_budget
            assert isinstance(budget, int) and budget >= 32
            assert budget == engine.token_budget_profile[-1][0]
            auto = await asyncio.gather(*(engine.complete(p, params) for p in prompts))
        async with Engine(str(tiny_llama), token_budget=budget, **options) as engine:
            fixed = await asyncio.gather(*(engine.complete(p, params) for p in prompts))
    assert [list(o.token_ids) for o in auto] == [list(o.token_ids) for o in fixed]
    assert all(len(o.token_ids) == 6 for o in auto)
