"""`sarathi bench compare | capacity | micro` end to end on a tiny random model (the CI smoke test).

The numbers of a tiny model on a shared CI machine mean nothing; what is checked is that every system
served exactly the requested tokens, that the JSON has the documented shape with real measurements,
that the plots are PNG files and that the table (goals last) ends stdout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from sarathi_sdk.cli import main  # noqa: E402
from tests.models.helpers import save_tiny  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
REQUIRED = ("decode_throughput", "e2e_throughput", "output_throughput", "ttft_p50", "ttft_p99", "tbt_p50",
            "tbt_p99", "scheduling_delay_p50", "num_preemptions")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(save_tiny(tmp_path_factory.mktemp("bench") / "tiny", "LlamaForCausalLM"))


def _png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG


@pytest.mark.timeout(120)
def test_compare_every_scheduler_and_hf(tiny, tmp_path, capsys):
    out = tmp_path / "compare.json"
    argv = ["bench", "compare", "--model", tiny, "--schedulers", "sarathi,vllm,orca,static", "--baseline", "hf",
            "--num-requests", "8", "--prompt-len", "16-80", "--output-len", "4-12", "--max-num-seqs", "4",
            "--token-budget", "32", "--repeats", "2", "--seed", "3", "--json", str(out), "--plot-dir",
            str(tmp_path / "plots")]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"machine", "config", "results"}
    assert result["machine"]["copy_bandwidth"] > 0 and result["machine"]["matmul_rate"] > 0
    requested = sum(n for _, n in result["config"]["requests"])
    assert set(result["results"]) == {"sarathi", "vllm", "orca", "static", "hf"}
    for name, r in result["results"].items():
        for key in REQUIRED:
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (name, key)
        assert r["num_output_tokens"] == requested, name
        assert r["e2e_throughput"] > r["output_throughput"] > 0
        assert r["num_repeats"] == 2
    assert result["results"]["sarathi"]["tokens_per_step_max"] <= 32
    assert result["results"]["sarathi"]["mbu_p50"] > 0
    assert result["config"]["engines"]["vllm"]["token_budget"] >= 80
    assert result["ratios"]["vllm"]["e2e_throughput"] == 1.0
    for name in ("tbt_cdf.png", "throughput.png", "step_time_vs_tokens.png"):
        assert _png(tmp_path / "plots" / name)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[0] == "system"
    assert lines[-1].startswith("sarathi e2e throughput / hf's")
    assert any(line.startswith("sarathi P99 TBT / vllm's") for line in lines)


@pytest.mark.timeout(120)
def test_capacity_search_per_scheduler(tiny, tmp_path, capsys):
    out = tmp_path / "capacity.json"
    argv = ["bench", "capacity", "--model", tiny, "--schedulers", "sarathi,vllm", "--tbt-slo", "0.5",
            "--num-requests", "6", "--prompt-len", "16-48", "--output-len", "4-8", "--max-num-seqs", "4",
            "--token-budget", "32", "--start-rate", "50", "--bisections", "1", "--json", str(out),
            "--plot-dir", str(tmp_path / "plots")]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    for name in ("sarathi", "vllm"):
        r = result["results"][name]
        assert r["capacity_rps"] >= 0 and r["probes"]
        assert all(p["passed"] == (p["tbt_p99"] <= 0.5 and p["scheduling_delay_p50"] <= 2.0) for p in r["probes"])
    assert _png(tmp_path / "plots" / "capacity.png")
    assert "capacity" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_micro_decode_and_prefill_costs(tiny, tmp_path, capsys):
    out = tmp_path / "micro.json"
    argv = ["bench", "micro", "--model", tiny, "--batch-sizes", "1,4", "--chunk", "32", "--context", "16",
            "--chunks", "16,64", "--prompt-tokens", "128", "--json", str(out), "--plot-dir", str(tmp_path / "plots")]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert [d["batch_size"] for d in result["decode"]] == [1, 4]
    for d in result["decode"]:
        assert d["decode_only_step"] > 0 and d["hybrid_step"] > 0 and d["prefill_only_step"] > 0
    assert [p["chunk"] for p in result["prefill"]] == [16, 64]
    assert result["prefill"][-1]["vs_largest_chunk"] == 1.0
    assert _png(tmp_path / "plots" / "decode_cost.png") and _png(tmp_path / "plots" / "prefill_cost.png")
    assert "prefill cost per token" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_compare_the_prefix_cache_on_and_off_over_a_shared_prefix(tiny, tmp_path, capsys):
    out = tmp_path / "compare.json"
    argv = ["bench", "compare", "--model", tiny, "--schedulers", "sarathi,sarathi+prefix", "--baseline", "hf",
            "--num-requests", "6", "--prompt-len", "40-72", "--output-len", "4-8", "--shared-prefix-len", "32",
            "--max-num-seqs", "4", "--token-budget", "24", "--block-size", "8", "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    results, engines = result["results"], result["config"]["engines"]
    assert engines["sarathi+prefix"]["enable_prefix_caching"] and not engines["sarathi"]["enable_prefix_caching"]
    assert engines["sarathi+prefix"]["scheduler"] == "sarathi"
    requested = sum(n for _, n in result["config"]["requests"])
    assert {r["num_output_tokens"] for r in results.values()} == {requested}
    assert results["sarathi"]["prefix_cache_hit_rate"] == results["hf"]["prefix_cache_hit_rate"] == 0
    # every request but the first finds the 32 shared tokens (at most: whole blocks, never a last token)
    assert 0 < results["sarathi+prefix"]["prefix_cache_hit_rate"] <= 5 * 32 / (6 * 40)
    assert "sarathi+prefix" in capsys.readouterr().out


def test_bad_options_fail_before_any_model_loads(tmp_path, capsys):
    assert main(["bench", "compare", "--model", str(tmp_path), "--prompt-len", "abc"]) == 2
    assert "length 'abc'" in capsys.readouterr().err
    assert main(["bench", "compare", "--model", str(tmp_path), "--shared-prefix-len", "-1"]) == 2
    assert "--shared-prefix-len" in capsys.readouterr().err
    assert main(["bench", "compare", "--model", str(tmp_path), "--schedulers", "sarathi+lru"]) == 2
    assert "POLICY+prefix" in capsys.readouterr().err
    assert main(["bench", "micro", "--batch-sizes", "x"]) == 2
    assert main(["bench", "capacity", "--tbt-slo", "0"]) == 2
