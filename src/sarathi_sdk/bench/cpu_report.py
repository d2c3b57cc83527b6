"""The table `python -m sarathi_sdk.bench.cpu` prints last: each measurement of its summary beside its goal.

Plain arithmetic on the summary dict `cpu.run` returns (or one read back from its JSON), so it is
tested on hand-made summaries; the policies are the summary's own (`mixed`'s keys, in the order
the summary lists them in). Imports only the standard library.
"""

from __future__ import annotations

from typing import Any


def report(s: dict[str, Any]) -> list[str]:
    """The table: each measurement beside its goal."""
    lines = [f"{'what':<46} {'measured':>14} {'goal':>22}  met"]

    def row(what: str, value: str, goal: str, met: bool | None) -> None:
        lines.append(f"{what:<46} {value:>14} {goal:>22}  {'-' if met is None else 'yes' if met else 'NO'}")

    ref = max((s[k]["decode_tok_s"] for k in ("llamacpp_1t", "llamacpp_2t") if k in s), default=None)
    row("batch-1 decode tok/s", f"{s['decode_b1_tok_s']:.1f}", "", None)
    for threads in (1, 2):
        if f"llamacpp_{threads}t" in s:
            lc = s[f"llamacpp_{threads}t"]
            ratio = s["decode_b1_tok_s"] / lc["decode_tok_s"]
            row(f"  vs llama.cpp {threads} thread(s) ({lc['decode_tok_s']:.1f} tok/s)", f"{ratio:.2f}x", ">= 1.0x", ratio >= 1)
    row("batch-16 decode tok/s", f"{s['decode_b16_tok_s']:.1f}", "", None)
    if ref is not None:
        ratio = s["decode_b16_tok_s"] / ref
        row("  vs best llama.cpp batch-1", f"{ratio:.2f}x", ">= 8x", ratio >= 8)
    row("batch-1 MBU (bytes/token / copy bandwidth)", f"{100 * s['mbu_b1']:.0f}%", ">= 60%", s["mbu_b1"] >= 0.6)
    if "read_share_b1" in s:
        row("  batch-1 bytes/s vs read bandwidth", f"{100 * s['read_share_b1']:.0f}%", "", None)
    row("1024-token prefill tok/s, whole", f"{s['prefill_whole_tok_s']:.0f}", "", None)
    chunk_ratio = s["prefill_chunked_tok_s"] / s["prefill_whole_tok_s"]
    row("  in 256-token chunks, vs whole", f"{chunk_ratio:.2f}x", ">= 0.9x", chunk_ratio >= 0.9)
    for threads in (1, 2):
        if f"llamacpp_{threads}t" in s:
            lc = s[f"llamacpp_{threads}t"]["prefill_tok_s"]
            row(f"  llama.cpp {threads} thread(s) prefill tok/s", f"{lc:.0f}", "", None)
    fit = s["fit"]
    row("mixed step: fixed cost ms", f"{fit['fixed_ms']:.1f}", "", None)
    row("mixed step: ms per prefill token", f"{fit['per_prefill_token_ms']:.2f}", "", None)
    row("mixed step: ms per decode (marginal)", f"{fit['per_decode_ms']:.2f}", "<= 2 ms", fit["per_decode_ms"] <= 2)
    for key, value in s["direct"].items():
        context = key.rsplit("_", 1)[1]
        row(f"  direct, 240-token chunk + decodes at {context}", f"{value:.2f}", "<= 2 ms", value <= 2)
    mixed = s["mixed"]
    best = max(mixed[name]["e2e_tok_s"] for name in mixed if name != "sarathi")
    for name in mixed:
        row(f"mixed e2e tok/s, {name}", f"{mixed[name]['e2e_tok_s']:.0f}", "", None)
        row(f"mixed P99 TBT s, {name}", f"{mixed[name]['tbt_p99']:.3f}", "", None)
    ratio = mixed["sarathi"]["e2e_tok_s"] / best
    row("sarathi e2e vs best baseline", f"{ratio:.2f}x", ">= 1.0x", ratio >= 1)
    if "sarathi_vs_best_paired" in s:
        row("  median of the repeats' own ratios", f"{s['sarathi_vs_best_paired']:.2f}x", "", None)
    tbt = mixed["sarathi"]["tbt_p99"] / mixed["vllm"]["tbt_p99"]
    row("sarathi P99 TBT vs vllm", f"{tbt:.2f}x", "<= 0.33x", tbt <= 1 / 3)
    for name, kinds in s.get("steps", {}).items():
        row(f"mixed, {name}: steps with prefill / s", f"{kinds['prefill_steps']:.0f} / {kinds['prefill_step_s']:.2f}", "", None)
        per_token = 1e3 * kinds["prefill_step_s"] / max(kinds["prefill_tokens"], 1)
        row(f"  ms per prefill token (+ {kinds['decodes_in_prefill_steps']:.0f} decodes)", f"{per_token:.3f}", "", None)
        per_decode = 1e3 * kinds["decode_step_s"] / max(kinds["decodes_alone"], 1)
        row("  decode-only steps / s / ms per decode", f"{kinds['decode_steps']:.0f} / {kinds['decode_step_s']:.2f} / {per_decode:.2f}", "", None)
    if "pass_costs" in s:
        costs, bound = s["pass_costs"], s["sarathi_edge_bound"]
        row("prefill pass: fixed ms / ms per token", f"{costs['prefill_fixed_ms']:.1f} / {costs['prefill_ms_per_token']:.2f}", "", None)
        row("decode step at 512: fixed ms / ms per decode", f"{costs['decode_fixed_ms']:.1f} / {costs['decode_ms_per_decode']:.2f}", "", None)
        row("sarathi's edge over vllm at most, s", f"{bound['edge_s']:+.2f}", "", None)
        row("  = decode-only steps saved - prefill passes added", f"{bound['decode_steps_saved_s']:.2f} - {bound['prefill_passes_cost_s']:.2f}", "", None)
    return lines
