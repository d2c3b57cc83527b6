"""How many prefill tokens one request may take in a step of the SARATHI policy.

Three limits, the smallest wins:

- the step's **token budget** left after what is already batched (decodes first, then chunks);
- `long_prefill_token_threshold`: a cap on one request's chunk, so a long prompt leaves room in the
  step for shorter ones (vLLM's option of the same name);
- the **dynamic chunk schedule** (`enable_dynamic_chunking_schedule`, after Sarathi-Serve). A chunk
  attends to everything cached before it, so its attention cost grows with the context while its
  linear-layer cost does not. The schedule keeps step times uniform by letting a step carry fewer
  tokens when its prefill attends to a long context: `chunk_schedule_stages` sizes evenly spaced from
  `token_budget` down to `low_chunk_size` (rounded to multiples of `min(32, low_chunk_size)` for
  matmul tiles, as Sarathi-Serve does), each used for `ceil(chunk_schedule_max_tokens / stages)`
  tokens of context. As in Sarathi-Serve, the size is a limit on the step, not the chunk: a chunk
  may bring the step's token count up to its stage's size. Sarathi-Serve picks the stage as
  `ceil(computed / tokens_per_stage)`, which leaves the largest size to the first chunk only; here
  it is `floor`, so every stage covers the same span of context. `low_chunk_size >= max_num_seqs`
  (checked by EngineConfig) guarantees a prefill a token even beside a full set of decodes.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from sarathi_sdk import EngineConfig, Request


def dynamic_chunk_sizes(high: int, low: int, stages: int) -> tuple[int, ...]:
    """`stages` step sizes from `high` down to `low`, largest first (numpy's `linspace` reversed)."""
    if stages == 1:
        return (low,)
    align = min(32, low)
    sizes = []
    for stage in range(stages - 1, -1, -1):
        size = int(low + (high - low) * stage / (stages - 1))
        sizes.append(min(high, max(low, round(size / align) * align)))
    return tuple(sizes)


class ChunkRule:
    """The size of a request's next prefill chunk, given the tokens already batched in the step."""

    def __init__(self, config: EngineConfig) -> None:
        self.token_budget = config.token_budget
        self.max_chunk = config.long_prefill_token_threshold or config.token_budget
        self.stage_sizes: tuple[int, ...] = ()
        self.tokens_per_stage = 1
        if config.enable_dynamic_chunking_schedule:
            self.stage_sizes = dynamic_chunk_sizes(config.token_budget, config.low_chunk_size,
                                                   config.chunk_schedule_stages)
            self.tokens_per_stage = -(-config.chunk_schedule_max_tokens // config.chunk_schedule_stages)

    def step_limit(self, request: Request) -> int:
        """Most tokens the step may hold once this request's chunk is in it."""
        if not self.stage_sizes:
            return self.token_budget
        stage = min(request.num_computed_tokens // self.tokens_per_stage, len(self.stage_sizes) - 1)
        return self.stage_sizes[stage]

    def chunk_size(self, request: Request, num_batched: int) -> int:
        """Tokens of the request's prefill to run in a step already holding `num_batched` tokens."""
        room = self.step_limit(request) - num_batched
        return max(0, min(request.num_uncomputed_tokens, self.max_chunk, room))
