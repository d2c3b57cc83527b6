"""The metric arithmetic on timelines computed by hand."""

from __future__ import annotations

import math

import pytest

from sarathi_sdk.bench.model_cost import ModelCost
from sarathi_sdk.bench.records import RequestRecord, StepRecord
from sarathi_sdk.bench.report import (
    decode_throughput,
    percentile,
    piecewise_linear,
    request_metrics,
    step_metrics,
)

# Request a: arrives 0, scheduled 1, tokens at 2, 3, 5; done at 5.  Request b: arrives 1, scheduled
# 1.5, tokens at 4, 4.5; done at 6 (a stop string held its end back), preempted once.
A = RequestRecord(arrival=0.0, scheduled=1.0, token_times=(2.0, 3.0, 5.0), finished=5.0, prompt_len=10)
B = RequestRecord(arrival=1.0, scheduled=1.5, token_times=(4.0, 4.5), finished=6.0, prompt_len=20,
                  num_preemptions=1)


def test_percentile_interpolates_between_order_statistics():
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90) == pytest.approx(4.6)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_request_metrics_on_a_hand_timeline():
    m = request_metrics([A, B])
    assert m["duration"] == 6.0
    assert m["request_throughput"] == pytest.approx(2 / 6)
    assert m["output_throughput"] == pytest.approx(5 / 6)
    assert m["e2e_throughput"] == pytest.approx(35 / 6)
    assert m["num_preemptions"] == 1
    # TTFT 2 and 3; scheduling delay 1 and 0.5; prefill time 1 and 2.5.
    assert m["ttft_p50"] == pytest.approx(2.5)
    assert m["scheduling_delay_p50"] == pytest.approx(0.75)
    assert m["prefill_time_p50"] == pytest.approx(1.75)
    # Token population of gaps: 1, 2 (a) and 0.5 (b).
    assert m["tbt_p50"] == pytest.approx(1.0)
    assert m["tbt_p99"] == pytest.approx(1.98)
    assert m["tbt_max"] == 2.0
    # TPOT per request: a (5 - 2) / 2 = 1.5, b 0.5 / 1.
    assert m["tpot_p50"] == pytest.approx(1.0)
    assert m["e2e_latency_p50"] == pytest.approx(5.0)


def _step(start, end, prefill=0, decodes=0, sampled=None, kv=0, pairs=0):
    return StepRecord(start, end, prefill, decodes, decodes if sampled is None else sampled, kv, pairs)


def test_decode_throughput_charges_piggybacked_decodes_only_what_they_add():
    prefill_cost = piecewise_linear([(100, 0.5), (200, 0.9)])
    steps = [
        _step(0.0, 0.5, prefill=100),  # prefill only: no decode time
        _step(0.5, 1.1, prefill=100, decodes=4),  # hybrid: 0.6 - 0.5 = 0.1 s for 4 decodes
        _step(1.1, 1.5, decodes=4),  # decode only: 0.4 s for 4 decodes
        _step(1.5, 2.3, prefill=150, decodes=2),  # 150 tokens cost 0.7: 0.1 s for 2 decodes
    ]
    assert decode_throughput(steps, prefill_cost) == pytest.approx(10 / 0.6)
    assert math.isnan(decode_throughput(steps[:1], prefill_cost))


def test_piecewise_linear_interpolates_and_extends_its_ends():
    cost = piecewise_linear([(256, 0.3), (64, 0.1), (128, 0.15)])
    assert cost(64) == pytest.approx(0.1)
    assert cost(96) == pytest.approx(0.125)
    assert cost(192) == pytest.approx(0.225)
    assert cost(512) == pytest.approx(0.3 + 0.15 * 256 / 128)
    assert cost(32) == pytest.approx(0.075)
    assert piecewise_linear([(100, 1.0)])(50) == pytest.approx(0.5)


def test_step_record_counts_work_from_a_batch():
    from sarathi_sdk import SamplingParams
    from sarathi_sdk.batch import DecodeSlot, PrefillChunk, ScheduledBatch

    params = SamplingParams()
    batch = ScheduledBatch(
        step_id=1,
        prefills=(PrefillChunk("p", (1, 2, 3), start_pos=10, block_table=(0,), is_last_chunk=True,
                               sampling_params=params),),
        decodes=(DecodeSlot("d", 5, position=7, block_table=(1,), sampling_params=params),),
    )
    step = StepRecord.of(batch, 1.0, 1.5)
    assert (step.prefill_tokens, step.decodes, step.num_sampled, step.num_tokens) == (3, 1, 2, 4)
    assert step.kv_tokens_read == 13 + 8
    assert step.attention_pairs == (11 + 12 + 13) + 8
    assert step.seconds == 0.5


def test_step_metrics_distribution_and_utilisation():
    cost = ModelCost(layer_params=1000, head_params=100, num_layers=1, num_heads=1, num_kv_heads=1, head_dim=2,
                     weight_bytes=2, kv_bytes=2)
    steps = [_step(0, 1, prefill=8, decodes=2, kv=10, pairs=40), _step(1, 3, decodes=4, kv=4, pairs=4)]
    # Step 1: bytes 2 * 1100 + (10 + 10) * 8 = 2360; FLOPs 2*1000*10 + 2*100*2 + 4*2*40 = 20720.
    assert cost.step_bytes(steps[0]) == 2360
    assert cost.step_flops(steps[0]) == 20720
    m = step_metrics(steps, cost, bandwidth=1000.0, matmul_rate=10000.0)
    assert m["num_steps"] == 2 and m["num_decode_tokens"] == 6
    assert m["tokens_per_step_mean"] == 7 and m["tokens_per_step_max"] == 10
    assert m["tokens_per_step_cv"] == pytest.approx(3 / 7)
    assert m["step_time_p50"] == pytest.approx(1.5)
    # Step 2: bytes 2200 + 8 * 8 = 2264 over 2 s; FLOPs 8000 + 800 + 32 = 8832 over 2 s.
    assert m["mbu_p50"] == pytest.approx((2.360 + 1.132) / 2)
    assert m["mfu_p50"] == pytest.approx((2.072 + 0.4416) / 2)
