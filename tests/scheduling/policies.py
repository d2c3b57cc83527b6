"""Build any bundled policy over a fresh paged KV cache, for tests on exact batches."""

from __future__ import annotations

from sarathi_paged_kv import PagedBlockManager
from sarathi_scheduling import POLICIES
from sarathi_sdk import EngineConfig


def make(scheduler: str, num_blocks: int = 1000, **options):
    """`(policy, kv)`; options are EngineConfig fields."""
    config = EngineConfig(scheduler=scheduler, num_kv_blocks=num_blocks, **options)
    kv = PagedBlockManager(num_blocks=num_blocks, block_size=config.block_size,
                           enable_prefix_caching=config.enable_prefix_caching)
    return POLICIES[scheduler](config, kv), kv
