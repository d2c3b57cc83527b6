"""`python -m tests.gguf.bf16_kl_probe FOLDER`: where bf16 costs KL divergence, one rounding at a time.

Not a test: a probe behind `docs/benchmarks.md`'s accuracy section. FOLDER is a Hugging Face folder
(`sarathi convert FILE.gguf FOLDER` gives one with the file's dequantized weights). transformers runs it
in fp32 over `bench.accuracy`'s text; then again with one kind of value rounded to bf16 and back
(forward hooks): the K/V projections' outputs, each projection's output alone, the residual stream
after every layer, every linear layer's input or output, the norms' outputs; finally the whole model in
bf16. Each line prints the mean KL divergence from the fp32 run, its 99th percentile and top-1 agreement.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from sarathi_sdk.bench.accuracy import TEXT

Hooks = Callable[[], list[torch.utils.hooks.RemovableHandle]]


def rounded_output(module, inputs, output):
    if isinstance(output, tuple):
        return (output[0].bfloat16().float(),) + output[1:]
    return output.bfloat16().float()


def rounded_inputs(module, inputs):
    return tuple(x.bfloat16().float() if torch.is_tensor(x) else x for x in inputs)


def main(folder: str) -> None:
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode(TEXT, add_special_tokens=False)])

    def log_probs() -> torch.Tensor:
        with torch.no_grad():
            return F.log_softmax(model(ids).logits[0].double(), -1)  # [N, V]

    reference = log_probs()

    def report(name: str, hooks: Hooks) -> None:
        handles = hooks()
        got = log_probs()
        for handle in handles:
            handle.remove()
        kl = (reference.exp() * (reference - got)).sum(-1)  # [N]
        top = (reference.argmax(-1) == got.argmax(-1)).float().mean()
        print(f"{name:36s} KL mean {kl.mean().item():.5f}  p99 {kl.quantile(0.99).item():.4f}  top-1 {top.item():.3f}")

    def outputs_of(*suffixes: str) -> Hooks:
        return lambda: [m.register_forward_hook(rounded_output) for n, m in model.named_modules() if n.endswith(suffixes)]

    layers = model.model.layers
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    report("K and V (the KV cache)", outputs_of("k_proj", "v_proj"))
    for kind in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        report(f"output of {kind}", outputs_of(kind))
    report("residual stream after each layer", lambda: [layer.register_forward_hook(rounded_output) for layer in layers])
    report("every linear layer's input", lambda: [m.register_forward_pre_hook(rounded_inputs) for m in linears])
    report("every linear layer's output", lambda: [m.register_forward_hook(rounded_output) for m in linears])
    report("norm outputs", outputs_of("norm"))
    model.to(torch.bfloat16)
    report("the whole model in bf16", lambda: [])


if __name__ == "__main__":
    main(sys.argv[1])
