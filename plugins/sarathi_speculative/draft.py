"""The "draft:PATH" proposer: a smaller model with the same tokenizer guesses the next tokens.

The draft runs on a `ModelBackend` the engine built for it the way it built its own (so a checkpoint
folder or a .gguf file, and the same kernels), with a KV cache of its own, sized for
`DRAFT_SEQUENCES` requests of the longest context. Each call, for every request asked:

1. the draft catches up: one prefill chunk of the request's tokens its cache does not hold yet (the
   whole prompt the first time; afterwards the tokens the target accepted since, from the first one
   that differs from what the draft fed itself), sampling the first proposed token;
2. k - 1 decode steps, each feeding the token just proposed, all requests in one batch per step.

Proposals are the draft's greedy tokens, a point mass: the target's verification is then exact for
sampled requests too (see `sarathi_sdk.speculative`). A request whose draft blocks do not fit gets no
proposal; a request that finished, or was preempted, loses its draft state at the next call.

Imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sarathi_sdk import (
    DecodeSlot,
    EngineConfig,
    ModelBackend,
    PrefillChunk,
    Request,
    RequestStatus,
    SamplingParams,
    ScheduledBatch,
)

DRAFT_SEQUENCES = 8
"""Requests whose context the draft's KV cache holds at once (speculation stops at a few running
decodes anyway, see `speculative_disable_by_batch_size`)."""
DEFAULT_CONTEXT = 4096
"""Context a draft block count is sized for when neither the config nor the model gives a limit."""
_GREEDY = SamplingParams(temperature=0, max_tokens=1)


@dataclass(eq=False, slots=True)
class _DraftState:
    """One request's part of the draft cache: its blocks, and the tokens fed at positions 0 .. ."""

    request: Request
    blocks: list[int] = field(default_factory=list)
    fed: list[int] = field(default_factory=list)
    num_known: int = 0
    """Leading tokens of `fed` that were the request's own at the last call: a request's tokens only
    grow, so they still are, and only the draft's guesses after them need checking."""


class DraftModelProposer:
    """A draft model's greedy tokens; see the module docstring."""

    runs_on_worker_thread = True

    def __init__(self, backend: ModelBackend, config: EngineConfig) -> None:
        self.backend = backend
        self.block_size = config.block_size
        spec = backend.kv_cache_spec(config)
        max_len = config.max_model_len or spec.max_model_len or DEFAULT_CONTEXT
        wanted = DRAFT_SEQUENCES * -(-max_len // self.block_size)
        num_blocks = min(spec.num_blocks, config.num_kv_blocks or wanted, wanted)
        backend.start(config, num_blocks)
        self._free = list(range(num_blocks - 1, -1, -1))
        self._states: dict[str, _DraftState] = {}
        self._step_id = 0

    def propose(self, requests: Sequence[Request], num_tokens: Sequence[int]) -> list[tuple[int, ...]]:
        self._forget_ended()
        proposals: dict[str, list[int]] = {request.request_id: [] for request in requests}
        chunks, wanted = [], {}
        for request, k in zip(requests, num_tokens):
            state = self._catch_up(request, k)
            if state is None:
                continue
            tokens = list(request.prompt_token_ids) + request.output_token_ids
            start = len(state.fed)
            chunks.append(PrefillChunk(request.request_id, tuple(tokens[start:]), start, tuple(state.blocks), True,
                                       _GREEDY))
            state.fed, state.num_known = tokens, len(tokens)
            wanted[request.request_id] = k
        if chunks:
            self._take(self._run(ScheduledBatch(self._next_step(), prefills=tuple(chunks))), proposals)
        for _ in range(1, max(wanted.values(), default=0)):
            slots = []
            for request_id, k in wanted.items():
                state, proposal = self._states[request_id], proposals[request_id]
                if len(proposal) < k:
                    slots.append(DecodeSlot(request_id, proposal[-1], len(state.fed), tuple(state.blocks), _GREEDY))
                    state.fed.append(proposal[-1])
            if not slots:
                break
            self._take(self._run(ScheduledBatch(self._next_step(), decodes=tuple(slots))), proposals)
        return [tuple(proposals[request.request_id]) for request in requests]

    def close(self) -> None:
        self._states.clear()
        self.backend.close()

    def _catch_up(self, request: Request, k: int) -> _DraftState | None:
        """The request's draft state with blocks for its tokens and k - 1 proposed ones, and `fed` cut
        back to the longest prefix the request's tokens still agree with (never its last token, which
        must run for its logits); None, its state dropped, when the blocks do not fit."""
        state = self._states.get(request.request_id)
        if state is None:
            state = self._states[request.request_id] = _DraftState(request)
        num_tokens = request.num_tokens
        limit = min(len(state.fed), num_tokens - 1)
        same = min(state.num_known, limit)
        while same < limit and state.fed[same] == request.token_at(same):
            same += 1
        del state.fed[same:]
        needed = -(-(num_tokens + k - 1) // self.block_size) - len(state.blocks)
        if needed > len(self._free):
            self._drop(request.request_id)
            return None
        state.blocks.extend(self._free.pop() for _ in range(max(0, needed)))
        return state

    def _run(self, batch: ScheduledBatch) -> dict[str, int]:
        return dict(self.backend.execute(batch).sampled)

    @staticmethod
    def _take(sampled: dict[str, int], proposals: dict[str, list[int]]) -> None:
        for request_id, token_id in sampled.items():
            proposals[request_id].append(token_id)

    def _next_step(self) -> int:
        self._step_id += 1
        return self._step_id

    def _forget_ended(self) -> None:
        """Free the draft blocks of requests that finished or were preempted since the last call."""
        for request_id, state in list(self._states.items()):
            if state.request.status is not RequestStatus.RUNNING:
                self._drop(request_id)

    def _drop(self, request_id: str) -> None:
        state = self._states.pop(request_id)
        self._free.extend(reversed(state.blocks))
