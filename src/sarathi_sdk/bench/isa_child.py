"""One ISA level's worker process for `bench.cpu --isa`: an engine on this process's kernel build that
measures on request.

`isa_worker.LevelWorker` starts it with the kernel variables set for its level. It starts a decode
engine (the sarathi policy at budget 256, 16 sequences, as `bench.cpu`'s), answers with the kernel
build its backend runs, then serves one command a line from stdin, one result line on stdout:

- `decode`: batch-1 and batch-16 decode tokens/s (`decode_rate`);
- `greedy`: the greedy tokens of the agreement prompt set (`greedy`) on an engine with the default
  options but max_num_seqs=4 and token_budget=256 (as the quantized-model test's);
- end of input: closes the engine and exits.

Run by the parent: `python -m sarathi_sdk.bench.isa_child MODEL`. Imports the public API and the
benchmark's own modules.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import anyio.to_thread

from .. import Engine
from .decode_rate import decode_rate
from .greedy import greedy_tokens
from .isa_worker import RESULT_PREFIX
from .machine import kernel_variant_of
from .runner import BackendProbe


def _answer(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


async def serve(model: str) -> None:
    probe = BackendProbe()
    async with Engine(model, token_budget=256, max_num_seqs=16, num_kv_blocks=256, plugins=[probe]) as engine:
        _answer({"kernel_variant": kernel_variant_of(probe.backend)})
        while command := (await anyio.to_thread.run_sync(sys.stdin.readline)).strip():
            if command == "decode":
                _answer({"decode_b1": await decode_rate(engine, 1), "decode_b16": await decode_rate(engine, 16)})
            elif command == "greedy":
                _answer({"tokens": await greedy_tokens(model, max_num_seqs=4, token_budget=256)})
            else:
                _answer({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    anyio.run(serve, sys.argv[1], backend="asyncio")
