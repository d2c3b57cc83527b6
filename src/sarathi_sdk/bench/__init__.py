"""Benchmarks of sarathi-sdk. Each prints a short table last and can write its full results as JSON.

- `python -m sarathi_sdk.bench.scheduling_cost`: the CPU cost of one scheduling step per policy.
"""
