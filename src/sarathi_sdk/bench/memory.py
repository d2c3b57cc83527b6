"""`python -m sarathi_sdk.bench.memory`: what running a GGUF file costs in memory and disk.

Per file, two fresh processes in a fresh cache folder: the first use (which writes the file's index),
then a second one (which finds it). Each measures its resident memory right after `import
sarathi_sdk` and `import torch` (torch's own share: about 200 MB here; `import sarathi_sdk` alone does
not import torch) and its peak (`VmHWM`) after the engine loaded the model and
generated 32 tokens; the difference, less the KV cache the engine allocated (sized here to 256
tokens), is what the model costs beside the file it came from. The parent reports it as a multiple
of the file's size, with the bytes the cache folder holds afterwards (the index: no weight copy).

A second baseline is taken after torch's first tensor operations (a tiny bf16 layer run): torch maps
about 10 MB of its own code and state on its first operations (oneDNN, the thread pool; 2026-12-07),
which the first baseline leaves in the model's cost. Both are printed.

Imports the standard library, and anyio, torch and the public `sarathi_sdk` API in the child processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .default_model import default_gguf

KV_BLOCKS, BLOCK_SIZE = 16, 16
"""The KV cache each child allocates: 256 tokens, so it is a small and known part of the peak."""


def status_mb(field: str) -> float:
    """A `/proc/self/status` memory field (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise SystemExit(f"/proc/self/status has no {field}: this benchmark needs Linux")


def child(model: str) -> None:
    """Load `model`, generate, print one JSON line of measurements."""
    import anyio
    import torch  # its own share of memory belongs to the baseline

    import sarathi_sdk

    after_import = status_mb("VmRSS")
    layer = torch.nn.Linear(64, 64, dtype=torch.bfloat16)
    layer(torch.ones(2, 64, dtype=torch.bfloat16))
    after_warmup = status_mb("VmRSS")

    async def run() -> int:
        params = sarathi_sdk.SamplingParams(max_tokens=32, temperature=0, ignore_eos=True)
        async with sarathi_sdk.Engine(model, max_num_seqs=1, num_kv_blocks=KV_BLOCKS, block_size=BLOCK_SIZE) as engine:
            out = await engine.complete("What is the capital of France?", params)
            return len(out.token_ids)

    tokens = anyio.run(run)
    config = sarathi_sdk.EngineConfig(model=model)
    folder = Path(sarathi_sdk.PluginManager(config).hook.sarathi_resolve_model(config=config))
    hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
    kv_bytes = 2 * hf["num_hidden_layers"] * KV_BLOCKS * BLOCK_SIZE * hf.get("num_key_value_heads", heads) * head_dim * 2
    print(json.dumps({"after_import_mb": after_import, "after_warmup_mb": after_warmup, "peak_mb": status_mb("VmHWM"), "kv_mb": kv_bytes / 1e6,
                      "tokens": tokens}))


def measure(model: str, cache: Path) -> dict[str, float]:
    env = dict(os.environ, SARATHI_CACHE_DIR=str(cache))
    result = subprocess.run([sys.executable, "-m", "sarathi_sdk.bench.memory", "--child", model], env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"the child for {model} failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarathi_sdk.bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="GGUF files (default: the bundled default model's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    print("| file | file MB | run | cache written MB | peak - import MB | KV MB | (peak - import - KV) / file "
          "| peak - torch warm-up MB | (peak - warm-up - KV) / file |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models or [default_gguf()]:
        size = Path(model).stat().st_size / 1e6
        with tempfile.TemporaryDirectory() as cache:
            for run in ("first use", "second"):
                m = measure(model, Path(cache))
                model_mb = m["peak_mb"] - m["after_import_mb"]
                warm_mb = m["peak_mb"] - m["after_warmup_mb"]
                print(f"| {Path(model).name} | {size:.1f} | {run} | {folder_mb(Path(cache)):.1f} | {model_mb:.0f} | "
                      f"{m['kv_mb']:.1f} | {(model_mb - m['kv_mb']) / size:.2f}x | {warm_mb:.0f} | "
                      f"{(warm_mb - m['kv_mb']) / size:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
