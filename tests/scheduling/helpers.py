"""Drive a policy by hand: execute a batch with a fixed token per sampling request."""

from __future__ import annotations

from sarathi_sdk import BatchPolicy, Request, ScheduledBatch, StepOutput


def fake_output(batch: ScheduledBatch, token_id: int = 5) -> StepOutput:
    sampled = {c.request_id: token_id for c in batch.prefills if c.is_last_chunk}
    sampled.update({d.request_id: token_id for d in batch.decodes})
    return StepOutput(step_id=batch.step_id, sampled=sampled)


def step(policy: BatchPolicy, token_id: int = 5) -> tuple[ScheduledBatch, list[Request]]:
    batch = policy.schedule()
    return batch, policy.update(batch, fake_output(batch, token_id))


def shape(batch: ScheduledBatch) -> tuple[int, list[tuple[str, int]]]:
    """(number of decodes, [(request id, chunk length), ...])."""
    return len(batch.decodes), [(c.request_id, len(c.token_ids)) for c in batch.prefills]
