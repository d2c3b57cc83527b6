"""Benchmarks of sarathi-sdk. Each prints a short table last and can write its full results as JSON.

- `sarathi bench compare`: the same requests through each scheduler and the `hf` baseline (`compare.py`).
- `sarathi bench capacity`: the highest request rate each scheduler sustains under a TBT SLO.
- `sarathi bench micro`: a decode's cost alone and piggybacked on a prefill chunk; prefill cost by chunk.
- `python -m sarathi_sdk.bench.cpu`: the CPU fast path against its goals, beside llama.cpp; with
  `--isa`, per ISA level of the CPU kernels (avx512, avx2, the torch path), beside llama.cpp built for each.
- `python -m sarathi_sdk.bench.scheduling_cost`: the CPU cost of one scheduling step per policy.
- `python -m sarathi_sdk.bench.engine_overhead`: the engine's own cost per step, with a zero-cost backend.
- `python -m sarathi_sdk.bench.decode_vs_hf`: decode speed against transformers on the same weights.

The metric definitions are in `report.py`; `docs/benchmarks.md` holds the commands and measured results.
"""
