"""bf16 linear weights kept in oneDNN's blocked layout, so a matmul does not repack them every call.

`F.linear` on a plain bf16 CPU weight hands oneDNN a row-major matrix, and oneDNN reorders it into its
blocked layout inside every call: a pass over all the weight's bytes that is pure overhead. With the
weights far larger than the caches (SmolLM2-135M's layers hold 212 MB of bf16), that overhead is a
fixed cost per forward pass, and it is what made a small prefill chunk expensive: SARATHI runs many
more passes than a policy that prefills whole prompts.

Reordered once at load (`torch.ops.mkldnn._reorder_linear_weight`, the op torch.compile's CPU
freezing uses) and multiplied with `torch.ops.mkldnn._linear_pointwise`, the products are the same
bits as `F.linear`'s (checked at 1-1,000 rows on every shape of the default model and odd ones; the
test suite holds the check). Measured on this project's 2-core Zen 4 machine (2026-11-30, torch 2.13,
2 threads), 30 layers of SmolLM2-135M's four matmuls, weights from memory, milliseconds:

    rows           1      16     17     32     64     128    256
    F.linear       19.1   26.0   26.3   33.5   56.8   90.7   153.5
    prepacked      10.4   14.1   14.6   22.0   41.2   72.2   136.4

fp32 weights are left alone: oneDNN's fp32 products differ from `F.linear`'s in the last bits, and the
fp32 path is the exact reference. The plain weight is released once packed (the packed one unpacks
with `to_dense`), so the model's memory does not double: the default model's backend holds 654 MB
after load against 637 MB unpacked.

Imports torch only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class PrepackedWeight:
    """A bf16 [N, K] weight in oneDNN's blocked layout."""

    packed: torch.Tensor
    """[N, K] bf16, layout `torch._mkldnn` (opaque blocks)."""

    def matmul(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x [..., K] bf16 -> x @ w.T (+ bias) [..., N] bf16; oneDNN reads x as dense row-major."""
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, bias, "none", [], "")

    @property
    def nbytes(self) -> int:
        return self.packed.numel() * self.packed.element_size()


def can_prepack(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether weights of `dtype` on `device` get packed: bf16 on a CPU whose oneDNN runs bf16."""
    return (
        device.type == "cpu"
        and dtype == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def prepack(weight: torch.Tensor) -> PrepackedWeight:
    """weight [N, K] bf16 on the CPU -> its packed form (the batch-size hint is irrelevant here: the
    same speed at 1-1,024 rows whichever hint packed it)."""
    return PrepackedWeight(packed=torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 256))
