"""A stage process dying ends every open stream with EngineDeadError and the engine closes; the engine's
process dying takes its stage processes with it. No stage process outlives either."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sarathi_sdk import Engine, EngineDeadError, SamplingParams
from tests.parallel.conftest import TIMEOUT, BackendProbe, assert_gone, stage_pids

PROMPTS = [[(7 * i + k) % 256 for i in range(n)] for k, n in ((1, 6), (2, 21), (3, 13))]
DEATH_TIMEOUT = 30.0
"""Seconds within which every stream must have ended after a stage died, and the engine closed."""


async def test_killing_a_stage_fails_every_stream_and_the_engine_closes(tiny_llama):
    probe = BackendProbe()
    params = SamplingParams(max_tokens=500, temperature=0, ignore_eos=True)
    engine = Engine(tiny_llama, pipeline_parallel_size=2, token_budget=16, dtype="float32", block_size=4,
                    plugins=[probe])
    async with asyncio.timeout(TIMEOUT):
        await engine.start()
        pids = stage_pids(probe.backend)
        streaming = asyncio.Event()

        async def one(prompt: list[int]) -> None:
            with pytest.raises(EngineDeadError):
                async for _ in engine.generate(prompt, params):
                    streaming.set()

        tasks = [asyncio.create_task(one(p)) for p in PROMPTS]
        await streaming.wait()
        os.kill(pids[0], signal.SIGKILL)
        async with asyncio.timeout(DEATH_TIMEOUT):
            await asyncio.gather(*tasks)
            with pytest.raises(EngineDeadError):
                await engine.check_health()
            await engine.close()
    assert engine.stats().num_running == 0
    assert_gone(pids)


ORPHAN_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from sarathi_sdk import Engine
    from tests.parallel.conftest import BackendProbe, stage_pids

    async def main():
        probe = BackendProbe()
        async with Engine(sys.argv[1], pipeline_parallel_size=2, dtype="float32", block_size=4, plugins=[probe]):
            print(stage_pids(probe.backend)[0], flush=True)
            await asyncio.sleep(600)

    asyncio.run(main())
""")


def test_a_stage_exits_when_the_engine_process_is_killed(tiny_llama):
    app = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT, tiny_llama], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        ready, _, _ = select.select([app.stdout], [], [], TIMEOUT)
        line = app.stdout.readline() if ready else ""  # the engine started: its stage's pid
        assert line.strip().isdigit(), "the engine did not start"
        stage = int(line)
    finally:
        app.kill()
        app.wait(TIMEOUT)
    deadline = time.monotonic() + DEATH_TIMEOUT
    while _alive(stage) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(stage)


def _alive(pid: int) -> bool:
    """Running (a zombie left to a container's init that never reaps counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
