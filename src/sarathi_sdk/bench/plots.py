"""PNG plots of a benchmark's JSON result (matplotlib, the optional `bench` extra; drawn off-screen).

- compare: the CDF of time between tokens per system, throughput bars (end to end, output, decode),
  step time against tokens per step;
- capacity: P99 time between tokens against request rate per scheduler, the SLO drawn across;
- micro: cost per decode token, decode-only against piggybacked; prefill cost per token by chunk; step
  time against tokens for decode-only, prefill-only and hybrid steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError


def require_matplotlib() -> Any:
    """The pyplot module on the Agg backend; a clear error before any measuring when it is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError('--plot-dir needs matplotlib: pip install "sarathi-sdk[bench]"') from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, folder: str, name: str) -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_plots(result: dict[str, Any], folder: str) -> list[Path]:
    plt = require_matplotlib()
    results = result["results"]
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        tbts = sorted(r["tbts"])
        if tbts:
            ax.plot(tbts, [(i + 1) / len(tbts) for i in range(len(tbts))], label=name)
    ax.set_xscale("log")
    ax.set(xlabel="time between tokens (s, log scale)", ylabel="fraction of tokens", title="TBT CDF")
    ax.legend()
    paths.append(_save(plt, fig, folder, "tbt_cdf.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    metrics = ("e2e_throughput", "output_throughput", "decode_throughput")
    width = 0.8 / len(results)
    for i, (name, r) in enumerate(results.items()):
        ax.bar([m + i * width for m in range(len(metrics))], [r[k] for k in metrics], width, label=name)
    ax.set_xticks([m + 0.4 - width / 2 for m in range(len(metrics))], ["end to end", "output", "decode"])
    ax.set(ylabel="tokens / s", title="throughput")
    ax.legend()
    paths.append(_save(plt, fig, folder, "throughput.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        steps = r.get("steps") or []
        if steps:
            ax.scatter([t for t, _ in steps], [s for _, s in steps], s=6, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="tokens in the step", ylabel="step time (s)", title="step time vs tokens (log-log)")
    ax.legend()
    paths.append(_save(plt, fig, folder, "step_time_vs_tokens.png"))
    return paths


def capacity_plots(result: dict[str, Any], folder: str) -> list[Path]:
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in result["results"].items():
        probes = sorted(r["probes"], key=lambda p: p["rate"])
        ax.plot([p["rate"] for p in probes], [p["tbt_p99"] for p in probes], marker="o", label=name)
    ax.axhline(result["config"]["tbt_slo"], color="grey", linestyle="--", label="TBT SLO")
    ax.set(xlabel="request rate (req/s)", ylabel="P99 time between tokens (s)", title="capacity")
    ax.legend()
    return [_save(plt, fig, folder, "capacity.png")]


def micro_plots(result: dict[str, Any], folder: str) -> list[Path]:
    plt = require_matplotlib()
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    decode = result["decode"]
    ax.plot([d["batch_size"] for d in decode], [1e3 * d["decode_only_per_token"] for d in decode],
            marker="o", label="decode-only step")
    ax.plot([d["batch_size"] for d in decode], [1e3 * d["piggybacked_per_token"] for d in decode],
            marker="o", label=f"piggybacked on a {result['config']['chunk']}-token chunk")
    ax.set(xlabel="decodes in the step", ylabel="ms per decode token", title="cost per decode token")
    ax.legend()
    paths.append(_save(plt, fig, folder, "decode_cost.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    prefill = result["prefill"]
    ax.plot([p["chunk"] for p in prefill], [1e3 * p["per_token"] for p in prefill], marker="o")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="chunk size (tokens)", ylabel="ms per prefill token", title="prefill cost by chunk size")
    paths.append(_save(plt, fig, folder, "prefill_cost.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([d["batch_size"] for d in decode], [d["decode_only_step"] for d in decode], marker="o",
            label="decode-only (tokens = decodes)")
    ax.plot([p["chunk"] for p in prefill], [p["step"] for p in prefill], marker="o", label="prefill-only (chunk)")
    ax.plot([result["config"]["chunk"] + d["batch_size"] for d in decode], [d["hybrid_step"] for d in decode],
            marker="o", label="chunk + decodes")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="tokens in the step", ylabel="step time (s)", title="step time vs tokens")
    ax.legend()
    paths.append(_save(plt, fig, folder, "micro_step_time.png"))
    return paths
