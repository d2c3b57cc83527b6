"""The "cpu" attention backend: the "torch" backend with decodes read in place from the paged cache.

Decode attention in plain torch gathers each decode's whole padded context out of the paged cache,
per layer and per step, before it attends: at 800 tokens of context that copy, and the padded
matmuls after it, made each decode cost about 16 ms of a mixed step on a 2-core CPU. The fused
kernel (`csrc/cpu_ops.cpp`, `decode_attention`) walks the block table instead and reads each key and
value row once, shared by the query heads of its KV head, accumulating in fp32. Prefill chunks keep
the torch backend's path: one gather per chunk is small next to the chunk's own attention, which
SDPA computes fast.

"auto" selects this backend on the CPU when the kernels compiled (see `cpu_ops`), else "torch".
"""

from __future__ import annotations

import torch

from .context import AttentionContext
from .torch_attention import TorchAttention


class CpuAttention(TorchAttention):
    """Paged attention for CPU steps; see the module docstring."""

    def __init__(self, kernels: object) -> None:
        self.kernels = kernels

    def attend_decodes(
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        context: AttentionContext,
        scale: float,
        sliding_window: int | None,
    ) -> torch.Tensor:
        """q [N, Hq, D] -> [N, Hq, D], each decode over positions 0 .. its own (or its window)."""
        return self.kernels.decode_attention(  # type: ignore[attr-defined]
            q.contiguous(),
            k_cache,
            v_cache,
            context.decode_block_tables,
            context.decode_context_lens,
            scale,
            sliding_window or 0,
        )
