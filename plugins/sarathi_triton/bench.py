"""Kernel benchmark of the Triton attention on a CUDA GPU: `python -m sarathi_triton.bench [--json F]`.

Prints, for each shape, the kernel's time beside torch `scaled_dot_product_attention` on the same
shapes, and the fraction of the device's measured ceilings it reaches:

- decode (memory-bound): B decodes with L tokens of context each; bytes = the K and V they read; goal
  >= 70% of the measured copy bandwidth at long context;
- prefill chunk (compute-bound): one chunk of C tokens over a cached prefix; FLOPs = 4 * heads *
  head_dim per (query, key) pair; against the measured bf16 matmul rate.

SDPA reads contiguous [B, H, L, D] tensors (K/V expanded for GQA), the layout a non-paged cache has, so
the comparison shows what paging costs. Times are medians of CUDA-event-timed repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from .attention import paged_attention, step_sequences

Q_HEADS, KV_HEADS, HEAD_DIM, BLOCK_SIZE = 32, 8, 128, 16
DECODE_SHAPES = ((32, 1024), (32, 4096), (8, 16384))  # (decodes, context)
PREFILL_SHAPES = ((512, 0), (512, 4096), (2048, 0))  # (chunk, cached prefix)


def cuda_time(fn: Callable[[], Any], repeats: int = 20) -> float:
    """Median seconds of `fn` on the GPU after two warm-ups."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def ceilings() -> dict[str, float]:
    src = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")  # 256 MiB
    dst = torch.empty_like(src)
    copy = cuda_time(lambda: dst.copy_(src))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)  # [8192, 8192]
    gemm = cuda_time(lambda: a @ a)
    return {"copy_bandwidth": 2 * src.numel() / copy, "matmul_rate": 2 * 8192**3 / gemm}


def paged_case(q_lens: Sequence[int], context_lens: Sequence[int]) -> tuple[torch.Tensor, ...]:
    """Random q [T, Hq, D] and caches holding each sequence's context in shuffled blocks; returns
    (q, k_cache, v_cache, sequences)."""
    blocks_per_seq = [-(-c // BLOCK_SIZE) for c in context_lens]
    num_blocks = sum(blocks_per_seq) + 1
    order = torch.randperm(num_blocks - 1, device="cuda") + 1
    tables, used = [], 0
    for n in blocks_per_seq:
        tables.append(order[used : used + n])
        used += n
    width = max(blocks_per_seq)
    table = torch.zeros(len(tables), width, dtype=torch.int64, device="cuda")  # [S, width]
    for i, t in enumerate(tables):
        table[i, : len(t)] = t
    chunks = [i for i, q in enumerate(q_lens) if q > 1]
    decodes = [i for i, q in enumerate(q_lens) if q == 1]
    starts = [sum(q_lens[:i]) for i in range(len(q_lens))]
    context = SimpleNamespace(
        slot_mapping=torch.zeros(sum(q_lens), dtype=torch.int64, device="cuda"),
        num_prefill_tokens=sum(q_lens[i] for i in chunks),
        prefill_query_starts=tuple(starts[i] for i in chunks),
        prefill_query_lens=tuple(q_lens[i] for i in chunks),
        prefill_context_lens=tuple(context_lens[i] for i in chunks),
        prefill_block_tables=table[chunks] if chunks else table[:0],
        decode_context_lens=torch.tensor([context_lens[i] for i in decodes], dtype=torch.int64, device="cuda"),
        decode_block_tables=table[decodes] if decodes else table[:0],
        num_prefills=len(chunks),
        num_decodes=len(decodes),
    )
    dtype = torch.bfloat16
    q = torch.randn(sum(q_lens), Q_HEADS, HEAD_DIM, device="cuda", dtype=dtype)  # [T, Hq, D]
    k_cache = torch.randn(num_blocks, BLOCK_SIZE, KV_HEADS, HEAD_DIM, device="cuda", dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    return q, k_cache, v_cache, step_sequences(context)


def decode_row(batch: int, context: int, ceiling: dict[str, float]) -> dict[str, float]:
    q, k_cache, v_cache, seqs = paged_case([1] * batch, [context] * batch)
    ours = cuda_time(lambda: paged_attention(q, k_cache, v_cache, seqs, HEAD_DIM**-0.5, None))
    qd = torch.randn(batch, Q_HEADS, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)  # [B, Hq, 1, D]
    kd = torch.randn(batch, Q_HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16)  # [B, Hq, L, D]
    sdpa = cuda_time(lambda: F.scaled_dot_product_attention(qd, kd, kd))
    bytes_read = 2 * batch * context * KV_HEADS * HEAD_DIM * 2
    return {"decodes": batch, "context": context, "ms": ours * 1e3, "sdpa_ms": sdpa * 1e3,
            "bandwidth_fraction": bytes_read / ours / ceiling["copy_bandwidth"]}


def prefill_row(chunk: int, prefix: int, ceiling: dict[str, float]) -> dict[str, float]:
    q, k_cache, v_cache, seqs = paged_case([chunk], [prefix + chunk])
    ours = cuda_time(lambda: paged_attention(q, k_cache, v_cache, seqs, HEAD_DIM**-0.5, None))
    qd = torch.randn(1, Q_HEADS, chunk, HEAD_DIM, device="cuda", dtype=torch.bfloat16)  # [1, Hq, C, D]
    kd = torch.randn(1, Q_HEADS, prefix + chunk, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    mask = torch.ones(chunk, prefix + chunk, dtype=torch.bool, device="cuda").tril(prefix)  # [C, L]
    sdpa = cuda_time(lambda: F.scaled_dot_product_attention(qd, kd, kd, attn_mask=mask))
    pairs = chunk * prefix + chunk * (chunk + 1) // 2
    flops = 4 * Q_HEADS * HEAD_DIM * pairs
    return {"chunk": chunk, "prefix": prefix, "ms": ours * 1e3, "sdpa_ms": sdpa * 1e3,
            "tflops": flops / ours / 1e12, "matmul_fraction": flops / ours / ceiling["matmul_rate"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarathi_triton.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("sarathi_triton.bench needs a CUDA GPU")
        return 2
    ceiling = ceilings()
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, **ceiling,
              "decode": [decode_row(b, c, ceiling) for b, c in DECODE_SHAPES],
              "prefill": [prefill_row(c, p, ceiling) for c, p in PREFILL_SHAPES]}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    print(f"{result['device']}: copy {ceiling['copy_bandwidth'] / 1e9:.0f} GB/s, "
          f"bf16 matmul {ceiling['matmul_rate'] / 1e12:.0f} TFLOP/s")
    print(f"{'decode B x L':>16}{'ms':>9}{'sdpa ms':>9}{'of copy bw':>12}  goal >= 70%")
    for r in result["decode"]:
        print(f"{r['decodes']:>7} x {r['context']:<6}{r['ms']:>9.3f}{r['sdpa_ms']:>9.3f}"
              f"{100 * r['bandwidth_fraction']:>11.0f}%  {'yes' if r['bandwidth_fraction'] >= 0.7 else 'NO'}")
    print(f"{'prefill C + prefix':>20}{'ms':>9}{'sdpa ms':>9}{'TFLOP/s':>9}{'of matmul':>11}")
    for r in result["prefill"]:
        print(f"{r['chunk']:>8} + {r['prefix']:<9}{r['ms']:>9.3f}{r['sdpa_ms']:>9.3f}{r['tflops']:>9.1f}"
              f"{100 * r['matmul_fraction']:>10.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
