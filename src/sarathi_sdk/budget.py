"""`token_budget="auto"`: pick the per-step token budget by profiling the started backend.

Sarathi-Serve chooses its token budget offline, as the largest one whose step time stays within the
time-between-tokens SLO: a step's time is what every running decode waits for its next token, and a
larger budget means fewer, bigger steps for prefills (higher throughput) at the cost of that wait.
`profile_token_budget` does the same on this machine at engine start, through the ModelBackend protocol
only (`backend.execute`), so it holds for any backend.

Each candidate budget B runs a synthetic step of exactly B tokens shaped like a loaded stall-free
step: a few decodes over some context plus one prefill chunk filling the rest. Step time grows with the
tokens, so the search stops at the first candidate over the SLO.

The KV cache: the profile writes into blocks no request holds yet (the engine builds its KV manager
after the profile, so every block is free and no prefix-cache entry points at one). What it leaves
there is the K/V of real forward passes, finite values like those any finished request leaves in its
freed blocks; every request writes a slot before it reads it, and masked positions read as zero weight,
so the leftovers never reach a later request's output. The batches are greedy, so they draw nothing
from the sampler's random stream either.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

import logging
import statistics
import time

from .batch import DecodeSlot, PrefillChunk, ScheduledBatch
from .config import EngineConfig
from .errors import ConfigError
from .interfaces import KVCacheSpec, ModelBackend
from .sampling import SamplingParams

logger = logging.getLogger(__name__)

MIN_BUDGET = 32
"""Smallest candidate (unless `max_num_seqs` is larger): below it a step is all fixed overhead."""
MAX_BUDGET = 4096
"""Largest candidate: past it a step is long enough that bigger budgets gain no throughput."""
NUM_DECODES = 16
"""Decodes in each profile step when `max_num_seqs` is not given (at most a quarter of the budget)."""
DECODE_CONTEXT = 256
"""Tokens of context each profile decode attends to."""
TIMED_RUNS = 3
"""Timed runs per candidate, after one warm-up; the median counts."""

_GREEDY = SamplingParams(temperature=0, max_tokens=1)


def candidate_budgets(config: EngineConfig, spec: KVCacheSpec, num_blocks: int) -> list[int]:
    """Powers of two from `MIN_BUDGET` up to a cap, increasing; `max_num_seqs` or `low_chunk_size`,
    when given and larger, is the first (the budget may not be below them).

    The cap is the smallest of `MAX_BUDGET`, the model's length limit (one prefill chunk carries the
    step) and the tokens the KV cache holds."""
    cap = min(MAX_BUDGET, num_blocks * config.block_size, _max_len(config, spec))
    floor = max(MIN_BUDGET, config.max_num_seqs or 0, config.low_chunk_size or 0)
    if floor > cap:
        raise ConfigError(
            f"token_budget='auto' cannot try a budget of at least {floor} tokens: the model's length and the "
            f"KV cache allow one prefill step of at most {cap}; set token_budget yourself"
        )
    budgets, power = [floor], 1 << floor.bit_length()  # the smallest power of two above floor
    while power <= cap:
        budgets.append(power)
        power *= 2
    return budgets


def profile_token_budget(backend: ModelBackend, config: EngineConfig, spec: KVCacheSpec,
                         num_blocks: int) -> tuple[int, list[tuple[int, float]]]:
    """The largest candidate budget whose median step time meets `config.tbt_slo`, and the profile as
    (budget, seconds) pairs in the order run. Call after `backend.start(config, num_blocks)`.

    Raises ConfigError when even the smallest candidate is over the SLO."""
    slo = config.tbt_slo
    if slo is None:  # EngineConfig refuses token_budget="auto" without it
        raise ConfigError("token_budget='auto' needs tbt_slo=SECONDS: the step-time target the budget must meet")
    candidates = candidate_budgets(config, spec, num_blocks)
    cap = candidates[-1]
    context = min(DECODE_CONTEXT, cap - 1)
    decode_blocks = tuple(range(context // config.block_size + 1))  # positions 0 .. context
    vocab = spec.vocab_size or 1000
    # Write the decodes' context once, so they never read a slot nothing wrote.
    backend.execute(ScheduledBatch(step_id=-1, prefills=(
        PrefillChunk("sarathi-profile-context", _tokens(context, vocab), 0, decode_blocks, False, _GREEDY),)))
    profile: list[tuple[int, float]] = []
    for budget in candidates:
        num_decodes = min(config.max_num_seqs or NUM_DECODES, budget // 4)
        batch = _step(budget, num_decodes, context, decode_blocks, config.block_size, num_blocks, vocab)
        times = []
        for run in range(1 + TIMED_RUNS):
            start = time.perf_counter()
            backend.execute(batch)
            if run:
                times.append(time.perf_counter() - start)
        profile.append((budget, statistics.median(times)))
        if profile[-1][1] > slo:
            break
    met = [budget for budget, seconds in profile if seconds <= slo]
    table = ", ".join(f"{budget}: {seconds * 1e3:.2f} ms" for budget, seconds in profile)
    if not met:
        raise ConfigError(
            f"token_budget='auto': even the smallest budget ({profile[0][0]} tokens) takes "
            f"{profile[0][1] * 1e3:.2f} ms per step, over tbt_slo={slo * 1e3:.2f} ms; raise tbt_slo or set "
            "token_budget yourself"
        )
    logger.info("token_budget='auto' chose %d tokens for tbt_slo=%.2f ms; step time per budget: %s",
                met[-1], slo * 1e3, table)
    return met[-1], profile


def _step(budget: int, num_decodes: int, context: int, decode_blocks: tuple[int, ...], block_size: int,
          num_blocks: int, vocab: int) -> ScheduledBatch:
    """`num_decodes` decodes at position `context` sharing `decode_blocks`, plus one last prefill chunk
    of the rest of `budget` from position 0, in the blocks after them (wrapping round; the profile
    reads no values, so sharing a block is harmless)."""
    prefill_len = budget - num_decodes
    blocks = tuple((len(decode_blocks) + i) % num_blocks for i in range(-(-prefill_len // block_size)))
    chunk = PrefillChunk("sarathi-profile-prefill", _tokens(prefill_len, vocab), 0, blocks, True, _GREEDY)
    decodes = tuple(DecodeSlot(f"sarathi-profile-decode-{i}", i % vocab, context, decode_blocks, _GREEDY)
                    for i in range(num_decodes))
    return ScheduledBatch(step_id=-1, prefills=(chunk,), decodes=decodes)


def _tokens(n: int, vocab: int) -> tuple[int, ...]:
    return tuple((7 * i + 1) % vocab for i in range(n))


def _max_len(config: EngineConfig, spec: KVCacheSpec) -> int:
    return config.max_model_len or spec.max_model_len or MAX_BUDGET
