"""The SARATHI decode-maximal policy on exact batches."""

from __future__ import annotations

from sarathi_paged_kv import PagedBlockManager
from sarathi_scheduling import SarathiPolicy
from sarathi_sdk import EngineConfig, FinishReason, RequestStatus
from tests.conftest import make_request
from tests.scheduling.helpers import fake_output, shape, step


def make_policy(token_budget=256, num_blocks=1000, block_size=16, max_num_seqs=None):
    config = EngineConfig(token_budget=token_budget, block_size=block_size, max_num_seqs=max_num_seqs)
    kv = PagedBlockManager(num_blocks=num_blocks, block_size=block_size)
    return SarathiPolicy(config, kv), kv


def start_decoding(policy, *requests):
    """Run the requests' prompts to completion so each is a running decode."""
    for r in requests:
        policy.add(r)
    while not all(r.is_decode for r in requests):
        step(policy)


def test_three_decodes_piggyback_on_700_token_prompt_at_budget_256():
    policy, _ = make_policy(token_budget=256)
    decoders = [make_request(f"d{i}", prompt_len=20, max_tokens=100) for i in range(3)]
    start_decoding(policy, *decoders)
    long = make_request("long", prompt_len=700, max_tokens=100)
    policy.add(long)
    shapes = [shape(step(policy)[0]) for _ in range(4)]
    assert shapes[:3] == [(3, [("long", 253)]), (3, [("long", 253)]), (3, [("long", 194)])]
    assert shapes[3] == (4, [])  # the prompt is done: it decodes alongside the others


def test_prompt_and_decodes_share_one_step():
    policy, _ = make_policy(token_budget=64)
    a = make_request("a", prompt_len=10, max_tokens=10)
    start_decoding(policy, a)
    b = make_request("b", prompt_len=30, max_tokens=10)
    policy.add(b)
    batch, _ = step(policy)
    assert shape(batch) == (1, [("b", 30)])
    assert batch.num_tokens == 31
    assert batch.prefills[0].is_last_chunk


def test_each_prefill_gets_what_is_left_of_the_budget_in_arrival_order():
    policy, _ = make_policy(token_budget=150)
    for rid in ("x", "y", "z"):
        policy.add(make_request(rid, prompt_len=100))
    batch, _ = step(policy)
    assert shape(batch) == (0, [("x", 100), ("y", 50)])
    batch, _ = step(policy)
    # x decodes, y's partial prefill comes before the new z
    assert shape(batch) == (1, [("y", 50), ("z", 99)])


def test_budget_is_clamped_when_decodes_fill_it():
    policy, _ = make_policy(token_budget=4, max_num_seqs=4)
    decoders = [make_request(f"d{i}", prompt_len=2, max_tokens=50) for i in range(4)]
    start_decoding(policy, *decoders)
    policy.add(make_request("late", prompt_len=8))
    batch, _ = step(policy)
    assert shape(batch) == (4, [])
    assert batch.num_tokens == 4


def test_chunks_of_one_request_are_in_order_and_contiguous():
    policy, _ = make_policy(token_budget=7)
    req = make_request("r", prompt_len=30, max_tokens=2)
    policy.add(req)
    starts, ends = [], []
    while not req.output_token_ids:
        batch, _ = step(policy)
        (chunk,) = batch.prefills
        starts.append(chunk.start_pos)
        ends.append(chunk.start_pos + len(chunk.token_ids))
        assert chunk.token_ids == req.prompt_token_ids[chunk.start_pos : ends[-1]]
    assert starts == [0] + ends[:-1] and ends[-1] == 30


def test_max_num_seqs_bounds_admission():
    policy, _ = make_policy(token_budget=100, max_num_seqs=2)
    for rid in "abc":
        policy.add(make_request(rid, prompt_len=5))
    batch, _ = step(policy)
    assert [c.request_id for c in batch.prefills] == ["a", "b"]
    assert policy.stats().num_waiting == 1


def test_finished_requests_free_their_blocks():
    policy, kv = make_policy(token_budget=64, num_blocks=10, block_size=4)
    req = make_request("r", prompt_len=6, max_tokens=3)
    policy.add(req)
    finished = []
    while not finished:
        _, finished = step(policy)
    assert finished == [req]
    assert req.finish_reason is FinishReason.LENGTH and req.output_token_ids == [5, 5, 5]
    assert kv.num_free_blocks() == 10 and not policy.has_work()


