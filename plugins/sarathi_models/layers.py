"""The building blocks of a Llama-family model: linear layers that load their own weights, RMSNorm
(and Gemma's), the gated activations.

Parameters are created with `torch.empty` (the model is built on the meta device and materialised with
`to_empty`; no time goes into a random init the checkpoint overwrites). A checkpoint tensor reaches its
parameter through the owning module's `weight_loader(param, tensor, shard_id)`: a plain copy, or a
slice of a fused parameter (q/k/v into one `qkv_proj`, gate/up into one `gate_up_proj`, so each is a
single matmul). Loaders live on modules, not on parameters, because `to_empty` replaces parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sarathi_sdk import ConfigError

from .cpu_ops import cpu_kernels
from .prepack import PrepackedWeight, prepack
from .quant import PackedWeight, QuantizedWeight, takes_quantized_kernel


def default_weight_loader(param: torch.Tensor, loaded: torch.Tensor, shard_id: str | None = None) -> None:
    """Copy a whole checkpoint tensor into `param`, casting to its dtype and device."""
    if param.shape != loaded.shape:
        raise ConfigError(f"checkpoint tensor of shape {tuple(loaded.shape)} does not fit {tuple(param.shape)}")
    param.data.copy_(loaded)


class Linear(nn.Module):
    """y = x W^T (+ b), W [out_features, in_features].

    `quantized`, when the loader sets it, is the same weight in a quantized form that small steps
    read instead of W (see `quant`). W itself may be gone (`weight` is None) in two ways: a weight
    stored quantized (`PackedWeight`) has no other copy, and larger steps multiply its dequantized
    values (`PackedWeight.gemm`); or `pack` ran, and W lives on in oneDNN's layout (`prepacked`, see
    `prepack`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.weight: nn.Parameter | None = nn.Parameter(torch.empty(out_features, in_features), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features), requires_grad=False) if bias else None
        self.quantized: QuantizedWeight | None = None
        self.prepacked: PrepackedWeight | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantized is not None and takes_quantized_kernel(x):
            y = self.quantized.matmul(x)  # [T, out_features]
            return y if self.bias is None else y + self.bias
        if self.prepacked is not None:
            return self.prepacked.matmul(x, self.bias)  # [T, out_features]
        if self.weight is None and isinstance(self.quantized, PackedWeight):
            y = self.quantized.gemm(x)  # [T, out_features]
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)  # [T, out_features]

    def pack(self) -> None:
        """Keep W only in oneDNN's layout (bf16 on the CPU: see `prepack.can_prepack`)."""
        if self.weight is not None:
            self.prepacked = prepack(self.weight)
            self.weight = None


class MergedLinear(Linear):
    """Several projections of the same input as one matmul; output is their concatenation.

    `shards` names each part in order (e.g. ("q", "k", "v")) with its output size; a checkpoint tensor
    of part `name` is copied into that part's rows of the fused weight and bias, and one stored already
    fused (Phi-3's `qkv_proj`, `gate_up_proj`: the parts' rows in the same order) into all of it.
    """

    def __init__(self, in_features: int, shards: Sequence[tuple[str, int]], bias: bool = False) -> None:
        super().__init__(in_features, sum(size for _, size in shards), bias)
        self.shard_offsets: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, size in shards:
            self.shard_offsets[name] = (offset, size)
            offset += size

    def weight_loader(self, param: torch.Tensor, loaded: torch.Tensor, shard_id: str | None = None) -> None:
        if shard_id is None:
            default_weight_loader(param, loaded)
            return
        offset, size = self.shard_offsets[shard_id]
        default_weight_loader(param.data.narrow(0, offset, size), loaded)


class Embedding(nn.Module):
    """Token id -> vector; its weight doubles as the LM head when embeddings are tied.

    A weight stored quantized (`quantized`, set by the loader) is the only copy (`weight` is None):
    a lookup dequantizes the rows it needs."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.weight: nn.Parameter | None = nn.Parameter(torch.empty(vocab_size, hidden_size), requires_grad=False)
        self.quantized: PackedWeight | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.weight is None and self.quantized is not None:
            return self.quantized.rows(ids)  # [T, H]
        return F.embedding(ids, self.weight)  # [T, H]


class RMSNorm(nn.Module):
    """x / rms(x) * w, computed in fp32 and cast back (as transformers does, for bf16 parity)."""

    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(hidden_size), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = cpu_kernels(x)
        if fused is not None and x.dim() == 2 and x.is_contiguous():
            return fused.rms_norm(x, self.weight, self.eps)  # [T, H]
        x32 = x.float()  # [T, H]
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)  # [T, H]


class GemmaRMSNorm(RMSNorm):
    """x / rms(x) * (1 + w), all in fp32 and cast back once, as transformers' Gemma does: Gemma's
    weights are offsets from 1, and rounding the multiplier to bf16 would move it by up to 2^-9."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()  # [..., H]
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * (1.0 + self.weight.float())).to(x.dtype)  # [..., H]


def gelu_tanh_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """GeGLU (Gemma): gelu_tanh(gate) * up, from the fused [T, 2I] gate/up projection -> [T, I]."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.gelu(gate, approximate="tanh") * up


def silu_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """SwiGLU: silu(gate) * up, from the fused [T, 2I] gate/up projection -> [T, I]."""
    fused = cpu_kernels(gate_up)
    if fused is not None and gate_up.dim() == 2 and gate_up.is_contiguous():
        return fused.silu_and_mul(gate_up)  # [T, I]
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up
