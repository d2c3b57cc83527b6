"""Proposing speculative tokens: the `Proposer` plugins implement, and the engine's rule for how many.

Between steps, each running decode without a proposal may get one: k tokens guessed to follow its
newest token, which the next step verifies in one forward pass beside its own token (see
`sarathi_sdk.speculative`). A policy then takes up to all of them into its decode, a token of the
step's budget each (`PolicyBase.speculate` in the bundled scheduling plugin).

How many tokens to ask for is `SpeculationRule`'s call, per request:

- none past `speculative_disable_by_batch_size` running decodes: a verification row then costs about
  as much as the token it may save (the crossover measured in docs/benchmarks.md);
- otherwise the k in 0 .. `num_speculative_tokens` that makes the step yield the most tokens per unit
  of time, from the request's own acceptance rate (a running average over its verifications) and the
  cost of a verification row. With per-token acceptance a, verifying k proposed tokens yields
  E = (1 - a^(k+1)) / (1 - a) tokens for the request, and a step of B decodes costs
  `STEP_FIXED_ROWS` + B rows' time, so k is worth it when (B + E - 1) / (F + B + k) beats
  B / (F + B): the more decodes share the step, the more a row costs in tokens it could have made;
- a request whose rate has made k 0 is probed with one token every `PROBE_INTERVAL` decodes, so a
  text that turns copyable is noticed again;
- the step's decode rows (each decode and its proposed tokens) stay within the backend's
  `KVCacheSpec.max_decode_rows`, past which its decode path gets much dearer per row: the longest
  proposals are shortened first.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .batch import ScheduledBatch, StepOutput
from .config import EngineConfig
from .request import Request

STEP_FIXED_ROWS = 4.0
"""A decode step's time that does not grow with its rows, in rows' time: SmolLM2-135M Q8_0 on the CPU
decode stack (2-core Zen 4) takes about 4.9 ms for one row and 1 ms more per row up to 16, so one
row's time is a fifth of a batch-1 step (docs/benchmarks.md, "Speculative decoding")."""
PRIOR_ACCEPTANCE = 0.6
"""A request's acceptance rate before its first verification: enough to try the full proposal."""
SMOOTHING = 0.3
"""Weight of the newest verification in a request's running acceptance rate."""
PROBE_INTERVAL = 16
"""Decodes between one-token probes of a request whose acceptance rate turned speculation off."""


@runtime_checkable
class Proposer(Protocol):
    """Guesses the tokens that follow each decode's newest token. Built by `sarathi_make_proposer`
    from `EngineConfig.speculative`; plugins register their own with `sarathi_register_proposers`."""

    runs_on_worker_thread: bool
    """Whether `propose` computes enough (a draft model) to run off the event loop."""

    def propose(self, requests: Sequence[Request], num_tokens: Sequence[int]) -> list[tuple[int, ...]]:
        """For each decode request (every token but its newest computed), up to `num_tokens[i]`
        tokens to follow its tokens (`prompt_token_ids + output_token_ids`); fewer or none when
        there is no good guess. Must not change the requests."""
        ...

    def close(self) -> None:
        """Release what the proposer holds (a draft model and its KV cache)."""
        ...


@dataclass(eq=False, slots=True)
class _Record:
    acceptance: float = PRIOR_ACCEPTANCE
    skipped: int = 0
    """Decodes since this request last verified anything, while its rule said 0."""


