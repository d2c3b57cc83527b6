"""The default model gives the same greedy text on every build of the CPU kernels this CPU runs:
"Paris" on each (the portable one included), and at least 0.95 of the 32 x 32 greedy tokens of the
agreement set shared between the fast builds (avx512 and avx2 on a Zen 4). Each build runs in a
process of its own, since a process loads one build (`SARATHI_CPU_ARCH`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sarathi_models.cpu_isa import ARCH_ENV, runnable_levels
from sarathi_sdk.bench.greedy import agreement
from tests.gguf.smollm2 import PARIS_QUESTION

FAST_LEVELS = [level.name for level in runnable_levels() if level.fast]
ALL_LEVELS = [level.name for level in runnable_levels()]
MIN_AGREEMENT = 0.95

CHILD = """
import asyncio, json, sys
from sarathi_models.cpu_ops import kernel_variant
from sarathi_sdk import Engine, SamplingParams
from sarathi_sdk.bench.greedy import greedy_tokens

async def main(folder, job, question):
    if job == "greedy":
        return {"tokens": await greedy_tokens(folder, max_num_seqs=4, token_budget=256)}
    async with Engine(folder) as engine:
        prompt = engine.tokenizer.apply_chat_template([{"role": "user", "content": question}])
        out = await engine.complete(prompt, SamplingParams(max_tokens=12, temperature=0))
    return {"variant": kernel_variant(), "text": out.text}

print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
"""


def run_on_level(level: str, folder, job: str) -> dict:
    env = {**os.environ, ARCH_ENV: level}
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), job, PARIS_QUESTION], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("level", ALL_LEVELS)
def test_every_build_answers_paris(smollm2_folder, level):
    result = run_on_level(level, smollm2_folder, "paris")
    assert result["variant"] == level  # the build asked for ran, not a fallback
    assert "Paris" in result["text"], result["text"]


@pytest.mark.timeout(1800)
def test_the_fast_builds_agree_on_the_greedy_tokens(smollm2_folder):
    if len(FAST_LEVELS) < 2:
        pytest.skip(f"this CPU runs one fast build ({FAST_LEVELS})")
    tokens = {level: run_on_level(level, smollm2_folder, "greedy")["tokens"] for level in FAST_LEVELS}
    first = FAST_LEVELS[0]
    for level in FAST_LEVELS[1:]:
        share = agreement(tokens[level], tokens[first])
        assert share >= MIN_AGREEMENT, (first, level, share)
