"""The paged block manager: per-chunk allocation, free list, all-or-nothing growth."""

from __future__ import annotations

import pytest

from sarathi_paged_kv import PagedBlockManager
from tests.conftest import make_request


def test_allocation_covers_only_the_tokens_asked_for():
    kv = PagedBlockManager(num_blocks=10, block_size=4)
    req = make_request("a", prompt_len=30)
    assert kv.allocate(req, 5)
    assert len(req.block_table) == 2
    req.num_computed_tokens = 5
    assert kv.allocate(req, 3)  # positions 5..7 still fit in block 2
    assert len(req.block_table) == 2
    req.num_computed_tokens = 8
    assert kv.allocate(req, 1)
    assert len(req.block_table) == 3
    assert kv.num_free_blocks() == 7


def test_failed_allocation_changes_nothing():
    kv = PagedBlockManager(num_blocks=3, block_size=4)
    a, b = make_request("a", 8), make_request("b", 8)
    assert kv.allocate(a, 8)
    assert not kv.allocate(b, 8)
    assert b.block_table == ()
    assert kv.num_free_blocks() == 1


def test_free_returns_every_block_and_blocks_are_never_shared():
    kv = PagedBlockManager(num_blocks=8, block_size=2)
    reqs = [make_request(str(i), 4) for i in range(4)]
    for r in reqs:
        assert kv.allocate(r, 4)
    held = [b for r in reqs for b in r.block_table]
    assert sorted(held) == list(range(8))
    kv.free(reqs[1])
    assert reqs[1].block_table == () and kv.num_free_blocks() == 2
    assert kv.allocate(reqs[1], 4)
    held = [b for r in reqs for b in r.block_table]
    assert len(set(held)) == len(held) == 8
    for r in reqs:
        kv.free(r)
    assert kv.num_free_blocks() == kv.num_blocks == 8


def test_free_twice_is_harmless():
    kv = PagedBlockManager(num_blocks=2, block_size=2)
    req = make_request("a", 3)
    assert kv.allocate(req, 3)
    kv.free(req)
    kv.free(req)
    assert kv.num_free_blocks() == 2


@pytest.mark.parametrize("bad", [0, -1])
def test_constructor_rejects_empty_cache(bad):
    with pytest.raises(ValueError):
        PagedBlockManager(num_blocks=bad, block_size=4)


def test_plugin_builds_manager_from_config():
    from sarathi_paged_kv import sarathi_make_kv_cache_manager
    from sarathi_sdk import EngineConfig, KVCacheManager

    kv = sarathi_make_kv_cache_manager(EngineConfig(block_size=8), num_blocks=5)
    assert isinstance(kv, KVCacheManager)
    assert (kv.block_size, kv.num_blocks, kv.num_free_blocks()) == (8, 5, 5)


def test_the_block_freed_last_is_reused_first():
    kv = PagedBlockManager(num_blocks=8, block_size=4)
    a, b = make_request("a", 8), make_request("b", 8)
    assert kv.allocate(a, 8) and a.block_table == (0, 1)
    kv.free(a)
    assert kv.allocate(b, 8) and b.block_table == (0, 1)


def test_trim_gives_back_the_blocks_past_the_computed_tokens_and_keeps_cached_ones():
    manager = PagedBlockManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    request = make_request("r", 9)
    assert manager.allocate(request, 9)
    request.num_computed_tokens = 9
    request.output_token_ids = [50]
    assert manager.allocate(request, 1 + 6)  # the new token and six proposed ones: positions 9 .. 15
    assert len(request.block_table) == 4 and manager.num_free_blocks() == 4
    request.num_computed_tokens = 11  # verification kept one proposed token
    manager.trim(request)
    assert len(request.block_table) == 3 and manager.num_free_blocks() == 5
    manager.free(request)
    assert manager.num_free_blocks() == 8 and manager.num_cached_blocks() == 2
