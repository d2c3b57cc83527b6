"""Engine-wide counters: what `engine.stats()` returns and what observers receive each step.

Per-request timings (TTFT, TBT, scheduling delay) are `request.RequestMetrics`; this module holds the
engine's view. Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of the engine between steps."""

    num_waiting: int
    num_running: int
    kv_blocks_total: int
    kv_blocks_free: int
    num_steps: int
    num_preemptions: int
    num_tokens_processed: int
    """Tokens (prefill and decode) executed since start."""
    prefix_cache_hit_rate: float = 0.0
    """Prompt tokens found in the prefix cache over the prompt tokens of the requests admitted so
    far (each request counted once, at its first admission); 0.0 with `enable_prefix_caching` off."""
