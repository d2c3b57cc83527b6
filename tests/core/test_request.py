"""Request state: chunks, decode slots, finishing, recompute after preemption."""

from sarathi_sdk import FinishReason, SamplingParams
from tests.conftest import make_request


def test_prefill_chunks_walk_the_prompt():
    req = make_request("r", prompt_len=10)
    req.block_table = (3, 1)
    chunk = req.prefill_chunk(4)
    assert chunk.token_ids == req.prompt_token_ids[:4] and chunk.start_pos == 0 and not chunk.is_last_chunk
    assert chunk.block_table == (3, 1)
    req.num_computed_tokens = 4
    last = req.prefill_chunk(6)
    assert last.start_pos == 4 and last.is_last_chunk and last.token_ids == req.prompt_token_ids[4:]


def test_a_request_decodes_once_everything_but_its_newest_token_is_cached():
    req = make_request("r", prompt_len=3)
    req.num_computed_tokens = 3
    assert not req.is_decode
    req.append_token(42)
    assert req.is_decode
    slot = req.decode_slot()
    assert (slot.token_id, slot.position) == (42, 3)


def test_recompute_prefill_covers_prompt_and_output():
    req = make_request("r", prompt_len=3)
    req.output_token_ids = [7, 8]
    chunk = req.prefill_chunk(5)
    assert chunk.token_ids == req.prompt_token_ids + (7, 8) and chunk.is_last_chunk


def test_append_token_reports_why_a_request_ends():
    req = make_request("r", prompt_len=2, max_tokens=3, stop_token_ids=[9])
    req.eos_token_ids = frozenset({2})
    assert req.append_token(5) is None
    assert req.append_token(9) is FinishReason.STOP
    req2 = make_request("r2", prompt_len=2, max_tokens=2)
    req2.eos_token_ids = frozenset({2})
    assert req2.append_token(2) is FinishReason.STOP
    req3 = make_request("r3", prompt_len=2, max_tokens=2, ignore_eos=True)
    req3.eos_token_ids = frozenset({2})
    assert req3.append_token(2) is None
    assert req3.append_token(2) is FinishReason.LENGTH


def test_history_travels_only_when_a_penalty_needs_it():
    plain = make_request("a", prompt_len=2)
    plain.output_token_ids = [1]
    assert plain.decode_slot().history is None
    penalised = make_request("b", prompt_len=2, repetition_penalty=1.2)
    penalised.output_token_ids = [1]
    history = penalised.decode_slot().history
    assert history.prompt_token_ids == penalised.prompt_token_ids and history.output_token_ids == (1,)


def test_sampling_params_normalise_stop_and_know_greedy():
    params = SamplingParams(stop="END", temperature=0)
    assert params.stop == ("END",) and params.is_greedy and not params.needs_output_history
