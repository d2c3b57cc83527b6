"""The per-engine plugin manager: observers, factories, registries, blocking, misspelled hooks."""

from __future__ import annotations

import logging

import anyio
import pytest

from sarathi_scheduling import SarathiPolicy
from sarathi_sdk import EngineConfig, PluginError, PluginManager, SamplingParams, hookimpl
from tests.engine.conftest import TIMEOUT, fake_engine, gather

pytestmark = pytest.mark.loops("asyncio", "trio")


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def sarathi_on_engine_start(self, config):
        self.events.append(("start", config.token_budget))

    @hookimpl
    def sarathi_on_request_added(self, request_id):
        self.events.append(("added", request_id))

    @hookimpl
    def sarathi_on_step_end(self, batch, stats):
        self.events.append(("step", batch.request_ids, stats.num_steps))

    @hookimpl
    def sarathi_on_request_finished(self, request_id, output):
        self.events.append(("finished", request_id, output.finish_reason))

    @hookimpl
    def sarathi_on_engine_stop(self, stats):
        self.events.append(("stop", stats.num_steps))


async def test_observers_see_events_in_order():
    recorder = Recorder()
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(plugins=[recorder], token_budget=64) as engine:
            await engine.complete([1, 2, 3], SamplingParams(max_tokens=2), request_id="a")
    assert recorder.events == [
        ("start", 64),
        ("added", "a"),
        ("step", ("a",), 1),
        ("finished", "a", "length"),
        ("step", ("a",), 2),
        ("stop", 2),
    ]


class Broken:
    @hookimpl
    def sarathi_on_step_end(self):
        raise RuntimeError("observer bug")

    @hookimpl
    def sarathi_on_request_finished(self):
        raise RuntimeError("observer bug")


async def test_failing_observer_is_logged_and_never_kills_the_engine(caplog):
    recorder = Recorder()
    with anyio.fail_after(TIMEOUT):
        with caplog.at_level(logging.ERROR):
            async with fake_engine(plugins=[Broken(), recorder]) as engine:
                done = await engine.complete([1, 2], SamplingParams(max_tokens=3))
    assert done.finish_reason == "length"
    assert any(e[0] == "finished" for e in recorder.events)
    assert "observer bug" in caplog.text


class Misspelled:
    @hookimpl
    def sarathi_on_stepend(self, batch):
        pass


def test_misspelled_hook_is_refused():
    with pytest.raises(PluginError, match="sarathi_on_stepend"):
        PluginManager(EngineConfig(plugins=[Misspelled()]))


class LastInFirstOut(SarathiPolicy):
    """Serves the newest waiting request first: visibly different from the default."""

    def schedule(self):
        self.waiting.reverse()
        try:
            return super().schedule()
        finally:
            self.waiting.reverse()


class PolicyPlugin:
    @hookimpl
    def sarathi_make_batch_policy(self, config, kv_cache_manager):
        return LastInFirstOut(config, kv_cache_manager)


async def test_user_policy_plugin_replaces_the_default():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(plugins=[PolicyPlugin()], token_budget=4, max_num_seqs=1) as engine:
            assert isinstance(engine._parts.built.policy, LastInFirstOut)
            # both tasks are queued before the step loop wakes: the one that arrives first is "old" (asyncio
            # runs the tasks in the order they were started, trio in either order)
            arrivals = []

            async def arrive(prompt):
                request_id = "new" if arrivals else "old"  # no wait before the request is added
                arrivals.append(request_id)
                return request_id, await engine.complete(prompt, SamplingParams(max_tokens=2), request_id=request_id)

            await anyio.wait_all_tasks_blocked()  # the step loop has run since start() and waits for work
            results = dict(await gather(arrive([1] * 8), arrive([2] * 8)))
            old, new = results["old"], results["new"]
    assert new.metrics.first_token_time < old.metrics.first_token_time


class RegistryPlugin:
    @hookimpl
    def sarathi_register_schedulers(self, register):
        register("lifo", LastInFirstOut)


async def test_registered_scheduler_is_selectable_by_name():
    with anyio.fail_after(TIMEOUT):
        async with fake_engine(plugins=[RegistryPlugin()], scheduler="lifo") as engine:
            assert type(engine._parts.built.policy) is LastInFirstOut


async def test_unknown_scheduler_names_the_registered_ones():
    with anyio.fail_after(TIMEOUT), pytest.raises(PluginError.__mro__[1], match="unknown scheduler 'nope'.*sarathi"):
        async with fake_engine(scheduler="nope"):
            pass


def test_blocked_plugin_is_not_registered():
    pm = PluginManager(EngineConfig(block_plugins=["sarathi_scheduling"]))
    assert "sarathi_scheduling" not in pm.plugin_names()
    assert "sarathi_paged_kv" in pm.plugin_names()


async def test_engine_without_a_policy_plugin_says_so():
    with anyio.fail_after(TIMEOUT), pytest.raises(PluginError, match="batch policy"):
        async with fake_engine(block_plugins=["sarathi_scheduling"]):
            pass


def test_unknown_entry_point_plugin_is_an_error():
    with pytest.raises(PluginError, match="no plugin named"):
        PluginManager(EngineConfig(load_entrypoint_plugins=["not-installed"]))


def test_each_engine_has_its_own_plugin_manager():
    a = PluginManager(EngineConfig(plugins=[Recorder()]))
    b = PluginManager(EngineConfig())
    assert len(a.plugin_names()) == len(b.plugin_names()) + 1
