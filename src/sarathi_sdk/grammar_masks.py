"""A step's grammar bitmasks: which tokens each constrained request may sample in it.

Runs on the event-loop thread, between `policy.schedule()` and the step's submission: a matcher's
state depends only on the tokens its request has sampled so far, all of them accepted by then (a
request is in at most one batch in flight). Only the rows that sample get a mask: each decode and each
last prefill chunk whose request has a matcher; a chunk that does not end its prompt samples nothing.

Imports only the standard library and the contract modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .batch import DecodeSlot, PrefillChunk, ScheduledBatch
from .structured_outputs import GrammarMatcher, StructuredOutputBackend

Row = PrefillChunk | DecodeSlot


def constrain(batch: ScheduledBatch, matcher_of: Callable[[str], GrammarMatcher | None],
              backend: StructuredOutputBackend | None) -> ScheduledBatch:
    """`batch` with `allowed_tokens` on the sampling rows of requests that have a matcher (all rows
    share one bitmask from `backend`), and on a decode with a proposal `proposal_allowed_tokens`; the
    batch itself when no request has a matcher."""
    if backend is None:
        return batch
    sampling: list[Row] = [chunk for chunk in batch.prefills if chunk.is_last_chunk]
    sampling += batch.decodes
    constrained = [(row, matcher) for row in sampling if (matcher := matcher_of(row.request_id)) is not None]
    if not constrained:
        return batch
    num_rows = sum(1 + len(row.proposal) if isinstance(row, DecodeSlot) else 1 for row, _ in constrained)
    bitmask = backend.allocate_bitmask(num_rows)  # [R, words]
    allowed, after_proposed = {}, {}
    index = 0
    for row, matcher in constrained:
        matcher.fill_bitmask(bitmask, index)
        allowed[row.request_id] = bitmask[index]  # [words]
        index += 1
        if isinstance(row, DecodeSlot) and row.proposal:
            after_proposed[row.request_id] = tuple(bitmask[i] for i in range(index, index + len(row.proposal)))
            index = _fill_proposed(matcher, row.proposal, bitmask, index)

    prefills = tuple(dataclasses.replace(c, allowed_tokens=allowed[c.request_id]) if c.request_id in allowed else c
                     for c in batch.prefills)  # a request is in a batch once: only its last chunk is in `allowed`
    decodes = tuple(dataclasses.replace(d, allowed_tokens=allowed[d.request_id],
                                        proposal_allowed_tokens=after_proposed.get(d.request_id, ()))
                    if d.request_id in allowed else d for d in batch.decodes)
    return dataclasses.replace(batch, prefills=prefills, decodes=decodes)


def _fill_proposed(matcher: GrammarMatcher, proposal: tuple[int, ...], bitmask: Any, index: int) -> int:
    """Rows `index ..` of `bitmask`: the tokens allowed after each proposed token, the matcher stepped
    through the proposal and rolled back again; returns the next free row. After a token the grammar
    refuses (or once it has terminated) the rows repeat the last mask: the refused token is outside the
    mask before it, so verification stops there and never uses them."""
    accepted = 0
    following = True
    for token_id in proposal:
        following = following and matcher.accept(token_id)
        if following:
            accepted += 1
            following = not matcher.is_terminated  # a stop token: the grammar has no next mask
        if following:
            matcher.fill_bitmask(bitmask, index)
        else:
            bitmask[index] = bitmask[index - 1]
        index += 1
    if accepted:
        matcher.rollback(accepted)  # type: ignore[attr-defined]  # only such matchers get proposals
    return index
