"""Workloads: how long each benchmark request's prompt and output are.

A workload is a list of `(prompt_len, output_len)` pairs drawn with a seed, so every policy and the
`hf` baseline serve the very same requests. Kinds, by name (the `--prompt-len` / `--output-len`
grammar of `sarathi bench`):

- `N`: every request N tokens; `LO-HI` or `uniform:LO-HI`: uniform integers in [LO, HI];
- `lognormal:MEDIAN,P90`: log-normal with that median and 90th percentile (the form papers report);
- `zipf:A,LO-HI`: Zipf with exponent A over [LO, HI] (many short, a heavy tail of long);
- `--workload chat` / `--workload summarization`: both lengths log-normal with the medians and 90th
  percentiles that Sarathi-Serve reports for its two traces (OSDI'24, arXiv 2403.02310, Table 2):
  openchat_sharegpt4, prompts median 1730 / P90 5696 tokens and outputs 415 / 834; and
  arxiv_summarization, prompts 7059 / 12985 and outputs 208 / 371. `--length-scale` shrinks both so
  a CPU can serve them; lengths are clipped to the model's limit either way;
- `--trace FILE`: a CSV (header with `prompt_len,output_len`, optional `arrival_time`) or JSONL file
  (one object per line with the same keys), as recorded from a real service.

Synthetic prompts are token ids, not text: lengths are exact, no tokenizer is needed, and prompts
differ from each other (no accidental prefix sharing), except for a deliberate shared prefix
(`--shared-prefix-len N`, `bench_prompt`): the first N tokens of every prompt of a run are the same, a
system prompt, and differ from run to run. Imports only the standard library.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

Z90 = 1.2815515655446004
"""The standard normal's 90th percentile: a log-normal's sigma is ln(P90 / median) / Z90."""

TRACES = {
    "chat": ("lognormal:1730,5696", "lognormal:415,834"),
    "summarization": ("lognormal:7059,12985", "lognormal:208,371"),
}
"""Named synthetic traces: (prompt lengths, output lengths), from Sarathi-Serve's Table 2."""


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """One request of a workload; `arrival_time` is seconds after the run starts (None: not fixed by a
    trace, the arrival process decides)."""

    prompt_len: int
    output_len: int
    arrival_time: float | None = None


@dataclass(frozen=True, slots=True)
class Lengths:
    """A length distribution parsed from its spec string; `sample` draws one length >= 1."""

    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, spec: str | int) -> Lengths:
        text = str(spec).strip()
        kind, _, rest = text.partition(":") if ":" in text else ("", "", text)
        try:
            if kind == "" and "-" not in rest:
                return cls._checked("fixed", (int(rest),))
            if kind in ("", "uniform"):
                low, high = (int(v) for v in rest.split("-"))
                return cls._checked("uniform", (low, high))
            if kind == "lognormal":
                median, p90 = (float(v) for v in rest.split(","))
                return cls._checked("lognormal", (median, p90))
            if kind == "zipf":
                exponent, bounds = rest.split(",")
                low, high = (int(v) for v in bounds.split("-"))
                return cls._checked("zipf", (float(exponent), low, high))
        except ValueError:
            pass
        raise ConfigError(
            f"length {text!r} is not N, LO-HI, uniform:LO-HI, lognormal:MEDIAN,P90 or zipf:A,LO-HI"
        )

    @classmethod
    def _checked(cls, kind: str, params: tuple[float, ...]) -> Lengths:
        if kind in ("fixed", "uniform") and not 1 <= params[0] <= params[-1]:
            raise ValueError
        if kind == "lognormal" and not 0 < params[0] <= params[1]:
            raise ValueError
        if kind == "zipf" and not (params[0] > 0 and 1 <= params[1] <= params[2]):
            raise ValueError
        return cls(kind, params)

    def sample(self, rng: random.Random, scale: float = 1.0) -> int:
        if self.kind == "fixed":
            value = self.params[0]
        elif self.kind == "uniform":
            value = rng.randint(int(self.params[0]), int(self.params[1]))
        elif self.kind == "lognormal":
            median, p90 = self.params
            value = rng.lognormvariate(math.log(median), math.log(p90 / median) / Z90)
        else:
            value = self._zipf(rng)
        return max(1, round(value * scale))

    def _zipf(self, rng: random.Random) -> int:
        """Inverse-CDF draw over [low, high] with weights k ** -a (bounded, so any a > 0 works)."""
        exponent, low, high = self.params
        support = range(int(low), int(high) + 1)
        return rng.choices(support, weights=[k ** -exponent for k in support])[0]


