"""Drive a policy the way the engine does, with batches in flight, arrivals and aborts, and check the
invariants every policy owes the engine after every schedule() and update(): `max_num_seqs`, the
token budget (sarathi), KV blocks neither leaked nor double-freed, shared only by reference count
with the prefix cache on (and never written while shared), no request in two in-flight batches,
chunks and decodes of each request in order and contiguous (a first chunk may start after a cached
whole-block prefix), and liveness.

The executor is `sarathi_sdk.testing.FakeBackend`: it reads each request's context back through its
block table, so a wrong table, a block shared by two live requests or a chunk out of order raises or
changes the tokens. Its tokens depend only on the context, so every correct policy produces the same
tokens for the same workload.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from sarathi_paged_kv import PagedBlockManager
from sarathi_scheduling import POLICIES
from sarathi_sdk import EngineConfig, FinishReason, Request, RequestStatus, SamplingParams, ScheduledBatch
from sarathi_sdk.testing import FakeBackend

VOCAB_SIZE = 64
STOP_TOKEN = 0


@dataclass(frozen=True)
class Arrival:
    tick: int
    prompt_len: int
    max_tokens: int
    priority: int = 0
    stops: bool = False
    """Ends early when the fake model samples STOP_TOKEN."""
    shared_prefix: int = 0
    """The prompt's first tokens (up to this many) are the same for every request: a system prompt."""


@dataclass(frozen=True)
class Workload:
    arrivals: tuple[Arrival, ...]
    aborts: tuple[tuple[int, int], ...] = ()
    """(tick, index into arrivals): abort that request at that tick, wherever it is."""

    def step_bound(self, depth: int) -> int:
        """Ticks within which every request must finish, or the policy starves or livelocks.

        Why it is finite: nobody may preempt the first request in key order, and every policy runs it
        within a bounded number of steps: sarathi and orca every step, unless it waits for blocks
        held by requests behind it in flight; vllm once the prompts already queued have run; static
        once the current batch ends. So it finishes, and then the next in order does. Recompute
        after preemption redoes contexts; the bound allows every context to be computed once per
        request in the workload, at `depth` ticks a step. Thousands of random runs stayed under 1.3
        ticks per token of work, so the bound is generous; a livelock exceeds any bound, which is
        what this catches."""
        last_arrival = max(a.tick for a in self.arrivals)
        total = sum(a.prompt_len + a.max_tokens for a in self.arrivals)
        return last_arrival + depth * (total * len(self.arrivals) + 1)


@dataclass
class Result:
    tokens: dict[int, list[int]]
    """Arrival index -> generated tokens, for requests not aborted."""
    finish_reasons: dict[int, FinishReason]
    ticks: int
    batches: list[ScheduledBatch] = field(default_factory=list)