def test_eos_and_stop_token_end_a_request():
    policy, _ = make_policy()
    req = make_request("r", prompt_len=4, max_tokens=10)
    req.eos_token_ids = frozenset({9})
    policy.add(req)
    _, finished = step(policy, token_id=9)
    assert finished == [req] and req.finish_reason is FinishReason.STOP


def test_kv_exhaustion_preempts_youngest_and_admits_nothing_new():
    policy, kv = make_policy(token_budget=64, num_blocks=4, block_size=4)
    old = make_request("old", prompt_len=8, max_tokens=3)
    young = make_request("young", prompt_len=7, max_tokens=20)
    policy.add(old)
    policy.add(young)
    step(policy)  # both prompts in one step: 2 + 2 blocks, cache full
    assert kv.num_free_blocks() == 0
    waiting = make_request("new", prompt_len=1)
    policy.add(waiting)
    batch, _ = step(policy)  # old needs a 3rd block for position 8: young is preempted
    assert shape(batch) == (1, [])
    assert batch.decodes[0].request_id == "old"
    assert young.status is RequestStatus.WAITING and young.num_computed_tokens == 0
    assert young.block_table == () and young.num_preemptions == 1
    assert policy.stats().num_preemptions == 1
    # the victim is requeued at the front: it comes back before "new", prompt and output recomputed
    for _ in range(20):
        batch, _ = step(policy)
        if batch.prefills:
            break
    assert batch.prefills[0].request_id == "young"
    assert batch.prefills[0].token_ids == young.prompt_token_ids + (5,)


def test_youngest_decode_preempts_itself_when_no_one_younger_holds_blocks():
    policy, kv = make_policy(token_budget=64, num_blocks=4, block_size=4)
    old = make_request("old", prompt_len=7, max_tokens=20)  # 2 blocks, one slot to spare
    young = make_request("young", prompt_len=8, max_tokens=20)  # 2 full blocks
    policy.add(old)
    policy.add(young)
    step(policy)
    batch, _ = step(policy)  # old fits its decode; young needs a 5th block and is the youngest
    assert shape(batch) == (1, [])
    assert batch.decodes[0].request_id == "old"
    assert young.status is RequestStatus.WAITING and young.block_table == ()
    assert kv.num_free_blocks() == 2


def test_new_request_waits_while_the_cache_is_full():
    policy, kv = make_policy(token_budget=64, num_blocks=2, block_size=4)
    a = make_request("a", prompt_len=4, max_tokens=20)
    policy.add(a)
    step(policy)
    b = make_request("b", prompt_len=4, max_tokens=20)
    policy.add(b)
    batch, _ = step(policy)  # a's decode takes the last block; b cannot start
    assert shape(batch) == (1, [])
    assert b.status is RequestStatus.WAITING and kv.num_free_blocks() == 0


def test_in_flight_request_is_never_scheduled_twice():
    policy, _ = make_policy(token_budget=64)
    a, b = make_request("a", prompt_len=10), make_request("b", prompt_len=10)
    policy.add(a)
    first = policy.schedule()
    policy.add(b)
    second = policy.schedule()
    assert first.request_ids == ("a",) and second.request_ids == ("b",)
    assert policy.schedule().is_empty
    policy.update(first, fake_output(first))
    third = policy.schedule()
    assert third.request_ids == ("a",)


def test_abort_frees_blocks_now_or_when_its_batch_returns():
    policy, kv = make_policy(token_budget=64, num_blocks=10, block_size=4)
    a, b = make_request("a", prompt_len=10), make_request("b", prompt_len=10)
    policy.add(a)
    policy.add(b)
    batch = policy.schedule()
    assert policy.abort("a") is a and a.finish_reason is FinishReason.ABORT
    assert kv.num_free_blocks() == 4  # a's batch is executing: its blocks stay until it returns
    finished = policy.update(batch, fake_output(batch))
    assert a not in finished and kv.num_free_blocks() == 7
    assert policy.abort("b") is b and kv.num_free_blocks() == 10
    assert policy.abort("b") is None and not policy.has_work()


def test_abort_of_waiting_request():
    policy, kv = make_policy()
    req = make_request("w", prompt_len=3)
    policy.add(req)
    assert policy.abort("w") is req
    assert not policy.has_work() and policy.schedule().is_empty


def test_step_ids_increase():
    policy, _ = make_policy()
    policy.add(make_request("a", prompt_len=3, max_tokens=5))
    ids = [step(policy)[0].step_id for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
