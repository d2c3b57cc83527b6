"""Bundled plugin: the paged KV-cache manager (the default `sarathi_make_kv_cache_manager`)."""

from __future__ import annotations

from sarathi_sdk import EngineConfig, hookimpl

from .block_manager import PagedBlockManager


@hookimpl(trylast=True)
def sarathi_make_kv_cache_manager(config: EngineConfig, num_blocks: int) -> PagedBlockManager:
    return PagedBlockManager(num_blocks=num_blocks, block_size=config.block_size)


__all__ = ["PagedBlockManager", "sarathi_make_kv_cache_manager"]