class Simulation:
    def __init__(self, scheduler: str, config: EngineConfig, workload: Workload, depth: int = 1,
                 policy_factory=None) -> None:
        self.config = config
        self.workload = workload
        self.depth = depth
        self.kv = PagedBlockManager(num_blocks=config.num_kv_blocks, block_size=config.block_size,
                                    enable_prefix_caching=config.enable_prefix_caching)
        self.policy = (policy_factory or POLICIES[scheduler])(config, self.kv)
        self.backend = FakeBackend(vocab_size=VOCAB_SIZE, num_blocks=config.num_kv_blocks)
        self.backend.start(config, config.num_kv_blocks)
        self.requests: dict[str, Request] = {}
        self.in_flight: deque = deque()
        self._next_pos: dict[str, int] = {}
        self._seen_preemptions: dict[str, int] = {}
        self.batches: list[ScheduledBatch] = []
        self.cached_starts: list[tuple[str, int, int]] = []
        """(request id, its preemptions so far, start) of every first chunk that started after a
        cached prefix."""
        self.checks: list = []
        """Extra per-batch checks `check(sim, batch, before)`; `before` is the running decodes that
        were ready just before schedule()."""

    def run(self) -> Result:
        bound = self.workload.step_bound(self.depth)
        arrivals = sorted(enumerate(self.workload.arrivals), key=lambda pair: pair[1].tick)
        tick = 0
        while arrivals or self.policy.has_work() or self.in_flight:
            if tick > bound:
                raise AssertionError(f"requests still unfinished after {bound} ticks: {self.policy.stats()}")
            while arrivals and arrivals[0][1].tick <= tick:
                self._add(*arrivals.pop(0))
            for abort_tick, index in self.workload.aborts:
                if abort_tick == tick and str(index) in self.requests:
                    self.policy.abort(str(index))
            self._fill_pipeline()
            if self.in_flight:
                batch, output = self.in_flight.popleft()
                self.policy.update(batch, output)
                self.check_kv()
            elif self.policy.has_work() and not arrivals:
                raise AssertionError("the policy holds requests but scheduled none with nothing in flight")
            tick += 1
        return self._result(tick)

    def _add(self, index: int, arrival: Arrival) -> None:
        shared = min(arrival.shared_prefix, arrival.prompt_len)
        prompt = [(i * 13) % (VOCAB_SIZE - 1) + 1 for i in range(shared)]
        prompt += [(index * 31 + i) % (VOCAB_SIZE - 1) + 1 for i in range(shared, arrival.prompt_len)]
        request = Request(
            request_id=str(index),
            prompt_token_ids=tuple(prompt),
            sampling_params=SamplingParams(max_tokens=arrival.max_tokens,
                                           stop_token_ids=[STOP_TOKEN] if arrival.stops else []),
            arrival_time=float(arrival.tick),
            arrival_index=index,
            priority=arrival.priority,
        )
        self.requests[request.request_id] = request
        self.policy.add(request)

    def _fill_pipeline(self) -> None:
        while len(self.in_flight) < self.depth:
            before = [r for r in self.policy.running if r.is_decode and not r.in_flight]
            batch = self.policy.schedule()
            self.check_kv()
            if batch.is_empty:
                return
            self.check_batch(batch)
            for check in self.checks:
                check(self, batch, before)
            self.batches.append(batch)
            self.in_flight.append((batch, self.backend.execute(batch)))

    def check_batch(self, batch: ScheduledBatch) -> None:
        ids = batch.request_ids
        assert len(set(ids)) == len(ids), f"a request twice in one batch: {ids}"
        flying = {rid for b, _ in self.in_flight for rid in b.request_ids}
        assert not flying & set(ids), f"requests in two in-flight batches: {flying & set(ids)}"
        assert len(self.policy.running) <= self.config.max_num_seqs
        if self.policy_is("sarathi"):
            assert batch.num_tokens <= self.config.token_budget, batch.num_tokens
        block_size = self.config.block_size
        for chunk in batch.prefills:
            request = self.requests[chunk.request_id]
            start = self._expected_start(request)
            if start == 0 and chunk.start_pos and self.kv.prefix_caching:  # after its cached prefix
                assert chunk.start_pos % block_size == 0, chunk.start_pos
                assert chunk.start_pos <= (request.num_tokens - 1) // block_size * block_size
                self.cached_starts.append((request.request_id, request.num_preemptions, chunk.start_pos))
                start = chunk.start_pos
            end = start + len(chunk.token_ids)
            self._check_exclusive(chunk.block_table, start, end)
            assert chunk.start_pos == start, f"{request.request_id}: chunk at {chunk.start_pos}, expected {start}"
            assert chunk.token_ids == tuple(request.token_at(p) for p in range(start, end))
            assert chunk.is_last_chunk == (end == request.num_tokens)
            assert len(chunk.block_table) * block_size >= end
            self._next_pos[request.request_id] = end
        for slot in batch.decodes:
            request = self.requests[slot.request_id]
            assert slot.position == self._expected_start(request) == request.num_tokens - 1
            assert slot.token_id == request.output_token_ids[-1]
            assert len(slot.block_table) * block_size > slot.position
            self._check_exclusive(slot.block_table, slot.position, slot.position + 1)
            self._next_pos[request.request_id] = slot.position + 1

    def _expected_start(self, request: Request) -> int:
        rid = request.request_id
        if request.num_preemptions != self._seen_preemptions.get(rid, 0):
            self._seen_preemptions[rid] = request.num_preemptions
            self._next_pos[rid] = 0
        return self._next_pos.get(rid, 0)

    def _check_exclusive(self, block_table: tuple[int, ...], start: int, end: int) -> None:
        """The blocks a step writes (positions start..end-1) are held by the writing request alone."""
        size = self.config.block_size
        for block in block_table[start // size:(end - 1) // size + 1]:
            assert self.kv.ref_count(block) == 1, f"a write into block {block}, shared"

    def check_kv(self) -> None:
        """Blocks held by requests plus free (or cached, unheld) blocks are exactly the cache: none
        leaked or double-freed; a block is in two tables only with the prefix cache, reference-counted."""
        held = Counter(b for r in self.requests.values() for b in r.block_table)
        if not self.kv.prefix_caching:
            assert all(n == 1 for n in held.values()), "a block is in two block tables"
        for block in range(self.kv.num_blocks):
            assert self.kv.ref_count(block) == held[block], f"block {block}: wrong reference count"
        assert len(held) + self.kv.num_free_blocks() == self.kv.num_blocks, "blocks leaked or double-freed"
        for request in self.requests.values():
            if request.status is not RequestStatus.RUNNING and not request.in_flight:
                assert not request.block_table, f"{request.request_id} holds blocks while {request.status}"

    def policy_is(self, name: str) -> bool:
        return isinstance(self.policy, POLICIES[name])

    def _result(self, ticks: int) -> Result:
        assert self.kv.num_free_blocks() == self.kv.num_blocks
        tokens, reasons = {}, {}
        for rid, request in self.requests.items():
            assert request.is_finished, f"{rid} never finished"
            assert not request.in_flight
            if request.finish_reason is not FinishReason.ABORT:
                assert len(request.output_token_ids) <= request.sampling_params.max_tokens
                tokens[int(rid)] = request.output_token_ids
                reasons[int(rid)] = request.finish_reason
        return Result(tokens, reasons, ticks, self.batches)
