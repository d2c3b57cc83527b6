"""A decode's marginal cost in a mixed step, measured directly on the engine's own model backend.

The fit over a run's steps (`cpu.decode_marginal_cost`) is poorly conditioned under SARATHI: almost
every mixed step holds exactly `token_budget` tokens, so its prefill tokens and decodes move together,
and the decode-only steps that pin the fit run another path (the CPU decode stack). Here the step is
controlled instead: one prefill chunk of `chunk` tokens after a cached prefix of 256, plus N decodes
at a given context, timed for N in `decodes`; the slope of step time over N is what one more decode
costs a step that carries a chunk anyway. Contexts 256-800 are the issue's range.

The batches use KV blocks of an idle engine (their contents are whatever is there: attention's cost
does not depend on the values), so run it between workloads, on a worker thread (see
docs/benchmarks.md, "Threads on the CPU"). Imports the contract modules and numpy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from ..batch import DecodeSlot, PrefillChunk, ScheduledBatch
from ..interfaces import ModelBackend
from ..sampling import SamplingParams

PREFIX = 256
GREEDY = SamplingParams(temperature=0, max_tokens=1)


def mixed_batch(chunk: int, decodes: int, context: int, block_size: int) -> ScheduledBatch:
    """A `chunk`-token prefill chunk at position PREFIX plus `decodes` decodes at `context`, each on
    blocks of its own: the chunk on 0.., decode i on the ones after."""
    chunk_blocks = -(-(PREFIX + chunk) // block_size)
    per_decode = context // block_size + 1
    prefill = PrefillChunk("chunk", tuple(range(1000, 1000 + chunk)), PREFIX, tuple(range(chunk_blocks)),
                           False, GREEDY)
    slots = tuple(
        DecodeSlot(f"decode-{i}", 100 + i, context,
                   tuple(range(chunk_blocks + i * per_decode, chunk_blocks + (i + 1) * per_decode)), GREEDY)
        for i in range(decodes)
    )
    return ScheduledBatch(step_id=0, prefills=(prefill,), decodes=slots)


def direct_marginal_cost(backend: ModelBackend, block_size: int, contexts: Sequence[int] = (256, 512, 800),
                         decodes: Sequence[int] = (0, 4, 8, 16), chunk: int = 240,
                         repeats: int = 5) -> dict[str, float]:
    """{"ms_per_decode_at_<context>": slope} for each context, step times as medians of `repeats`
    (see `fit_line`: a 240-token chunk's step takes about 250 ms here, and a few percent of that is
    more than 16 decodes cost)."""
    out: dict[str, float] = {}
    for context in contexts:
        batches = [mixed_batch(chunk, n, context, block_size) for n in decodes]
        _, slope = fit_line(backend, batches, decodes, repeats)
        out[f"ms_per_decode_at_{context}"] = slope
    return out


def fit_line(backend: ModelBackend, batches: Sequence[ScheduledBatch], sizes: Sequence[int],
             repeats: int) -> tuple[float, float]:
    """(intercept, slope) in ms of the median step time over `sizes`, one batch per size.

    The batches take turns, one step each per round (in a rotating order), so a drift of the machine's
    speed within the rounds moves every size alike instead of tilting the slope."""
    import numpy as np

    for batch in batches:
        backend.execute(batch)  # warm
    times: list[list[float]] = [[] for _ in batches]
    for round_ in range(repeats):
        for i in (*range(round_ % len(batches), len(batches)), *range(round_ % len(batches))):
            start = time.perf_counter()
            backend.execute(batches[i])
            times[i].append(time.perf_counter() - start)
    seconds = [statistics.median(t) for t in times]
    slope, intercept = np.polyfit(np.asarray(sizes, dtype=float), np.asarray(seconds), 1)
    return float(intercept) * 1e3, float(slope) * 1e3
