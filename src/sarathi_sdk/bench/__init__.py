"""Benchmarks of sarathi-sdk. Each prints a short table last and can write its full results as JSON.

- `python -m sarathi_sdk.bench.scheduling_cost`: the CPU cost of one scheduling step per policy.
- `python -m sarathi_sdk.bench.engine_overhead`: the engine's own cost per step, with a zero-cost backend.
- `python -m sarathi_sdk.bench.decode_vs_hf`: decode speed against transformers on the same weights.
"""