def synthetic(num_requests: int, prompt: str | int, output: str | int, seed: int = 0,
              length_scale: float = 1.0, max_len: int | None = None) -> list[BenchRequest]:
    """`num_requests` requests whose lengths are drawn from the two specs; prompt plus output is
    clipped to `max_len` (the prompt gives way first, keeping at least one token)."""
    if num_requests < 1:
        raise ConfigError(f"num_requests must be >= 1, got {num_requests}")
    prompts, outputs = Lengths.parse(prompt), Lengths.parse(output)
    rng = random.Random(seed)
    requests = []
    for _ in range(num_requests):
        prompt_len, output_len = prompts.sample(rng, length_scale), outputs.sample(rng, length_scale)
        requests.append(clip(BenchRequest(prompt_len, output_len), max_len))
    return requests


def clip(request: BenchRequest, max_len: int | None) -> BenchRequest:
    if max_len is None or request.prompt_len + request.output_len <= max_len:
        return request
    output_len = min(request.output_len, max_len - 1)
    return BenchRequest(max_len - output_len, output_len, request.arrival_time)


def named_trace(name: str) -> tuple[str, str]:
    if name not in TRACES:
        raise ConfigError(f"workload must be one of {', '.join(sorted(TRACES))}, got {name!r}")
    return TRACES[name]


def load_trace(path: str | Path, max_len: int | None = None) -> list[BenchRequest]:
    """A recorded trace: CSV with a header or JSONL, keys `prompt_len`, `output_len` and optionally
    `arrival_time` (seconds from the start, non-decreasing)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read trace {path}: {exc}") from exc
    if path.suffix.lower() == ".csv":
        rows: Sequence[Any] = list(csv.DictReader(text.splitlines()))
    else:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"trace {path} is not JSON lines: {exc}") from exc
    requests = [clip(_trace_row(path, i, row), max_len) for i, row in enumerate(rows, 1)]
    if not requests:
        raise ConfigError(f"trace {path} holds no requests")
    arrivals = [r.arrival_time for r in requests]
    if any(a is not None for a in arrivals):
        timed = [a for a in arrivals if a is not None]
        if len(timed) < len(arrivals) or any(b < a for a, b in zip(timed, timed[1:])):
            raise ConfigError(f"trace {path}: arrival_time must be on every row and non-decreasing")
    return requests


def _trace_row(path: Path, line: int, row: Any) -> BenchRequest:
    try:
        prompt_len, output_len = int(row["prompt_len"]), int(row["output_len"])
        arrival = row.get("arrival_time")
        arrival_time = None if arrival in (None, "") else float(arrival)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"trace {path} row {line}: needs integer prompt_len and output_len ({exc!r})") from exc
    if prompt_len < 1 or output_len < 1 or (arrival_time is not None and not arrival_time >= 0):
        raise ConfigError(f"trace {path} row {line}: lengths must be >= 1 and arrival_time >= 0")
    return BenchRequest(prompt_len, output_len, arrival_time)


def prompt_token_ids(length: int, salt: int, vocab_size: int) -> list[int]:
    """A prompt of `length` token ids, distinct per `salt` from the first token on, avoiding id 0
    (often padding) and staying inside the vocabulary."""
    span = max(1, min(vocab_size, 32000) - 1)
    return [1 + (salt * 7919 + j * 104729) % span for j in range(length)]


def bench_prompt(length: int, salt: int, index: int, vocab_size: int, shared_prefix_len: int = 0) -> list[int]:
    """The prompt of request `index` in the run salted `salt`: the run's shared prefix of
    `shared_prefix_len` tokens (all of a shorter prompt), then tokens of its own."""
    shared = min(shared_prefix_len, length)
    return prompt_token_ids(shared, -1 - salt, vocab_size) + prompt_token_ids(length - shared, salt + index,
                                                                              vocab_size)
