"""The arithmetic of the CPU benchmark (its runs are measurements, read from its output, not tested)."""

from __future__ import annotations

import pytest

from sarathi_sdk.bench import cpu


def test_decode_marginal_cost_recovers_a_known_linear_step_model():
    steps = [(p, d, 0.025 + 0.0012 * p + 0.003 * d) for p in (0, 64, 240) for d in (1, 8, 16)]
    fit = cpu.decode_marginal_cost(steps)
    assert fit["fixed_ms"] == pytest.approx(25)
    assert fit["per_prefill_token_ms"] == pytest.approx(1.2)
    assert fit["per_decode_ms"] == pytest.approx(3)


def test_report_prints_every_goal_beside_its_measurement():
    mixed = {name: {"e2e_tok_s": 600.0, "tbt_p99": 1.0} for name in cpu.POLICIES}
    mixed["sarathi"] = {"e2e_tok_s": 660.0, "tbt_p99": 0.3}
    summary = {
        "decode_b1_tok_s": 120.0, "decode_b16_tok_s": 500.0, "prefill_whole_tok_s": 800.0,
        "prefill_chunked_tok_s": 780.0, "mbu_b1": 0.5, "llamacpp_2t": {"decode_tok_s": 100.0, "prefill_tok_s": 250.0},
        "fit": {"fixed_ms": 20.0, "per_prefill_token_ms": 1.0, "per_decode_ms": 1.5}, "mixed": mixed,
    }
    table = "\n".join(cpu.report(summary))
    assert "1.20x" in table and ">= 1.0x" in table  # batch-1 vs llama.cpp
    assert "5.00x" in table  # batch-16 vs 8x llama.cpp's batch-1: not met
    assert "1.10x" in table  # sarathi e2e vs the best baseline
    assert "0.30x" in table  # P99 TBT vs vllm
    assert table.count("NO") == 2  # batch-16 and MBU
