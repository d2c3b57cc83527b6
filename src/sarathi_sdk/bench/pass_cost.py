"""What a forward pass costs before its first token: the fixed cost of a prefill pass and of a
decode-only step, measured directly on the engine's own model backend, and what they bound.

SARATHI and a prefill-first policy (vllm) do the same prefill tokens and decodes on the mixed
workload; what differs is how many passes carry them. SARATHI runs more prefill passes (one per
256-token budget, not one per whole prompt) and fewer decode-only steps (its decodes ride along with
the chunks). So its throughput edge over vllm is at most what the decode-only steps it saves cost
beyond their decodes, less what its extra prefill passes cost beyond their tokens:

    edge <= (vllm's decode-only steps - sarathi's) x decode step fixed cost
            - (sarathi's prefill passes - vllm's) x prefill pass fixed cost

Each fixed cost is the intercept of a line through step times: whole prompts of `prompt_lens`
tokens (no cached prefix), and decode-only steps of `decodes` decodes at `context` tokens, the sizes
taking turns (`decode_cost.fit_line`). The batches use KV blocks of an idle engine, as `decode_cost`
does. Imports the contract modules and numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..batch import DecodeSlot, PrefillChunk, ScheduledBatch
from ..interfaces import ModelBackend
from .decode_cost import GREEDY, fit_line


def prompt_batch(length: int, block_size: int) -> ScheduledBatch:
    """One whole `length`-token prompt on blocks 0.., sampling its first token."""
    blocks = tuple(range(-(-length // block_size)))
    return ScheduledBatch(step_id=0, prefills=(PrefillChunk("prompt", tuple(range(1000, 1000 + length)), 0, blocks,
                                                            True, GREEDY),))


def decode_batch(decodes: int, context: int, block_size: int) -> ScheduledBatch:
    """`decodes` decodes at `context` tokens of context, each on blocks of its own."""
    per_decode = context // block_size + 1
    return ScheduledBatch(step_id=0, decodes=tuple(
        DecodeSlot(f"decode-{i}", 100 + i, context, tuple(range(i * per_decode, (i + 1) * per_decode)), GREEDY)
        for i in range(decodes)
    ))


def pass_costs(backend: ModelBackend, block_size: int, prompt_lens: Sequence[int] = (16, 64, 240),
               decodes: Sequence[int] = (1, 4, 8, 16), context: int = 512, repeats: int = 5) -> dict[str, float]:
    """Fixed and marginal costs (ms) of a prefill pass per prompt token and of a decode step per decode."""
    prefill_fixed, per_token = fit_line(backend, [prompt_batch(n, block_size) for n in prompt_lens], prompt_lens,
                                        repeats)
    decode_fixed, per_decode = fit_line(backend, [decode_batch(n, context, block_size) for n in decodes], decodes,
                                        repeats)
    return {"prefill_fixed_ms": prefill_fixed, "prefill_ms_per_token": per_token,
            "decode_fixed_ms": decode_fixed, "decode_ms_per_decode": per_decode}


def sarathi_edge_bound(costs: dict[str, float], sarathi: dict[str, float], vllm: dict[str, float]) -> dict[str, float]:
    """The bound in the module docstring, in seconds, from each policy's `cpu.step_kinds` of one run."""
    saved = (vllm["decode_steps"] - sarathi["decode_steps"]) * costs["decode_fixed_ms"] / 1e3
    spent = (sarathi["prefill_steps"] - vllm["prefill_steps"]) * costs["prefill_fixed_ms"] / 1e3
    return {"decode_steps_saved_s": saved, "prefill_passes_cost_s": spent, "edge_s": saved - spent}
