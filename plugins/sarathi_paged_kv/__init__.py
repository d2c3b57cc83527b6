"""Bundled plugin: the paged KV-cache manager and its prefix cache (the default
`sarathi_make_kv_cache_manager`)."""

from __future__ import annotations

from sarathi_sdk import EngineConfig, hookimpl

from .block_manager import PagedBlockManager, block_hash


@hookimpl(trylast=True)
def sarathi_make_kv_cache_manager(config: EngineConfig, num_blocks: int) -> PagedBlockManager:
    return PagedBlockManager(num_blocks=num_blocks, block_size=config.block_size,
                             enable_prefix_caching=config.enable_prefix_caching)


__all__ = ["PagedBlockManager", "block_hash", "sarathi_make_kv_cache_manager"]
