"""The issue's goals for `sarathi bench`, each printed beside its measurement (never tuned toward).

- on the CPU: sarathi's P99 time between tokens at most 1/3 of the vllm policy's; its end-to-end
  throughput at least that of the best other system; at least 3x that of `hf`; its capacity under a
  TBT SLO at least 2x the vllm policy's (Sarathi-Serve reports 2.6-5.6x);
- on a CUDA GPU, the SARATHI paper's ratios against the vllm policy: decode throughput at least 4x,
  end-to-end throughput at least 1.3x.

A goal whose systems were not part of the run is left out. Imports only the standard library.
"""

from __future__ import annotations

from typing import Any

Goal = dict[str, Any]


def _goal(what: str, measured: float, goal: str, met: bool) -> Goal:
    return {"what": what, "measured": measured, "goal": goal, "met": met}


def compare_goals(results: dict[str, dict[str, Any]], device: str) -> list[Goal]:
    goals: list[Goal] = []
    if "sarathi" not in results:
        return goals
    ours = results["sarathi"]
    if "vllm" in results:
        ratio = ours["tbt_p99"] / results["vllm"]["tbt_p99"]
        goals.append(_goal("sarathi P99 TBT / vllm's", ratio, "<= 0.33x", ratio <= 1 / 3))
    others = [name for name in results if name != "sarathi" and "+" not in name]  # not its own variants
    if others:
        best = max(others, key=lambda n: results[n]["e2e_throughput"])
        ratio = ours["e2e_throughput"] / results[best]["e2e_throughput"]
        goals.append(_goal(f"sarathi e2e throughput / best other ({best})", ratio, ">= 1.0x", ratio >= 1.0))
    if "hf" in results:
        ratio = ours["e2e_throughput"] / results["hf"]["e2e_throughput"]
        goals.append(_goal("sarathi e2e throughput / hf's", ratio, ">= 3x", ratio >= 3.0))
    if device.startswith("cuda") and "vllm" in results:
        ratio = ours["decode_throughput"] / results["vllm"]["decode_throughput"]
        goals.append(_goal("GPU: sarathi decode throughput / vllm's", ratio, ">= 4x", ratio >= 4.0))
        ratio = ours["e2e_throughput"] / results["vllm"]["e2e_throughput"]
        goals.append(_goal("GPU: sarathi e2e throughput / vllm's", ratio, ">= 1.3x", ratio >= 1.3))
    return goals


def capacity_goals(capacities: dict[str, float]) -> list[Goal]:
    if "sarathi" not in capacities or "vllm" not in capacities:
        return []
    vllm = capacities["vllm"]
    ratio = capacities["sarathi"] / vllm if vllm > 0 else float("inf")
    return [_goal("sarathi capacity / vllm's under the TBT SLO", ratio, ">= 2x", ratio >= 2.0)]


def lines(goals: list[Goal]) -> list[str]:
    if not goals:
        return []
    out = [f"{'goal':<48}{'measured':>10}{'target':>10}  met"]
    for g in goals:
        out.append(f"{g['what']:<48}{g['measured']:>9.2f}x{g['goal']:>10}  {'yes' if g['met'] else 'NO'}")
    return out
