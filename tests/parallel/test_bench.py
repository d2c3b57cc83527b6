"""`sarathi bench pipeline` on the tiny model: JSON first, the table last, a bubble fraction per stage."""

from __future__ import annotations

import json

from sarathi_sdk.cli import main


def test_bench_pipeline_reports_bubbles_per_stage_for_each_policy(tiny_llama, capsys, tmp_path):
    out = tmp_path / "pipeline.json"
    argv = ["bench", "pipeline", "--model", tiny_llama, "--num-requests", "4", "--prompt-len", "24",
            "--min-prompt-len", "8", "--output-len", "4", "--token-budget", "16", "--dtype", "float32",
            "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert list(result["policies"]) == ["sarathi", "orca", "vllm"]
    for policy in result["policies"].values():
        assert [s["layers"] for s in policy["stages"]] == [[0, 2], [2, 4]]
        assert all(0.0 <= s["bubble_fraction"] <= 1.0 for s in policy["stages"])
    assert set(result["ratios"]) == {"orca", "vllm"}
    table = capsys.readouterr().out.strip().splitlines()[-4:]
    assert table[0].split()[:3] == ["policy", "bubble", "s0"]
    assert [line.split()[0] for line in table[1:]] == ["sarathi", "orca", "vllm"]