class SpeculationRule:
    """How many tokens to propose for each decode; see the module docstring."""

    def __init__(self, config: EngineConfig, max_decode_rows: int | None = None) -> None:
        self.max_tokens = config.num_speculative_tokens
        self.disable_by_batch_size = config.speculative_disable_by_batch_size
        self.max_decode_rows = max_decode_rows
        self._records: weakref.WeakKeyDictionary[Request, _Record] = weakref.WeakKeyDictionary()

    def num_tokens(self, requests: Sequence[Request]) -> list[int]:
        """Tokens to ask the proposer for, per decode request (each at most its `max_proposal_len`)."""
        if self.disable_by_batch_size is not None and len(requests) > self.disable_by_batch_size:
            return [0] * len(requests)
        counts = []
        for request in requests:
            record = self._record(request)
            k = best_length(record.acceptance, self.max_tokens, len(requests))
            if k == 0:
                record.skipped += 1
                if record.skipped >= PROBE_INTERVAL:
                    record.skipped, k = 0, 1
            counts.append(min(k, request.max_proposal_len))
        if self.max_decode_rows is not None:
            spare = self.max_decode_rows - len(requests)
            while sum(counts) > max(0, spare):
                longest = max(range(len(counts)), key=counts.__getitem__)
                counts[longest] -= 1
        return counts

    def record(self, request: Request, num_proposed: int, num_accepted: int) -> None:
        """A verification of `num_proposed` tokens accepted `num_accepted`."""
        record = self._record(request)
        rate = num_accepted / num_proposed
        record.acceptance += SMOOTHING * (rate - record.acceptance)
        record.skipped = 0

    def _record(self, request: Request) -> _Record:
        record = self._records.get(request)
        if record is None:
            record = self._records[request] = _Record()
        return record


def best_length(acceptance: float, max_tokens: int, num_decodes: int) -> int:
    """The k in 0 .. max_tokens with which a step of `num_decodes` decodes yields the most expected
    tokens per unit of time (see the module docstring); 0 when none beats proposing nothing."""
    fixed = STEP_FIXED_ROWS + num_decodes
    best, best_rate = 0, num_decodes / fixed
    for k in range(1, max_tokens + 1):
        expected = float(k + 1) if acceptance >= 1 else (1 - acceptance ** (k + 1)) / (1 - acceptance)
        rate = (num_decodes + expected - 1) / (fixed + k)
        if rate > best_rate:
            best, best_rate = k, rate
    return best


class Speculation:
    """The engine's proposal stage: asks the proposer for each decode's tokens between steps and
    counts what verification made of them (`engine.stats()`)."""

    def __init__(self, proposer: Proposer, config: EngineConfig, vocab_size: int | None = None,
                 max_decode_rows: int | None = None) -> None:
        self.proposer = proposer
        self.vocab_size = vocab_size
        """Proposed token ids must be below this (a draft with another vocabulary); None: unchecked."""
        self.rule = SpeculationRule(config, max_decode_rows)
        self.num_proposed_tokens = 0
        """Proposed tokens that steps verified."""
        self.num_accepted_tokens = 0
        """Of those, the tokens verification accepted."""

    def plan(self, requests: Sequence[Request]) -> tuple[list[Request], list[int]]:
        """The decode requests to ask proposals for, and how many tokens each (all at least 1)."""
        counts = self.rule.num_tokens(requests)
        wanted = [(request, k) for request, k in zip(requests, counts) if k > 0]
        return [r for r, _ in wanted], [k for _, k in wanted]

    def apply(self, requests: Sequence[Request], counts: Sequence[int], proposals: Sequence[Sequence[int]]) -> None:
        """Give each planned request its proposal (cut before a token outside the vocabulary), unless it
        ended while the proposer ran."""
        vocab = self.vocab_size
        for request, k, proposal in zip(requests, counts, proposals):
            if request.is_finished or not request.is_decode:
                continue
            tokens = []
            for token in proposal[:k]:
                if vocab is not None and not 0 <= token < vocab:
                    break
                tokens.append(int(token))
            request.proposal = tuple(tokens)

    def record(self, batch: ScheduledBatch, output: StepOutput, requests: Sequence[Request]) -> None:
        """Count a step's verifications, and tell the rule each request's outcome (`requests`: the
        batch's requests, in `batch.request_ids` order)."""
        decoding = requests[len(batch.prefills):]
        for slot, request in zip(batch.decodes, decoding):
            if not slot.proposal or slot.request_id not in output.sampled:
                continue
            num_accepted = len(output.accepted.get(slot.request_id, ()))
            self.num_proposed_tokens += len(slot.proposal)
            self.num_accepted_tokens += num_accepted
            self.rule.record(request, len(slot.proposal), num_accepted)
