"""The dual-loop mechanism itself (tests/engine/loops.py): each case runs on the loop its id names, keeps
its parameters and fixtures, and fails when its body fails; and the loop-neutral helpers of conftest."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import anyio
import pytest
import pytest_asyncio.plugin
import sniffio
import trio

from tests.engine.conftest import TIMEOUT, gather, spawn
from tests.engine.loops import trio_twin

pytestmark = pytest.mark.loops("asyncio", "trio")

REPO = Path(__file__).resolve().parents[2]


async def test_each_case_runs_on_the_loop_its_id_names(request):
    loop = request.node.callspec.params["loop_name"]
    assert request.node.name == f"test_each_case_runs_on_the_loop_its_id_names[{loop}]"
    assert sniffio.current_async_library() == loop
    if loop == "asyncio":
        # pytest-asyncio's own item, on the loop of its runner, as any async test in auto mode
        assert isinstance(request.node, pytest_asyncio.plugin.Coroutine)
        assert asyncio.get_running_loop() is request.getfixturevalue("_function_scoped_runner").get_loop()
    else:
        assert type(request.node) is pytest.Function  # pytest-asyncio left it alone
        assert "_function_scoped_runner" not in request.fixturenames  # no asyncio loop is set up for it
        assert trio.lowlevel.current_task() is not None
        with pytest.raises(RuntimeError, match="no running event loop"):
            asyncio.get_running_loop()
        await trio.sleep(0)


@pytest.mark.parametrize("n", [1, 2])
async def test_parametrized_cases_keep_their_parameters_and_fixtures(n, monkeypatch, request):
    loop = sniffio.current_async_library()
    assert request.node.name == f"test_parametrized_cases_keep_their_parameters_and_fixtures[{loop}-{n}]"
    assert request.node.callspec.params == {"loop_name": loop, "n": n}
    monkeypatch.setenv("SARATHI_LOOPS_SELF_TEST", loop)
    assert os.environ["SARATHI_LOOPS_SELF_TEST"] == loop


async def test_a_test_can_ask_for_its_loop_name(loop_name):
    assert loop_name == sniffio.current_async_library()


@pytest.mark.loops("trio")
async def test_a_nearer_marker_chooses_the_loops(request):
    assert request.node.name == "test_a_nearer_marker_chooses_the_loops[trio]"
    assert sniffio.current_async_library() == "trio"


def test_the_trio_twin_raises_what_its_body_raises():
    async def body(expected):
        await trio.sleep(0)
        assert sniffio.current_async_library() == "trio"
        assert expected == 2, "the body failed"

    twin = trio_twin(body)
    assert twin.__name__ == "body" and not asyncio.iscoroutinefunction(twin)
    twin(expected=2)
    with pytest.raises(AssertionError, match="the body failed"):
        twin(expected=1)


def test_every_case_fails_when_its_body_fails(tmp_path):
    """A separate pytest run over a module of passing and failing bodies: each outcome per loop."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    (tmp_path / "conftest.py").write_text(
        "from tests.engine.loops import pytest_configure, pytest_generate_tests, pytest_pycollect_makeitem  # noqa: F401\n"
    )
    (tmp_path / "test_bodies.py").write_text(textwrap.dedent("""
        import pytest
        import sniffio

        pytestmark = pytest.mark.loops("asyncio", "trio")

        async def test_passes():
            assert sniffio.current_async_library() in ("asyncio", "trio")

        async def test_fails():
            assert sniffio.current_async_library() == "neither"

        async def test_fails_after_awaiting():
            import anyio
            await anyio.sleep(0.01)
            raise ValueError("late failure")

        @pytest.mark.parametrize("x", [1, 2])
        async def test_fails_for_one_parameter(x):
            assert x == 1

        def test_sync_tests_stay_single():
            pass
    """))
    (tmp_path / "test_unmarked.py").write_text(textwrap.dedent("""
        import sniffio

        async def test_unmarked_async_tests_stay_on_pytest_asyncio():
            assert sniffio.current_async_library() == "asyncio"
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    outcomes = {
        case.get("name"): "failed" if case.find("failure") is not None or case.find("error") is not None else "passed"
        for case in ElementTree.parse(report).iter("testcase")
    }
    assert outcomes == {
        "test_passes[asyncio]": "passed",
        "test_passes[trio]": "passed",
        "test_fails[asyncio]": "failed",
        "test_fails[trio]": "failed",
        "test_fails_after_awaiting[asyncio]": "failed",
        "test_fails_after_awaiting[trio]": "failed",
        "test_fails_for_one_parameter[asyncio-1]": "passed",
        "test_fails_for_one_parameter[asyncio-2]": "failed",
        "test_fails_for_one_parameter[trio-1]": "passed",
        "test_fails_for_one_parameter[trio-2]": "failed",
        "test_sync_tests_stay_single": "passed",
        "test_unmarked_async_tests_stay_on_pytest_asyncio": "passed",
    }, run.stdout + run.stderr
    assert run.returncode == 1
    assert "late failure" in run.stdout


async def test_gather_keeps_the_order_and_the_errors_asked_for():
    async def value(v, delay):
        await anyio.sleep(delay)
        if isinstance(v, Exception):
            raise v
        return v

    with anyio.fail_after(TIMEOUT):
        assert await gather(value(1, 0.03), value(2, 0.0), value(3, 0.01)) == [1, 2, 3]
        boom = ValueError("boom")
        assert await gather(value(1, 0.01), value(boom, 0.0), return_exceptions=True) == [1, boom]
        cancelled = anyio.Event()

        async def slow():
            try:
                await anyio.sleep(TIMEOUT)
            finally:
                cancelled.set()

        with pytest.raises(ValueError, match="boom"):
            await gather(slow(), value(boom, 0.0))
        assert cancelled.is_set()  # the first error cancels the others


async def test_spawned_tasks_give_their_result_their_error_or_are_cancelled():
    async def value(v):
        await anyio.sleep(0)
        if isinstance(v, Exception):
            raise v
        return v

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            ok = spawn(tg, value(7))
            failing = spawn(tg, value(KeyError("k")))  # kept for result(): the group is not cancelled
            sleeper = spawn(tg, anyio.sleep(TIMEOUT))
            assert await ok.result() == 7
            with pytest.raises(KeyError):
                await failing.result()
            sleeper.cancel()
            await sleeper.wait()
            assert sleeper.cancelled and not ok.cancelled
            with pytest.raises(RuntimeError, match="cancelled"):
                await sleeper.result()
