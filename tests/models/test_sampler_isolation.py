"""A sampler failing on one request's row ends that request alone: the step, the other requests (with
their exact tokens) and the engine go on. Only a failed forward pass kills the engine."""

from __future__ import annotations

import asyncio

from sarathi_models.sampler import Sampler
from sarathi_sdk import Engine, EngineState, RequestError, SamplingParams, hookimpl

TIMEOUT = 60.0
POISON_SEED = 13


class PoisonedSampler(Sampler):
    """The bundled sampler, raising for any row whose request has seed 13 (a stand-in for any bug a
    request's own sampling options could reach)."""

    def __call__(self, logits, rows):
        if any(row.sampling_params.seed == POISON_SEED for row in rows):
            raise RuntimeError("poisoned row")
        return super().__call__(logits, rows)


class PoisonPlugin:
    @hookimpl
    def sarathi_make_sampler(self, config):
        return PoisonedSampler(seed=config.seed)


def _prompts():
    return [[(7 * i + j) % 200 + 3 for j in range(12 + i)] for i in range(5)]


async def _tokens(folder, poison: bool) -> list:
    plugins = [PoisonPlugin()] if poison else []
    async with Engine(str(folder), token_budget=64, plugins=plugins) as engine:
        params = [SamplingParams(max_tokens=8, temperature=0, seed=POISON_SEED if poison and i == 2 else None)
                  for i in range(5)]
        results = await asyncio.wait_for(asyncio.gather(
            *(engine.complete(p, q) for p, q in zip(_prompts(), params)), return_exceptions=True), TIMEOUT)
        assert engine.state is EngineState.RUNNING
        await engine.check_health()
        after = await asyncio.wait_for(engine.complete(_prompts()[0], SamplingParams(max_tokens=8, temperature=0)),
                                       TIMEOUT)
        stats = engine.stats()
        assert stats.kv_blocks_free == stats.kv_blocks_total
    return [r if isinstance(r, BaseException) else r.token_ids for r in results] + [after.token_ids]


async def test_a_failing_row_ends_only_its_request(checkpoint):
    folder = checkpoint("llama")
    clean = await _tokens(folder, poison=False)
    poisoned = await _tokens(folder, poison=True)
    assert isinstance(poisoned[2], RequestError) and "poisoned row" in str(poisoned[2])
    assert [t for i, t in enumerate(poisoned) if i != 2] == [t for i, t in enumerate(clean) if i != 2]
    assert all(len(t) == 8 for i, t in enumerate(clean))

