"""Paged KV-cache bookkeeping: fixed-size blocks, one block table per request, and the prefix cache.

Blocks are handed out as a prefill advances, chunk by chunk, never for a whole prompt up front, so a
long prompt holds only the memory it has filled. Allocation is all-or-nothing: when the free blocks do
not cover a request's growth, nothing changes and the policy decides whom to preempt.

Free blocks with no cached content are a stack: the block freed last is handed out first. A backend
may allocate its cache lazily (the CPU one does, through calloc), so reusing warm blocks keeps
resident memory at the peak number of blocks in use instead of creeping over the whole cache as a
queue would.

**Prefix cache** (`enable_prefix_caching`). A full block is named by a chained hash (`block_hash`) of
its parent block's name, its token ids and an optional extra key: equal names mean equal tokens at
equal positions after an equal prefix, hence equal KV. Blocks are reference-counted, and requests
whose tokens begin alike share the blocks of their common whole-block prefix.

- *Registration*: a block is named in the cache once it is full **and its KV is written**, which the
  manager reads off its request's `num_computed_tokens`, lazily: before every lookup it names the
  newly computed full blocks of every request holding blocks, and a request's last ones as it frees
  them. The policy advances `num_computed_tokens` only in `update`, after the step that computed the
  tokens has returned, so a block part-way through a chunked prefill, or one whose last token is in a
  batch still executing, is never named and never shared. (Naming at lookups, not at `allocate`, keeps
  the per-step path free of hashing, and sees blocks that a policy computed without allocating since,
  as the vllm policy's back-to-back prefill steps do.)
- *Lookup*: `match_prefix` gives a request holding no blocks (new, or preempted and queued again) the
  longest run of cached blocks its tokens hash to, stopping before the block that holds its last
  token, which must be computed for its logits: at most `(num_tokens - 1) // block_size` blocks. The
  policy then sets `num_computed_tokens` to the tokens matched, and the first chunk starts after
  them. A preempted request finds its own blocks again, as long as nobody evicted them.
- *Why no copy-on-write*: sharing is block-aligned, and a shared block is full and below every
  holder's `num_computed_tokens`. A request writes only at positions from its `num_computed_tokens`
  on, which lie in blocks allocated fresh for it (reference count 1). So a shared block is never
  written; it is written again only after every holder has dropped it and it has been evicted.
- *Eviction*: a freed block with a name stays cached (reference count 0) and counts as free in
  `num_free_blocks`. A fresh block comes from the stack of unnamed blocks first, and only when that
  is empty by evicting the least recently freed cached block. A request's blocks are freed last block
  first, so the tail of a prefix is evicted before its head (a head alone still matches; a tail
  without its head never does). Kept blocks are the point of the cache, so with it on the memory a
  lazily allocating backend touches grows towards the whole cache.
- Two requests that compute the same block at once keep a copy each: the second to register finds
  the name taken, and its copy stays unnamed and is freed like any other.

The names are 128-bit BLAKE2b digests, not Python's `hash()`: token ids come from users, and a
collision would hand one request another's KV.

Pure Python; imports only the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import weakref
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b

from sarathi_sdk import Request

BlockHash = bytes
ExtraKey = Callable[[Request], tuple]
"""`request -> tuple` hashed into every block name of the request (say a tenant's salt, an adapter
id): requests share blocks only when their extra keys are equal too."""


def block_hash(parent: BlockHash | None, token_ids: Sequence[int], extra: tuple = ()) -> BlockHash:
    """The name of a full block: a digest of its parent's name (None for a request's first block), its
    token ids and `extra` (compared by its repr)."""
    digest = blake2b(parent or b"", digest_size=16)
    digest.update(len(token_ids).to_bytes(4, "little"))
    digest.update(array("q", token_ids).tobytes())
    if extra:
        digest.update(repr(extra).encode())
    return digest.digest()


@dataclass(eq=False, slots=True)
class _Chain:
    """What the manager remembers of one request: its block names, computed once, and how many of its
    leading blocks are already registered (or came from the cache) while it holds blocks."""

    extra: tuple
    hashes: list[BlockHash] = field(default_factory=list)
    num_registered: int = 0


class PagedBlockManager:
    """`num_blocks` blocks of `block_size` token slots; block ids index the backend's cache tensors."""

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = False,
                 extra_key: ExtraKey | None = None) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need at least one block of at least one token, got {num_blocks} x {block_size}")
        self._block_size = block_size
        self._num_blocks = num_blocks
        self._caching = enable_prefix_caching
        self._extra_key = extra_key
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))
        """Unnamed blocks nobody holds, a stack."""
        self._refs = [0] * num_blocks
        self._names: list[BlockHash | None] = [None] * num_blocks
        self._cached: dict[BlockHash, int] = {}
        """Name -> block, held or not."""
        self._evictable: OrderedDict[int, None] = OrderedDict()
        """Named blocks nobody holds, least recently freed first."""
        self._chains: weakref.WeakKeyDictionary[Request, _Chain] = weakref.WeakKeyDictionary()
        """Block names of every request seen, kept while the request lives (a preempted one comes back)."""
        self._holders: dict[Request, _Chain] = {}
        """Requests holding blocks, whose computed full blocks are named before each lookup."""

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    @property
    def prefix_caching(self) -> bool:
        return self._caching

    def num_free_blocks(self) -> int:
        """Blocks a request could get now: unnamed free ones plus cached ones nobody holds."""
        return len(self._free) + len(self._evictable)

    def num_cached_blocks(self) -> int:
        """Blocks with a name in the prefix cache, held or not."""
        return len(self._cached)

    def ref_count(self, block: int) -> int:
        """Block tables holding `block`."""
        return self._refs[block]

    def blocks_needed(self, request: Request, num_new_tokens: int) -> int:
        """Blocks the request must gain to hold `num_new_tokens` more tokens."""
        total = request.num_computed_tokens + num_new_tokens
        return max(0, -(-total // self._block_size) - len(request.block_table))

    def match_prefix(self, request: Request) -> int:
        """Give a request holding no blocks the cached blocks of its longest whole-block prefix, never
        the block of its last token; return the tokens they hold (0 with caching off or on a miss)."""
        if request.block_table:
            raise RuntimeError(f"request {request.request_id} holds blocks already; match only a waiting one")
        if not self._caching:
            return 0
        for holder, holder_chain in self._holders.items():
            self._register(holder, holder_chain)
        chain = self._chain(request)
        blocks: list[int] = []
        for index in range((request.num_tokens - 1) // self._block_size):
            block = self._cached.get(self._name(request, chain, index))
            if block is None:
                break
            blocks.append(block)
        for block in blocks:
            if self._refs[block] == 0:
                del self._evictable[block]
            self._refs[block] += 1
        request.block_table = tuple(blocks)
        chain.num_registered = len(blocks)
        if blocks:
            self._holders[request] = chain
        return len(blocks) * self._block_size

    def allocate(self, request: Request, num_new_tokens: int) -> bool:
        needed = self.blocks_needed(request, num_new_tokens)
        if needed == 0:
            return True
        if needed > self.num_free_blocks():
            return False
        if self._caching and request not in self._holders:
            self._holders[request] = self._chain(request)
        request.block_table += tuple(self._take() for _ in range(needed))
        return True

    def free(self, request: Request) -> None:
        chain = self._holders.pop(request, None)
        if chain is not None:
            self._register(request, chain)
            chain.num_registered = 0
        for block in reversed(request.block_table):
            self._refs[block] -= 1
            if self._refs[block] > 0:
                continue
            if self._names[block] is None:
                self._free.append(block)
            else:
                self._evictable[block] = None
        request.block_table = ()

    def trim(self, request: Request) -> None:
        """Give back the blocks past `num_computed_tokens`: allocated fresh for this request (a shared or
        named block is full of computed tokens, so never among them), they go back on the free stack."""
        keep = -(-request.num_computed_tokens // self._block_size)
        table = request.block_table
        for block in reversed(table[keep:]):
            self._refs[block] -= 1
            self._free.append(block)
        request.block_table = table[:keep]

    def _take(self) -> int:
        """A fresh block: an unnamed free one, else the least recently freed cached one, evicted."""
        if self._free:
            block = self._free.pop()
        else:
            block, _ = self._evictable.popitem(last=False)
            del self._cached[self._names[block]]
            self._names[block] = None
        self._refs[block] = 1
        return block

    def _register(self, request: Request, chain: _Chain) -> None:
        """Name the request's blocks that are full of computed tokens and not named yet."""
        table = request.block_table
        full = min(request.num_computed_tokens // self._block_size, len(table))
        for index in range(chain.num_registered, full):
            name = self._name(request, chain, index)
            if name not in self._cached:
                self._cached[name] = table[index]
                self._names[table[index]] = name
        chain.num_registered = max(chain.num_registered, full)

    def _chain(self, request: Request) -> _Chain:
        chain = self._chains.get(request)
        if chain is None:
            extra = self._extra_key(request) if self._extra_key is not None else ()
            chain = self._chains[request] = _Chain(extra)
        return chain

    def _name(self, request: Request, chain: _Chain, index: int) -> BlockHash:
        """The name of the request's block `index`, which must be full; computed once per request (its
        tokens only ever grow, so the names of its full blocks never change)."""
        hashes = chain.hashes
        size = self._block_size
        while len(hashes) <= index:
            start = len(hashes) * size
            hashes.append(block_hash(hashes[-1] if hashes else None, _tokens(request, start, start + size),
                                     chain.extra))
        return hashes[index]


def _tokens(request: Request, start: int, end: int) -> Sequence[int]:
    prompt = request.prompt_token_ids
    if end <= len(prompt):
        return prompt[start:end]
    return [request.token_at(position) for position in range(start, end)]
