"""The arithmetic of the CPU benchmark (its runs are measurements, read from its output, not tested)."""

from __future__ import annotations

import time

import pytest

from sarathi_sdk.bench import cpu, cpu_report, decode_cost, openmp_teams, pass_cost


def test_decode_marginal_cost_recovers_a_known_linear_step_model():
    steps = [(p, d, 0.025 + 0.0012 * p + 0.003 * d) for p in (0, 64, 240) for d in (1, 8, 16)]
    fit = cpu.decode_marginal_cost(steps)
    assert fit["fixed_ms"] == pytest.approx(25)
    assert fit["per_prefill_token_ms"] == pytest.approx(1.2)
    assert fit["per_decode_ms"] == pytest.approx(3)


def test_step_kinds_splits_a_run_into_steps_with_prefill_and_decode_only_steps():
    steps = [(240, 16, 0.30), (256, 0, 0.25), (0, 16, 0.02), (0, 4, 0.01)]
    kinds = cpu.step_kinds(steps)
    assert kinds["prefill_steps"] == 2 and kinds["prefill_step_s"] == pytest.approx(0.55)
    assert kinds["prefill_tokens"] == 496 and kinds["decodes_in_prefill_steps"] == 16
    assert kinds["decode_steps"] == 2 and kinds["decode_step_s"] == pytest.approx(0.03)
    assert kinds["decodes_alone"] == 20


def test_report_prints_every_goal_beside_its_measurement():
    mixed = {name: {"e2e_tok_s": 600.0, "tbt_p99": 1.0} for name in cpu.POLICIES}
    mixed["sarathi"] = {"e2e_tok_s": 660.0, "tbt_p99": 0.3}
    summary = {
        "decode_b1_tok_s": 120.0, "decode_b16_tok_s": 500.0, "prefill_whole_tok_s": 800.0,
        "prefill_chunked_tok_s": 780.0, "mbu_b1": 0.5, "llamacpp_2t": {"decode_tok_s": 100.0, "prefill_tok_s": 250.0},
        "fit": {"fixed_ms": 20.0, "per_prefill_token_ms": 1.0, "per_decode_ms": 1.5}, "mixed": mixed,
        "direct": {"ms_per_decode_at_256": 1.4, "ms_per_decode_at_800": 2.4},
        "pass_costs": {"prefill_fixed_ms": 9.8, "prefill_ms_per_token": 0.64, "decode_fixed_ms": 3.5,
                       "decode_ms_per_decode": 1.15},
        "sarathi_edge_bound": {"decode_steps_saved_s": 0.15, "prefill_passes_cost_s": 0.45, "edge_s": -0.3},
    }
    table = "\n".join(cpu_report.report(summary))
    assert "1.20x" in table and ">= 1.0x" in table  # batch-1 vs llama.cpp
    assert "5.00x" in table  # batch-16 vs 8x llama.cpp's batch-1: not met
    assert "1.10x" in table  # sarathi e2e vs the best baseline
    assert "0.30x" in table  # P99 TBT vs vllm
    assert "direct, 240-token chunk + decodes at 800" in table and "2.40" in table
    assert table.count("NO") == 3  # batch-16, MBU and the direct marginal cost at 800
    assert "9.8 / 0.64" in table and "3.5 / 1.15" in table  # the pass costs
    assert "-0.30" in table and "0.15 - 0.45" in table  # the bound on sarathi's edge, and its two terms


class _TimedByDecodes:
    """A backend whose step takes 10 ms plus 2 ms per decode (context 256) or 3 ms (other contexts)."""

    def __init__(self) -> None:
        self.batches = []

    def execute(self, batch):
        self.batches.append(batch)
        per_decode = 0.002 if batch.decodes and batch.decodes[0].position == 256 else 0.003
        time.sleep(0.010 + per_decode * len(batch.decodes))


def test_direct_marginal_cost_is_the_slope_of_step_time_over_decodes():
    backend = _TimedByDecodes()
    cost = decode_cost.direct_marginal_cost(backend, 16, contexts=(256, 512), decodes=(0, 2, 4), repeats=1)
    assert cost["ms_per_decode_at_256"] == pytest.approx(2, abs=0.5)
    assert cost["ms_per_decode_at_512"] == pytest.approx(3, abs=0.5)
    batch = backend.batches[-1]  # 4 decodes at 512 beside a 240-token chunk after 256 cached tokens
    assert batch.num_tokens == 244 and batch.prefills[0].start_pos == 256
    blocks = [batch.prefills[0].block_table] + [d.block_table for d in batch.decodes]
    assert len(batch.prefills[0].block_table) * 16 >= 256 + 240
    assert all(len(d.block_table) * 16 > d.position for d in batch.decodes)
    flat = [b for table in blocks for b in table]
    assert len(flat) == len(set(flat))  # no two sequences share a block


