"""The "cpu" attention backend: the "torch" backend with attention read in place from the paged cache.

Decode attention in plain torch gathers each decode's whole padded context out of the paged cache,
per layer and per step, before it attends: at 800 tokens of context that copy, and the padded
matmuls after it, made each decode cost about 16 ms of a mixed step on a 2-core CPU. The fused
kernel (`csrc/cpu_ops.cpp`, `decode_attention`) walks the block table instead and reads each key and
value row once, shared by the query heads of its KV head, accumulating in fp32.

Prefill chunks in bf16 with head_dim 64 and no sliding window take `prefill_attention`
(`csrc/prefill_attention.cpp`): the chunk's keys read in place, causally from the bottom right, with
the blocks a mask would hide never computed. The torch backend gathers the chunk's context in every
layer and runs SDPA with a mask over all of it. Other chunks keep the torch backend's path.

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
        self.has_prefill_kernel: bool = kernels.prefill_attention_supported()  # type: ignore[attr-defined]
        """Whether this build has `prefill_attention` (the avx512 and avx2 levels)."""

    def attend_prefill(
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        context: AttentionContext,
        i: int,
        scale: float,
        sliding_window: int | None,
        softcap: float | None = None,
    ) -> torch.Tensor:
        """Prefill chunk i: q [q_len, Hq, D] -> [q_len, Hq, D], by the kernel where it applies."""
        if (sliding_window is None and softcap is None and q.dtype == torch.bfloat16 and q.shape[-1] == 64
                and q.shape[1] <= 8 * k_cache.shape[2] and self.has_prefill_kernel):
            return self.kernels.prefill_attention(  # type: ignore[attr-defined]
                q.contiguous(), k_cache, v_cache, context.prefill_block_tables[i], context.prefill_context_lens[i], scale
            )
        return super().attend_prefill(q, k_cache, v_cache, context, i, scale, sliding_window, softcap)

    def attend_decodes(
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        context: AttentionContext,
        scale: float,
        sliding_window: int | None,
        softcap: float | None = None,
    ) -> torch.Tensor:
        """q [N, Hq, D] -> [N, Hq, D], each decode over positions 0 .. its own (or its window); soft-capped
        scores (Gemma 2) in torch ops, as the kernel has no cap."""
        if softcap is not None:
            return super().attend_decodes(q, k_cache, v_cache, context, scale, sliding_window, softcap)
        return self.kernels.decode_attention(  # type: ignore[attr-defined]
            q.contiguous(),
            k_cache,
            v_cache,
            context.decode_block_tables,
            context.decode_context_lens,
            scale,
            sliding_window or 0,
        )
