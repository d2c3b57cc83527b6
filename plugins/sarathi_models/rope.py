"""Rotary position embedding (RoPE), with linear and Llama-3 frequency scaling.

Positions come per token (a step mixes chunks and decodes of many requests), so cos/sin are computed
once per step from the `positions` tensor and shared by every layer. Frequencies are fp32, as in
transformers, and cast to the activation dtype only when applied.
"""

from __future__ import annotations

import math

import torch

from .cpu_ops import cpu_kernels
from .model_config import RopeConfig


def inverse_frequencies(rope: RopeConfig, head_dim: int) -> torch.Tensor:
    """The `head_dim / 2` rotation frequencies, scaled as `rope.rope_type` asks.

    Computed on the CPU in fp32 with the same operations as transformers, so positions rotate by
    bit-identical angles and fp32 parity holds to 1e-6.
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim  # [D/2]
    inv_freq = 1.0 / (rope.theta**exponents)  # [D/2]
    if rope.rope_type == "linear":
        return inv_freq / rope.factor
    if rope.rope_type != "llama3":
        return inv_freq
    low_freq_wavelen = rope.original_max_position_embeddings / rope.low_freq_factor
    high_freq_wavelen = rope.original_max_position_embeddings / rope.high_freq_factor
    wavelen = 2 * math.pi / inv_freq  # [D/2]
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq)  # [D/2]
    smooth = (rope.original_max_position_embeddings / wavelen - rope.low_freq_factor) / (
        rope.high_freq_factor - rope.low_freq_factor
    )  # [D/2]
    smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled  # [D/2]
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)  # [D/2]
    return torch.where(is_medium, smoothed, scaled)


class RotaryEmbedding(torch.nn.Module):
    """Turns token positions into the (cos, sin) pair every attention layer rotates q and k by."""

    def __init__(self, rope: RopeConfig, head_dim: int) -> None:
        super().__init__()
        # A plain attribute, not a buffer: the model is built on the meta device and materialised
        # with `to_empty`, which would leave a buffer uninitialised. Moved to the device on first use.
        self.inv_freq = inverse_frequencies(rope, head_dim)  # [D/2] fp32

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [T] -> cos, sin [T, 1, D] in `dtype`, broadcastable over heads."""
        if self.inv_freq.device != positions.device:
            self.inv_freq = self.inv_freq.to(positions.device)
        freqs = positions.float()[:, None] * self.inv_freq[None, :]  # [T, D/2]
        angles = torch.cat((freqs, freqs), dim=-1)[:, None, :]  # [T, 1, D]
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [T, H, D] by cos/sin [T, 1, D] (the "rotate half" layout of HF checkpoints).

    On the CPU with the fused kernels, x is rotated in place (and returned): callers pass a fresh
    projection they do not read again."""
    fused = cpu_kernels(x)
    if fused is not None and x.stride(-1) == 1 and cos.is_contiguous() and sin.is_contiguous():
        fused.rotary_(x, cos, sin)
        return x
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)  # [T, H, D]
    return x * cos + rotated * sin