def test_the_other_openmp_team_lives_until_ended():
    other = openmp_teams.OtherTeam()
    other.start()
    assert other._thread.is_alive()  # its team stays alive with it
    other.end()
    assert not other._thread.is_alive()


class _TimedByRows:
    """A backend whose prefill pass takes 12 ms + 0.5 ms per token and whose decode step 3 ms + 1 ms
    per decode."""

    def __init__(self) -> None:
        self.batches = []

    def execute(self, batch):
        self.batches.append(batch)
        if batch.prefills:
            time.sleep(0.012 + 0.0005 * batch.num_tokens)
        else:
            time.sleep(0.003 + 0.001 * len(batch.decodes))


def test_pass_costs_are_the_intercepts_and_slopes_of_prefill_and_decode_steps():
    backend = _TimedByRows()
    costs = pass_cost.pass_costs(backend, 16, prompt_lens=(16, 64), decodes=(1, 8), context=512, repeats=1)
    assert costs["prefill_fixed_ms"] == pytest.approx(12, abs=1.5)
    assert costs["prefill_ms_per_token"] == pytest.approx(0.5, abs=0.05)
    assert costs["decode_fixed_ms"] == pytest.approx(3, abs=1.5)
    assert costs["decode_ms_per_decode"] == pytest.approx(1, abs=0.3)
    prompt = next(b for b in backend.batches if b.prefills and b.num_tokens == 64)
    assert prompt.prefills[0].start_pos == 0 and prompt.prefills[0].is_last_chunk
    decodes = backend.batches[-1].decodes if backend.batches[-1].decodes else backend.batches[-2].decodes
    assert all(d.position == 512 and len(d.block_table) * 16 > 512 for d in decodes)
    flat = [b for d in decodes for b in d.block_table]
    assert len(flat) == len(set(flat))


def test_sarathis_edge_is_the_decode_steps_it_saves_less_the_prefill_passes_it_adds():
    costs = {"prefill_fixed_ms": 10.0, "decode_fixed_ms": 3.0}
    sarathi = {"prefill_steps": 71, "decode_steps": 65}
    vllm = {"prefill_steps": 25, "decode_steps": 109}
    bound = pass_cost.sarathi_edge_bound(costs, sarathi, vllm)
    assert bound["decode_steps_saved_s"] == pytest.approx(0.132)
    assert bound["prefill_passes_cost_s"] == pytest.approx(0.46)
    assert bound["edge_s"] == pytest.approx(-0.328)


def test_the_paired_ratio_compares_policies_within_each_repeat():
    def runs(*rates):
        return [{"e2e_tok_s": rate, "tbt_p99": 0.1} for rate in rates]

    # the machine slows down over the three repeats; sarathi is 0.9x the best baseline in each one
    results = {"mixed_sarathi": runs(900, 450, 90), "mixed_vllm": runs(1000, 500, 100),
               "mixed_orca": runs(800, 400, 80), "mixed_static": runs(700, 350, 70)}
    assert cpu.paired_ratio(results) == pytest.approx(0.9)


def test_the_summary_carries_the_machine_record_with_the_bandwidths_measured_beside_the_rates():
    mixed = {"e2e_tok_s": 1000.0, "tbt_p99": 0.5}
    steps = {"prefill_steps": 10, "prefill_step_s": 1.0, "prefill_tokens": 1000, "decodes_in_prefill_steps": 0,
             "decode_steps": 20, "decode_step_s": 0.1, "decodes_alone": 200}
    results = {
        "copy_bandwidth": [40e9], "read_bandwidth": [50e9], "decode_b1": [250.0], "decode_b16": [1000.0],
        "prefill_whole": [1400.0], "prefill_chunked": [1300.0],
        "fit": [{"fixed_ms": 20.0, "per_prefill_token_ms": 1.0, "per_decode_ms": 1.5}],
        "direct": [{"ms_per_decode_at_256": 1.0}],
        "pass_costs": [{"prefill_fixed_ms": 9.8, "prefill_ms_per_token": 0.64, "decode_fixed_ms": 3.5,
                        "decode_ms_per_decode": 1.15}],
    } | {f"mixed_{name}": [mixed] for name in cpu.POLICIES} | {f"steps_{name}": [steps] for name in cpu.POLICIES}
    machine = {"cpu_model": "AMD EPYC", "cpu_flags": ["avx512f"], "kernel_variant": "avx512", "date": "2026-12-07",
               "command": "python -m sarathi_sdk.bench.cpu"}
    summary = cpu._summary(results, 100_000_000, machine)
    assert summary["machine"] == machine | {"copy_bandwidth_gb_s": 40.0, "read_bandwidth_gb_s": 50.0}
    assert summary["mbu_b1"] == pytest.approx(100e6 * 250 / 40e9)
