"""The batch policy is the one owner of a request's finish and its reason: a stop string found in the
text ends the request through the policy with "stop", written once; the engine never writes a reason."""

from __future__ import annotations

import anyio

from sarathi_paged_kv import PagedBlockManager
from sarathi_scheduling import SarathiPolicy
from sarathi_sdk import EngineConfig, FinishReason, Request, SamplingParams, StepOutput
from sarathi_sdk.live_requests import LiveRequests


class Letters:
    """Token id n detokenizes to the n-th lowercase letter."""

    def add(self, token_ids):
        return "".join(chr(ord("a") + t) for t in token_ids)


class RecordingRequest(Request):
    """Counts the writes of its finish reason."""

    finishes: list[FinishReason]

    def finish(self, reason: FinishReason) -> None:
        self.__dict__.setdefault("finishes", []).append(reason)
        super().finish(reason)


def _serve_one_step(stop: tuple[str, ...], sampled: int):
    config = EngineConfig(block_size=4)
    kv = PagedBlockManager(num_blocks=8, block_size=4)
    policy = SarathiPolicy(config, kv)
    finished_events = []
    live = LiveRequests(policy, lambda hook, **kw: finished_events.append(kw["output"]))
    request = RecordingRequest("r", (1, 2, 3), SamplingParams(max_tokens=8, stop=list(stop)), 0.0, 0)
    entry = live.add(request, Letters())
    policy.add(request)
    batch = policy.schedule()
    output = StepOutput(step_id=batch.step_id, sampled={"r": sampled})
    live.emit(output, policy.update(batch, output), 1.0)
    return request, entry, policy, kv, finished_events


def test_a_stop_string_ends_the_request_with_stop_written_once():
    async def main():
        request, entry, policy, kv, finished = _serve_one_step(stop=("c",), sampled=2)  # token 2 is "c"
        final = await entry.stream.get()
        assert final.finished and final.finish_reason == "stop" and final.text == ""
        assert request.finish_reason is FinishReason.STOP and request.finishes == [FinishReason.STOP]
        assert not policy.has_work() and kv.num_free_blocks() == kv.num_blocks
        assert [o.finish_reason for o in finished] == ["stop"]

    anyio.run(main)


def test_without_a_stop_string_the_request_goes_on():
    async def main():
        request, entry, policy, _, finished = _serve_one_step(stop=("z",), sampled=2)
        delta = await entry.stream.get()
        assert not delta.finished and request.finish_reason is None and policy.has_work() and finished == []

    anyio.run(main)
