"""Verifying proposed tokens: what a model backend does with a decode that carries a `proposal`.

A decode whose request has k proposed tokens `x_1 .. x_k` runs as 1 + k decode rows of one request at
consecutive positions, `position .. position + k`, sharing its block table: every backend writes a
step's new K/V into the cache before any query attends, so row i sees the rows before it, exactly the
causal attention a prefill chunk of those tokens would get. Each row then samples as an ordinary
decode would at that position (`expand_proposals`): row i's history ends with `x_1 .. x_i`, its grammar mask is
the one after them, its seeded draw is the one for its position.

Verification (`verify_proposals`) keeps the proposed tokens up to the first one the samples disagree with:
with samples `y_0 .. y_k`, `x_1 .. x_a` are accepted while `y_{i-1} == x_i`, and `y_a` follows them.
For a greedy request that is the longest prefix of the proposal the model itself would have written,
plus one token. For a sampled request it is the standard rejection sampling of speculative decoding
(Leviathan et al. 2023; Chen et al. 2023) for a proposal drawn from a point mass, which is what the
bundled proposers give (the n-gram lookup, and the draft model's greedy tokens): accept `x_i` with
probability `p_i(x_i)`, else draw from `p_i` without `x_i`, renormalized. Sampling `y_i` from `p_i`
and accepting when it equals `x_i` does exactly that, so the output has the distribution (and, with a
seed, the very tokens) of decoding without speculation.

Imports only the standard library and `batch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .batch import DecodeSlot, PrefillChunk, ScheduledBatch, StepOutput, TokenHistory, TokenLogprobs


def expand_proposals(batch: ScheduledBatch) -> ScheduledBatch:
    """`batch` with each decode that carries a proposal replaced by its 1 + k verification rows
    (see the module docstring); the same batch when no decode does."""
    if not any(slot.proposal for slot in batch.decodes):
        return batch
    rows: list[DecodeSlot] = []
    for slot in batch.decodes:
        rows.extend(verification_rows(slot) if slot.proposal else (slot,))
    return ScheduledBatch(batch.step_id, prefills=batch.prefills, decodes=tuple(rows))


def verification_rows(slot: DecodeSlot) -> tuple[DecodeSlot, ...]:
    """The decode rows that verify `slot.proposal`: its own token, then each proposed token at the
    next position, each row sampling as an ordinary decode at that position would."""
    rows = [dataclasses.replace(slot, proposal=(), proposal_allowed_tokens=())]
    history = slot.history
    masks = slot.proposal_allowed_tokens or (None,) * len(slot.proposal)
    for i, (token_id, mask) in enumerate(zip(slot.proposal, masks)):
        if history is not None:
            history = TokenHistory(history.prompt_token_ids, history.output_token_ids + (token_id,))
        rows.append(DecodeSlot(slot.request_id, token_id, slot.position + 1 + i, slot.block_table,
                               slot.sampling_params, history, mask))
    return tuple(rows)


def verify_proposals(step_id: int, rows: Sequence[PrefillChunk | DecodeSlot], token_ids: Sequence[int | None],
                     logprobs: Sequence[TokenLogprobs | None], failed: dict[str, str] | None = None) -> StepOutput:
    """The step's output from one sample per row of the expanded batch (`token_ids[i]` None where row i's
    sampling failed, the reason in `failed`): a row group of one request's verification becomes its
    accepted tokens and the token after them. A verification row that failed ends the group before it;
    a failed first row fails the request."""
    failed = dict(failed or {})
    sampled: dict[str, int] = {}
    chosen_logprobs: dict[str, TokenLogprobs] = {}
    accepted: dict[str, tuple[int, ...]] = {}
    accepted_logprobs: dict[str, tuple[TokenLogprobs, ...]] = {}
    first = 0
    while first < len(rows):
        request_id = rows[first].request_id
        end = first + 1
        while end < len(rows) and rows[end].request_id == request_id:
            end += 1
        proposed = [row.token_id for row in rows[first + 1 : end] if isinstance(row, DecodeSlot)]  # [k]
        samples = token_ids[first:end]  # [1 + k]
        lps = logprobs[first:end]  # [1 + k]
        first = end
        token = samples[0]
        if token is None:
            continue  # its reason is in `failed` already
        failed.pop(request_id, None)
        kept = 0  # proposed tokens accepted: the sample before each equals it, and its own sample ran
        while kept < len(proposed) and token == proposed[kept] and (following := samples[kept + 1]) is not None:
            kept += 1
            token = following
        sampled[request_id] = token
        if kept:
            accepted[request_id] = tuple(proposed[:kept])
        chosen = lps[kept]
        if chosen is not None:
            chosen_logprobs[request_id] = chosen
            if kept:
                accepted_logprobs[request_id] = tuple(lp for lp in lps[:kept] if lp is not None)
    return StepOutput(step_id=step_id, sampled=sampled, logprobs=chosen_logprobs, accepted=accepted,
                      accepted_logprobs=accepted_logprobs, failed=failed)
