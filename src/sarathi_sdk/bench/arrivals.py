"""Arrival processes: when each benchmark request reaches the engine, in seconds after the start.

- rate None (or infinite): every request at t=0, the offline (throughput) setting;
- `poisson`: exponential gaps with mean 1 / rate, the open-loop load of vLLM's and Sarathi-Serve's
  serving benchmarks;
- `gamma`: gamma gaps with the same mean 1 / rate and coefficient of variation `burstiness`
  (shape 1 / burstiness^2): 1 is Poisson, above 1 requests come in bursts, below 1 more evenly.

Imports only the standard library.
"""

from __future__ import annotations

import itertools
import math
import random

from ..errors import ConfigError

PROCESSES = ("poisson", "gamma")


def arrival_times(num_requests: int, rate: float | None, process: str = "poisson",
                  burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """Non-decreasing arrival times of `num_requests` requests, the first gap included (a request
    stream started at t=0 has its first arrival after one gap, as a real open-loop client)."""
    if rate is None or math.isinf(rate):
        return [0.0] * num_requests
    if not rate > 0:
        raise ConfigError(f"request rate must be > 0 requests/s, got {rate!r}")
    if process not in PROCESSES:
        raise ConfigError(f"arrival process must be one of {', '.join(PROCESSES)}, got {process!r}")
    if not burstiness > 0:
        raise ConfigError(f"burstiness must be > 0, got {burstiness!r}")
    rng = random.Random(seed)
    if process == "poisson":
        gaps = (rng.expovariate(rate) for _ in range(num_requests))
    else:
        shape = 1.0 / burstiness**2
        gaps = (rng.gammavariate(shape, 1.0 / (rate * shape)) for _ in range(num_requests))
    return list(itertools.accumulate(gaps))
