"""`grammar_masks.constrain`: the rows that sample in a step, and only those of requests with a matcher,
get a row of one bitmask, filled by their own matcher (fakes stand in for the grammar backend)."""

from __future__ import annotations

import numpy as np

from sarathi_sdk import DecodeSlot, PrefillChunk, SamplingParams, ScheduledBatch
from sarathi_sdk.grammar_masks import constrain

PARAMS = SamplingParams()


class Matcher:
    def __init__(self, allowed: int) -> None:
        self.allowed = allowed

    def fill_bitmask(self, bitmask, row):
        bitmask[row] = 0
        bitmask[row, self.allowed // 32] = 1 << (self.allowed % 32)

    def accept(self, token_id):
        return token_id == self.allowed

    @property
    def is_terminated(self):
        return False


class Backend:
    def __init__(self) -> None:
        self.allocated: list[int] = []

    def compile(self, params):
        raise NotImplementedError

    def matcher(self, compiled):
        raise NotImplementedError

    def allocate_bitmask(self, rows):
        self.allocated.append(rows)
        return np.full((rows, 4), -1, dtype=np.int32)


def chunk(request_id: str, last: bool) -> PrefillChunk:
    return PrefillChunk(request_id, (5, 6), 0, (0,), last, PARAMS)


def decode(request_id: str) -> DecodeSlot:
    return DecodeSlot(request_id, 7, 3, (0,), PARAMS)


def allowed_token(row) -> int:
    bits = np.unpackbits(np.asarray(row, dtype=np.int32).view(np.uint8), bitorder="little")
    (token,) = np.nonzero(bits)[0]
    return int(token)


def test_only_sampling_rows_of_constrained_requests_get_their_own_matchers_mask():
    matchers = {"mid": Matcher(1), "last": Matcher(40), "d1": Matcher(99)}
    batch = ScheduledBatch(1, prefills=(chunk("mid", last=False), chunk("last", last=True), chunk("free", last=True)),
                           decodes=(decode("d1"), decode("d2")))
    backend = Backend()
    out = constrain(batch, matchers.get, backend)
    assert backend.allocated == [2]  # "last" and "d1": the mid-prompt chunk samples nothing
    assert out.prefills[0].allowed_tokens is None and out.prefills[2].allowed_tokens is None
    assert out.decodes[1].allowed_tokens is None
    assert allowed_token(out.prefills[1].allowed_tokens) == 40
    assert allowed_token(out.decodes[0].allowed_tokens) == 99
    assert out.num_tokens == batch.num_tokens and out.step_id == batch.step_id


def test_a_batch_without_constrained_rows_is_passed_as_it_is():
    batch = ScheduledBatch(2, decodes=(decode("d1"),))
    backend = Backend()
    assert constrain(batch, {}.get, backend) is batch
    assert constrain(batch, {"d1": Matcher(1)}.get, None) is batch
    assert backend.allocated == []


class CountingMatcher:
    """Allows exactly the token after the last one accepted (0 first); undoes with `rollback`."""

    def __init__(self) -> None:
        self.accepted: list[int] = []

    def fill_bitmask(self, bitmask, row):
        token = self.accepted[-1] + 1 if self.accepted else 0
        bitmask[row] = 0
        bitmask[row, token // 32] = 1 << (token % 32)

    def accept(self, token_id):
        if token_id != (self.accepted[-1] + 1 if self.accepted else 0):
            return False
        self.accepted.append(token_id)
        return True

    def rollback(self, num_tokens):
        del self.accepted[len(self.accepted) - num_tokens:]

    @property
    def is_terminated(self):
        return False


def test_a_proposal_gets_the_mask_after_each_proposed_token_and_the_matcher_is_rolled_back():
    matcher = CountingMatcher()
    matcher.accept(0)
    slot = DecodeSlot("d", 0, 3, (0,), PARAMS, proposal=(1, 2, 9, 4))  # 9: outside the grammar
    batch = constrain(ScheduledBatch(1, decodes=(slot,)), {"d": matcher}.get, Backend())
    (out,) = batch.decodes
    assert allowed_token(out.allowed_tokens) == 1
    # after 1, after 2; after the refused 9 (and everything later) the mask repeats: never used, since
    # the mask before 9 does not allow it, so verification stops there
    assert [allowed_token(m) for m in out.proposal_allowed_tokens] == [2, 3, 3, 3]
    assert matcher.accepted == [0]


class StopsAfterTwo(CountingMatcher):
    """Terminates on token 2 (its stop token), and, like xgrammar, has no mask once terminated."""

    @property
    def is_terminated(self):
        return bool(self.accepted) and self.accepted[-1] == 2

    def fill_bitmask(self, bitmask, row):
        assert not self.is_terminated, "no next mask after the stop token"
        super().fill_bitmask(bitmask, row)


def test_a_proposal_through_the_stop_token_asks_no_mask_after_it():
    matcher = StopsAfterTwo()
    matcher.accept(0)
    slot = DecodeSlot("d", 0, 3, (0,), PARAMS, proposal=(1, 2, 3))
    (out,) = constrain(ScheduledBatch(1, decodes=(slot,)), {"d": matcher}.get, Backend()).decodes
    assert [allowed_token(m) for m in out.proposal_allowed_tokens] == [2, 2, 2]
    assert matcher.accepted == [0] and not matcher.is_terminated
