"""The prefix cache of the paged block manager: block names, reference counts, registration only of
full computed blocks, the last token always computed, LRU eviction of cached blocks."""

from __future__ import annotations

import pytest

from sarathi_paged_kv import PagedBlockManager, block_hash
from sarathi_sdk import Request, SamplingParams

BS = 4


def request(rid: str, tokens, priority: int = 0) -> Request:
    return Request(rid, tuple(tokens), SamplingParams(max_tokens=8), 0.0, 0, priority=priority)


def manager(num_blocks: int = 16, **options) -> PagedBlockManager:
    return PagedBlockManager(num_blocks=num_blocks, block_size=BS, enable_prefix_caching=True, **options)


def compute(kv: PagedBlockManager, req: Request, num_tokens: int) -> None:
    """Allocate for and then 'run' the request's next `num_tokens` tokens, as a policy's step and
    update would."""
    assert kv.allocate(req, num_tokens)
    req.num_computed_tokens += num_tokens


def start(kv: PagedBlockManager, req: Request) -> int:
    """What a policy does with the head of its waiting queue."""
    req.num_computed_tokens = kv.match_prefix(req)
    return req.num_computed_tokens


def check_accounting(kv: PagedBlockManager, *live: Request) -> None:
    """Each block's reference count is the number of live tables holding it; held plus free is all."""
    held: dict[int, int] = {}
    for req in live:
        for block in req.block_table:
            held[block] = held.get(block, 0) + 1
    for block in range(kv.num_blocks):
        assert kv.ref_count(block) == held.get(block, 0), block
    assert len(held) + kv.num_free_blocks() == kv.num_blocks


PROMPT = list(range(1, 15))  # 14 tokens: blocks [1-4] [5-8] [9-12] and a partial [13 14]


def test_block_names_chain_the_parent_the_tokens_and_the_extra_key():
    first = block_hash(None, (1, 2, 3, 4))
    assert first == block_hash(None, [1, 2, 3, 4]) and len(first) == 16
    assert block_hash(first, (5, 6, 7, 8)) != block_hash(None, (5, 6, 7, 8))
    assert block_hash(first, (5, 6, 7, 8)) != block_hash(block_hash(None, (1, 2, 3, 5)), (5, 6, 7, 8))
    assert block_hash(None, (1, 2, 3, 4), ("tenant-a",)) != block_hash(None, (1, 2, 3, 4), ("tenant-b",))
    assert block_hash(None, (1, 2, 3, 4), ("tenant-a",)) != first


def test_a_finished_requests_full_blocks_are_hit_by_the_next_one():
    kv = manager()
    a = request("a", PROMPT)
    assert start(kv, a) == 0
    compute(kv, a, len(PROMPT))
    blocks = a.block_table
    kv.free(a)
    assert kv.num_free_blocks() == kv.num_blocks and kv.num_cached_blocks() == 3
    b = request("b", PROMPT + [99])
    assert start(kv, b) == 12
    assert b.block_table == blocks[:3]
    check_accounting(kv, b)


def test_shared_blocks_are_reference_counted_and_free_only_when_nobody_holds_them():
    kv = manager()
    a = request("a", PROMPT)
    compute(kv, a, len(PROMPT))
    kv.allocate(a, 1)  # registers a's full blocks
    b, c = request("b", PROMPT[:9] + [50, 51]), request("c", PROMPT[:8] + [60])
    assert (start(kv, b), start(kv, c)) == (8, 8)
    assert [kv.ref_count(x) for x in a.block_table[:2]] == [3, 3]
    check_accounting(kv, a, b, c)
    free_before = kv.num_free_blocks()
    kv.free(a)
    assert kv.ref_count(b.block_table[0]) == 2
    assert kv.num_free_blocks() == free_before + 2  # a's third and fourth blocks; the shared two are held
    kv.free(b)
    kv.free(c)
    check_accounting(kv)
    assert kv.num_free_blocks() == kv.num_blocks


def test_a_block_is_shared_only_once_its_tokens_are_computed():
    kv = manager()
    a = request("a", PROMPT)
    assert kv.allocate(a, 6)  # the first chunk is scheduled (blocks 0 and 1), not executed yet
    assert start(kv, request("early", PROMPT)) == 0
    a.num_computed_tokens = 6  # its step returned: block 0 full, block 1 half full
    b = request("b", PROMPT)
    assert start(kv, b) == 4 and b.block_table == a.block_table[:1]
    assert kv.allocate(a, 6)
    a.num_computed_tokens = 12
    kv.free(b)
    kv.free(a)
    c = request("c", PROMPT)
    assert start(kv, c) == 12


def test_a_partially_filled_block_is_never_shared():
    kv = manager()
    a = request("a", PROMPT[:6])  # block 1 holds two tokens only
    compute(kv, a, 6)
    kv.free(a)
    assert kv.num_cached_blocks() == 1
    b = request("b", PROMPT)  # its block 1 starts with the same two tokens
    assert start(kv, b) == 4
    assert kv.allocate(b, len(PROMPT) - 4)
    assert kv.ref_count(b.block_table[1]) == 1  # a fresh block, b's alone


def test_the_last_prompt_token_is_always_computed():
    kv = manager()
    a = request("a", PROMPT[:8])  # exactly two blocks
    compute(kv, a, 8)
    kv.free(a)
    same = request("same", PROMPT[:8])
    assert start(kv, same) == 4  # (8 - 1) // 4 blocks: the last token needs its logits
    kv.free(same)
    longer = request("longer", PROMPT[:9])
    assert start(kv, longer) == 8


