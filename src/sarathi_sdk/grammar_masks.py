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

from .batch import DecodeSlot, PrefillChunk, ScheduledBatch
from .structured_outputs import GrammarMatcher, StructuredOutputBackend

Row = PrefillChunk | DecodeSlot


def constrain(batch: ScheduledBatch, matcher_of: Callable[[str], GrammarMatcher | None],
              backend: StructuredOutputBackend | None) -> ScheduledBatch:
    """`batch` with `allowed_tokens` on the sampling rows of requests that have a matcher (all rows
    share one bitmask from `backend`); the batch itself when none has."""
    if backend is None:
        return batch
    sampling: list[Row] = [chunk for chunk in batch.prefills if chunk.is_last_chunk]
    sampling += batch.decodes
    constrained = [(row, matcher) for row in sampling if (matcher := matcher_of(row.request_id)) is not None]
    if not constrained:
        return batch
    bitmask = backend.allocate_bitmask(len(constrained))  # [R, words]
    allowed = {}
    for index, (row, matcher) in enumerate(constrained):
        matcher.fill_bitmask(bitmask, index)
        allowed[row.request_id] = bitmask[index]  # [words]

    prefills = tuple(dataclasses.replace(c, allowed_tokens=allowed[c.request_id]) if c.request_id in allowed else c
                     for c in batch.prefills)  # a request is in a batch once: only its last chunk is in `allowed`
    decodes = tuple(dataclasses.replace(d, allowed_tokens=allowed[d.request_id]) if d.request_id in allowed else d
                    for d in batch.decodes)
    return dataclasses.replace(batch, prefills=prefills, decodes=decodes)
