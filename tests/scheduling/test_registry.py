"""Policies are chosen by name from the scheduler registry, which third-party plugins extend, whether
passed as `Engine(plugins=[...])` or installed under the `sarathi_sdk` entry-point group."""

from __future__ import annotations

import asyncio

import pytest

from sarathi_scheduling import POLICIES, PolicyBase
from sarathi_sdk import SamplingParams, ScheduledBatch, hookimpl
from tests.engine.conftest import TIMEOUT, fake_engine
from tests.entry_points import install_plugin


class ShortestPromptFirst(PolicyBase):
    """A third-party policy: one request at a time, the shortest waiting prompt first."""

    def schedule(self) -> ScheduledBatch:
        if self.running:
            return self.build_batch((), [r for r in self.running if not r.in_flight])
        if not self.waiting:
            return self.build_batch((), ())
        request = min(self.waiting, key=lambda r: len(r.prompt_token_ids))
        self.kv.allocate(request, request.num_uncomputed_tokens)
        self.admit(request)
        return self.build_batch([(request, request.num_uncomputed_tokens)], ())


class ShortestFirstPlugin:
    @hookimpl
    def sarathi_register_schedulers(self, register):
        register("shortest-first", ShortestPromptFirst)


async def finish_order(**options) -> list[str]:
    order = []
    async with asyncio.timeout(TIMEOUT):
        async with fake_engine(**options) as engine:
            assert isinstance(engine._parts.built.policy, ShortestPromptFirst)

            async def run(request_id, length):
                await engine.complete([3] * length, SamplingParams(max_tokens=2), request_id=request_id)
                order.append(request_id)

            await asyncio.gather(run("long", 30), run("short", 2), run("mid", 10))
    return order


async def test_policy_registered_by_a_plugin_object_is_selectable_by_name():
    assert await finish_order(plugins=[ShortestFirstPlugin()], scheduler="shortest-first") == ["short", "mid", "long"]


@pytest.fixture
def installed_policy_plugin(tmp_path, monkeypatch):
    """A distribution whose `sarathi_sdk` entry point registers ShortestPromptFirst."""
    return install_plugin(tmp_path, monkeypatch, "shortest-first", "shortest_first_policy", """
        from sarathi_sdk import hookimpl
        from tests.scheduling.test_registry import ShortestPromptFirst

        @hookimpl
        def sarathi_register_schedulers(register):
            register("shortest-first", ShortestPromptFirst)
    """)


async def test_policy_registered_by_an_entry_point_plugin_is_selectable_by_name(installed_policy_plugin):
    order = await finish_order(load_entrypoint_plugins=[installed_policy_plugin], scheduler="shortest-first")
    assert order == ["short", "mid", "long"]


@pytest.mark.parametrize("scheduler", sorted(POLICIES))
async def test_bundled_policies_are_selectable_by_name(scheduler):
    async with asyncio.timeout(TIMEOUT):
        async with fake_engine(scheduler=scheduler) as engine:
            assert type(engine._parts.built.policy) is POLICIES[scheduler]
            done = await engine.complete([1, 2, 3], SamplingParams(max_tokens=3))
    assert len(done.token_ids) == 3