def test_writes_go_only_to_blocks_the_request_holds_alone():
    kv = manager()
    a = request("a", PROMPT)
    compute(kv, a, len(PROMPT))
    kv.allocate(a, 1)
    b = request("b", PROMPT[:12] + [70, 71, 72, 73, 74])
    assert start(kv, b) == 12
    assert kv.allocate(b, b.num_uncomputed_tokens)
    first_written = b.num_computed_tokens // BS
    assert all(kv.ref_count(x) == 1 for x in b.block_table[first_written:])
    assert not set(b.block_table[first_written:]) & set(a.block_table)


def test_cached_blocks_are_evicted_least_recently_freed_first_and_only_when_needed():
    kv = manager(num_blocks=6)
    reqs = [request(name, [base + i for i in range(4)] + [0]) for name, base in (("a", 10), ("b", 20), ("c", 30))]
    for req in reqs:  # one full block and one partial each
        compute(kv, req, 5)
    for req in reqs:
        kv.free(req)
    assert kv.num_free_blocks() == 6 and kv.num_cached_blocks() == 3
    d = request("d", list(range(100, 116)))
    assert kv.allocate(d, 12)  # the three unnamed blocks: no eviction yet
    assert kv.num_cached_blocks() == 3
    assert kv.allocate(d, 16)  # one more block: evicts a's, freed first
    assert kv.num_cached_blocks() == 2
    hits = {}
    for req in reqs:
        again = request(req.request_id + "2", req.prompt_token_ids)
        hits[req.request_id] = start(kv, again)
        kv.free(again)
    assert hits == {"a": 0, "b": 4, "c": 4}


def test_a_freed_prefix_loses_its_tail_before_its_head():
    kv = manager(num_blocks=4)
    a = request("a", PROMPT[:12] + [0])
    compute(kv, a, 13)  # three full blocks and one partial: the whole cache
    kv.free(a)
    b = request("b", [90, 91])
    assert kv.allocate(b, 2)  # takes the unnamed partial block
    assert kv.allocate(b, 6)  # evicts one cached block: a's last
    again = request("a2", PROMPT[:12] + [0])
    assert start(kv, again) == 8


def test_a_preempted_request_finds_its_own_blocks_again_outputs_included():
    kv = manager()
    a = request("a", PROMPT[:6])
    compute(kv, a, 6)
    for token in (7, 8, 9, 10, 11):  # five decodes: tokens 7.. are fed back one at a time
        a.output_token_ids.append(token)
        compute(kv, a, 1)
    a.output_token_ids.append(12)  # sampled, never fed back
    assert a.num_computed_tokens == 11 and a.num_tokens == 12
    blocks = a.block_table
    kv.free(a)  # preempted by recompute
    a.num_computed_tokens = 0
    assert start(kv, a) == 8 and a.block_table == blocks[:2]


def test_a_duplicate_block_computed_concurrently_stays_unnamed():
    kv = manager()
    a, b = request("a", PROMPT[:5]), request("b", PROMPT[:5])
    compute(kv, a, 5)
    compute(kv, b, 5)
    first = a.block_table[0]
    kv.free(a)  # names a's first block
    kv.free(b)  # b's copy finds the name taken
    assert kv.num_cached_blocks() == 1
    assert kv.num_free_blocks() == kv.num_blocks
    c = request("c", PROMPT[:5])
    assert start(kv, c) == 4 and c.block_table == (first,)


def test_an_evicted_block_handed_to_another_request_no_longer_matches():
    kv = manager(num_blocks=2)
    a = request("a", PROMPT[:5])
    compute(kv, a, 5)
    kv.free(a)
    b = request("b", [40] * 8)
    assert kv.allocate(b, 8)  # both blocks, the cached one evicted
    compute(kv, b, 0)
    kv.free(b)
    assert start(kv, request("a2", PROMPT[:5])) == 0


def test_an_extra_key_keeps_requests_apart():
    kv = manager(extra_key=lambda req: (req.priority,))
    a = request("a", PROMPT, priority=1)
    compute(kv, a, len(PROMPT))
    kv.free(a)
    assert start(kv, request("other", PROMPT, priority=2)) == 0
    assert start(kv, request("same", PROMPT, priority=1)) == 12


def test_caching_off_matches_nothing_and_names_nothing():
    kv = PagedBlockManager(num_blocks=8, block_size=BS)
    a = request("a", PROMPT)
    compute(kv, a, len(PROMPT))
    kv.free(a)
    assert kv.num_cached_blocks() == 0
    assert start(kv, request("b", PROMPT)) == 0


def test_matching_a_request_that_holds_blocks_is_a_bug():
    kv = manager()
    a = request("a", PROMPT)
    compute(kv, a, 4)
    with pytest.raises(RuntimeError, match="holds blocks"):
        kv.match_prefix(a)


def test_the_plugin_turns_the_cache_on_from_the_config():
    from sarathi_paged_kv import sarathi_make_kv_cache_manager
    from sarathi_sdk import EngineConfig

    assert sarathi_make_kv_cache_manager(EngineConfig(enable_prefix_caching=True), num_blocks=4).prefix_caching
    assert not sarathi_make_kv_cache_manager(EngineConfig(), num_blocks=4).prefix_caching
