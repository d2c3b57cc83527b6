"""Paged KV-cache bookkeeping: a free list of fixed-size blocks and one block table per request.

Blocks are handed out as a prefill advances, chunk by chunk, never for a whole prompt up front, so a
long prompt holds only the memory it has filled. Allocation is all-or-nothing: when the free blocks do
not cover a request's growth, nothing changes and the policy decides whom to preempt.

The free list is a stack: the block freed last is handed out first. A backend may allocate its cache
lazily (the CPU one does, through calloc), so reusing warm blocks keeps resident memory at the peak
number of blocks in use instead of creeping over the whole cache as a queue would.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from sarathi_sdk import Request


class PagedBlockManager:
    """`num_blocks` blocks of `block_size` token slots; block ids index the backend's cache tensors."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need at least one block of at least one token, got {num_blocks} x {block_size}")
        self._block_size = block_size
        self._num_blocks = num_blocks
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    def num_free_blocks(self) -> int:
        return len(self._free)

    def blocks_needed(self, request: Request, num_new_tokens: int) -> int:
        """Blocks the request must gain to hold `num_new_tokens` more tokens."""
        total = request.num_computed_tokens + num_new_tokens
        return max(0, -(-total // self._block_size) - len(request.block_table))

    def allocate(self, request: Request, num_new_tokens: int) -> bool:
        needed = self.blocks_needed(request, num_new_tokens)
        if needed == 0:
            return True
        if needed > len(self._free):
            return False
        request.block_table += tuple(self._free.pop() for _ in range(needed))
        return True

    def free(self, request: Request) -> None:
        self._free.extend(reversed(request.block_table))
        request.block_table = ()
