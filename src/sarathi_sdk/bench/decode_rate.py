"""A decode rate: tokens/s of N requests decoding together, and the prompts every CPU bench gives it.

`bench.cpu` measures it on its sarathi engine, `bench.cpu --isa` in one worker process per ISA level
(`isa_child`), `openmp_teams` beside another OpenMP team; llama.cpp's side (`llamacpp`) decodes the
same number of tokens after a prompt of the same length, so the rates compare. Imports only the
public API and the benchmark's own modules.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .. import Engine, RequestOutput, SamplingParams
from .records import final_metrics
from .tasks import gather

PROMPT_LEN = 32
DECODE_TOKENS = 48


def token_prompt(length: int, salt: int) -> list[int]:
    """`length` token ids below 40,001, different for every `salt`: a prompt no cache has seen."""
    return [1 + (salt * 7919 + j * 104729) % 40000 for j in range(length)]


def median_tbt(outputs: Sequence[RequestOutput]) -> float:
    return statistics.median(t for o in outputs for t in final_metrics(o).tbts)


async def decode_rate(engine: Engine, batch_size: int) -> float:
    """Tokens/s of `batch_size` requests decoding together (median time between tokens)."""
    params = SamplingParams(max_tokens=DECODE_TOKENS, temperature=0, ignore_eos=True)
    outputs = await gather(*(engine.complete(token_prompt(PROMPT_LEN, i), params) for i in range(batch_size)))
    return batch_size / median_tbt(outputs)
