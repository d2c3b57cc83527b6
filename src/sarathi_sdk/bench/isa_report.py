"""The ratios and the table of `bench.cpu --isa`: each ISA level's measurements beside the issue's goals.

Goals (per level; a level without one prints its numbers alone):

- batch-1 decode against llama.cpp's batch-1 (2 threads, built for the same level): avx512 >= 2.0x,
  avx2 >= 1.0x; batch-16 decode against llama.cpp's batch-1: avx512 >= 8x, avx2 >= 6x;
- every kernel build against the torch path, at batch 1 and 16: >= 1.0x;
- greedy agreement between two kernel builds (`greedy.agreement`): >= 0.95 (against the torch path it
  is printed without a goal: torch's own ops round differently);
- with every core busy: our batch-1 loaded/quiet ratio no worse than llama.cpp's.

Every ratio is paired: the median over repeats of the ratio within one repeat, whose measurements ran
within a minute of each other, so a drift of this shared machine between repeats cancels out. Plain
arithmetic on the summary `isa.run` returns, tested on hand-made ones. Imports only the standard library.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .isa_worker import TORCH

GOALS: dict[str, dict[str, float]] = {
    "avx512": {"b1_vs_llamacpp": 2.0, "b16_vs_llamacpp": 8.0},
    "avx2": {"b1_vs_llamacpp": 1.0, "b16_vs_llamacpp": 6.0},
}
VS_TORCH_GOAL = 1.0
AGREEMENT_GOAL = 0.95
CONTENDED_GOAL = 1.0


def paired(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """The median of ours[i] / theirs[i] over the repeats i."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def ratios(levels: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per level: its rates over llama.cpp's, over the torch path's, and loaded over quiet (`runs` of
    each level as `isa.run` records them)."""
    out: dict[str, dict[str, float]] = {}
    torch_runs = levels[TORCH]["runs"] if TORCH in levels else None
    for level, data in levels.items():
        runs, r = data["runs"], {}
        r["loaded_b1"] = paired(runs["loaded_decode_b1"], runs["decode_b1"])
        r["loaded_b16"] = paired(runs["loaded_decode_b16"], runs["decode_b16"])
        if torch_runs is not None and level != TORCH:
            r["b1_vs_torch"] = paired(runs["decode_b1"], torch_runs["decode_b1"])
            r["b16_vs_torch"] = paired(runs["decode_b16"], torch_runs["decode_b16"])
        if "llamacpp" in data:
            lc = data["llamacpp"]["runs"]
            r["b1_vs_llamacpp"] = paired(runs["decode_b1"], lc["decode"])
            r["b16_vs_llamacpp"] = paired(runs["decode_b16"], lc["decode"])
            r["llamacpp_loaded"] = paired(lc["loaded_decode"], lc["decode"])
            ours_kept = [loaded / quiet for loaded, quiet in zip(runs["loaded_decode_b1"], runs["decode_b1"])]
            theirs_kept = [loaded / quiet for loaded, quiet in zip(lc["loaded_decode"], lc["decode"])]
            r["contended_vs_llamacpp"] = paired(ours_kept, theirs_kept)
        out[level] = r
    return out


def report(summary: dict[str, Any]) -> list[str]:
    """The table: a block per level, headed by the kernel build its engine really ran."""
    machine, config = summary["machine"], summary["config"]
    lines = [f"per ISA level on {machine['cpu_model']} ({machine['cpu_count']} cores), {config['repeats']} "
             f"alternating repeat(s), medians; contended = {config['busy_processes']} busy processes beside"]
    for level, why in summary.get("skipped", {}).items():
        lines.append(f"{level}: skipped, {why}")
    for level, data in summary["levels"].items():
        lines += _level_lines(level, data, summary["ratios"][level], summary["agreement"])
    return lines


def _level_lines(level: str, data: dict[str, Any], r: dict[str, float], agreement: dict[str, float]) -> list[str]:
    goals = GOALS.get(level, {})
    lines = ["", f"{level}: the engine ran kernel_variant={data['kernel_variant']}",
             f"{'what':<46} {'measured':>10} {'goal':>9}  met"]

    def row(what: str, value: str, goal: float | None = None, measured: float | None = None, unit: str = "x") -> None:
        met = "-" if goal is None or measured is None else "yes" if measured >= goal else "NO"
        lines.append(f"{what:<46} {value:>10} {'' if goal is None else f'>= {goal:g}{unit}':>9}  {met}")

    def ratio_row(what: str, key: str, goal: float | None) -> None:
        if key in r:
            row(what, f"{r[key]:.2f}x", goal, r[key])

    row("batch-1 decode tok/s", f"{data['decode_b1_tok_s']:.1f}")
    row("batch-16 decode tok/s", f"{data['decode_b16_tok_s']:.1f}")
    if "llamacpp" in data:
        lc = data["llamacpp"]
        row("llama.cpp batch-1 tok/s, 2 threads", f"{lc['decode_tok_s']:.1f}")
        lines.append(f"  (llama.cpp run by {lc['python']})")
    elif level != TORCH:
        lines.append("  no llama.cpp for this level (--llamacpp-python LEVEL=PYTHON)")
    ratio_row("batch-1 vs llama.cpp batch-1", "b1_vs_llamacpp", goals.get("b1_vs_llamacpp"))
    ratio_row("batch-16 vs llama.cpp batch-1", "b16_vs_llamacpp", goals.get("b16_vs_llamacpp"))
    ratio_row("batch-1 vs the torch path", "b1_vs_torch", VS_TORCH_GOAL)
    ratio_row("batch-16 vs the torch path", "b16_vs_torch", VS_TORCH_GOAL)
    for pair, share in agreement.items():
        a, b = pair.split("/")
        if level in (a, b):
            other = b if level == a else a
            goal = None if TORCH in (a, b) else AGREEMENT_GOAL
            row(f"greedy agreement with {other}", f"{share:.3f}", goal, share, unit="")
    ratio_row("contended: ours batch-1, loaded/quiet", "loaded_b1", None)
    ratio_row("contended: ours batch-16, loaded/quiet", "loaded_b16", None)
    ratio_row("contended: llama.cpp batch-1, loaded/quiet", "llamacpp_loaded", None)
    ratio_row("contended: ours vs llama.cpp's (batch-1)", "contended_vs_llamacpp", CONTENDED_GOAL)
    return lines
