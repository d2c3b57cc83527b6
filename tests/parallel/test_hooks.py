"""Which backend the engine gets for `pipeline_parallel_size`, and how the layers are split."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import sarathi_parallel
from sarathi_models.stage import layer_range
from sarathi_sdk import ConfigError, Engine, EngineConfig, SamplingParams, hookimpl
from sarathi_sdk.testing import FakeBackend
from tests.parallel.conftest import TIMEOUT


def test_one_stage_leaves_the_backend_to_the_models_plugin():
    assert sarathi_parallel.sarathi_make_backend(config=EngineConfig(pipeline_parallel_size=1), sampler=None) is None


class UserBackend:
    def __init__(self) -> None:
        self.backend = FakeBackend(vocab_size=256)

    @hookimpl
    def sarathi_make_backend(self) -> Any:
        return self.backend


async def test_a_user_plugin_backend_wins_over_the_pipeline(tiny_llama):
    user = UserBackend()
    async with asyncio.timeout(TIMEOUT):
        async with Engine(tiny_llama, pipeline_parallel_size=2, plugins=[user]) as engine:
            await engine.complete([1, 2, 3], SamplingParams(max_tokens=3))
    assert user.backend.num_steps > 0


@pytest.mark.parametrize(("num_layers", "num_stages", "want"), [
    (4, 2, [(0, 2), (2, 4)]),
    (30, 4, [(0, 7), (7, 14), (14, 22), (22, 30)]),  # the first stage, which also samples, never gets more
    (3, 3, [(0, 1), (1, 2), (2, 3)]),
])
def test_layers_split_into_contiguous_near_equal_stages(num_layers, num_stages, want):
    assert [layer_range(num_layers, i, num_stages) for i in range(num_stages)] == want


def test_more_stages_than_layers_is_a_config_error():
    with pytest.raises(ConfigError, match="at least one layer"):
        layer_range(2, 0, 3)
