"""`python -m sarathi_sdk.bench.accuracy --model FILE.gguf`: how far a quantized run's next-token
distributions are from the same file's fp32 model, against llama.cpp's on the same file.

llama.cpp's own measure (`llama-perplexity --kl-divergence`): over a fixed text, at every position,
the KL divergence of the quantized model's next-token distribution from the fp32 model's, and how
often the two agree on the most likely token. Three runs see the same token ids (our tokenizer's,
BOS first):

- fp32: the engine on the file with every weight dequantized to fp32 (`quantization="none"`);
- ours: the engine as it runs by default (bf16, the file's quantized weights on the kernels), and
  the same in bf16 with dense dequantized weights (`quantization="none"`): the part of the
  divergence that bf16 alone causes;
- llama.cpp: `llama-cpp-python` in a process of its own (`--llamacpp-python`, as `bench.cpu`), the text
  evaluated in one batch with `logits_all=True`.

The engine generates the text itself, teacher-forced: a sampler plugin (`TeacherForcing`) records
each step's logits and answers with the text's next token, so our distributions come from the path
that generates tokens (decode steps on the quantized kernels). Prints mean KL, its 99th percentile
and top-1 agreement per run, and llama.cpp's KL over ours as a ratio.

Imports torch, anyio, numpy (when llama.cpp runs), the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import torch

from sarathi_sdk import Engine, SamplingParams, hookimpl

from .default_model import default_gguf
from .llamacpp_logits import save_llamacpp_logits

TEXT = (
    "Rain begins far from where it falls. Sunlight warms the surface of the sea, and water rises as an "
    "invisible vapour until the air above cools it into droplets so small that they float. Billions of them "
    "together make a cloud. Winds carry the cloud across coasts and mountains; as it climbs, it cools "
    "further, the droplets collide and merge, and once they are too heavy for the rising air to hold, they "
    "fall. Some of that rain soaks into the soil and feeds roots and wells, some runs off into streams, "
    "and rivers bring it back to the sea, where the cycle starts again.\n\n"
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
    "The same idea, a small rule applied again and again, explains why a spreadsheet of interest rates, "
    "a population of rabbits and the spiral of a sunflower all grow by similar proportions. Mathematicians "
    "noticed the pattern centuries ago, but it still surprises students who meet it for the first time."
)
"""A fixed text of about 250 tokens: prose, a little code, prose (written for this benchmark)."""


@dataclass
class TeacherForcing:
    """Plugin: the engine's sampler. Records each sampling row's log-softmax (fp32 [V]) by the position it
    predicts and returns the text's token there, so the engine generates exactly `tokens`."""

    tokens: list[int]
    logprobs: dict[int, torch.Tensor] = field(default_factory=dict)

    @hookimpl(tryfirst=True)
    def sarathi_make_sampler(self) -> TeacherForcing:
        return self

    def __call__(self, logits: torch.Tensor, rows: Any) -> Any:
        """logits [S, V] fp32 of the S sampling rows -> the text's next token for each."""
        chosen = []
        for i, row in enumerate(rows):
            position = row.position + 1 if hasattr(row, "position") else row.start_pos + len(row.token_ids)
            self.logprobs[position] = torch.log_softmax(logits[i].double(), dim=-1).float().cpu()  # [V]
            chosen.append(self.tokens[position] if position < len(self.tokens) else 0)
        return _Sampled(chosen, [None] * len(chosen))


@dataclass
class _Sampled:
    token_ids: list[int]
    logprobs: list[Any]


async def engine_logprobs(model: str, text: str, **settings: Any) -> tuple[list[int], torch.Tensor]:
    """The text's token ids (N, BOS first) and [N - 1, V] log-probabilities of tokens 1..N-1 as the
    engine with `settings` predicts them."""
    forcing = TeacherForcing([])
    async with Engine(model, plugins=[forcing], max_num_seqs=1, **settings) as engine:
        if engine.tokenizer is None:
            raise SystemExit("the accuracy benchmark needs a model with a tokenizer")
        forcing.tokens = tokens = list(engine.tokenizer.encode(text))
        params = SamplingParams(max_tokens=len(tokens) - 1, temperature=0, ignore_eos=True)
        out = await engine.complete(tokens[:1], params)
    if list(out.token_ids) != tokens[1:]:
        raise SystemExit("the teacher-forced run did not follow the text")
    return tokens, torch.stack([forcing.logprobs[p] for p in range(1, len(tokens))])


def llamacpp_logprobs(model: str, tokens: list[int], python: str, threads: int) -> torch.Tensor:
    """[N - 1, V] log-probabilities of tokens 1..N-1 from llama.cpp, in a process of its own."""
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "logits.npy"
        save_llamacpp_logits(model, tokens, str(out), python, threads)
        logits = torch.from_numpy(np.load(out)).double()  # [N, V]: row i predicts token i + 1
    return torch.log_softmax(logits[:-1], dim=-1).float()


def compare(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """Mean and 99th-percentile KL(reference || other) per position, and top-1 agreement; [P, V] each."""
    p = reference.double()
    kl = (p.exp() * (p - other.double())).sum(dim=-1)  # [P]
    agree = (reference.argmax(dim=-1) == other.argmax(dim=-1)).double().mean()
    return {"kl_mean": float(kl.mean()), "kl_p99": float(kl.quantile(0.99)), "top1": float(agree)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarathi_sdk.bench.accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a GGUF file (default: the bundled default model's)")
    parser.add_argument("--llamacpp-python", default=None,
                        help="an interpreter with llama-cpp-python (default: this one, if it has it; '' or none: skipped)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--text", default=TEXT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model = args.model or default_gguf()

    async def ours() -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, full = await engine_logprobs(model, args.text, dtype="float32", quantization="none")
        _, dense = await engine_logprobs(model, args.text, dtype="bfloat16", quantization="none")
        _, quantized = await engine_logprobs(model, args.text)
        return tokens, full, dense, quantized

    tokens, full, dense, quantized = anyio.run(ours)
    rows = {"ours (bf16, quantized kernels)": compare(full, quantized),
            "ours, bf16 dense (the bf16 share)": compare(full, dense)}
    python = args.llamacpp_python
    if python is None and importlib.util.find_spec("llama_cpp") is not None:
        python = sys.executable
    if python:
        rows["llama.cpp"] = compare(full, llamacpp_logprobs(model, tokens, python, args.threads))
    print(f"{Path(model).name}: {len(tokens) - 1} positions, KL from the fp32 model of the same file")
    for name, row in rows.items():
        print(f"  {name:32s} KL mean {row['kl_mean']:.5f}  p99 {row['kl_p99']:.5f}  top-1 {row['top1']:.3f}")
    if "llama.cpp" in rows:
        ratio = rows["ours (bf16, quantized kernels)"]["kl_mean"] / rows["llama.cpp"]["kl_mean"]
        print(f"  KL ratio ours / llama.cpp: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
