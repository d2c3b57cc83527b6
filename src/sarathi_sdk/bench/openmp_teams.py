"""Batch-16 decode with and without another thread's OpenMP team alive in the process.

torch's CPU kernels run on OpenMP (libgomp), which keeps one team of threads per thread that starts
parallel work. libgomp counts the threads of every team: when they outnumber the CPUs, each team
stops spinning between parallel regions and sleeps instead, and waking it costs tens of microseconds
a region on a small VM. An app that runs one parallel torch op on its own thread (say, an embedding
model on the event loop's thread) makes every step of the engine pay that, once per region it opens.

The run alternates: the engine's batch-16 decode rate alone, then with a helper thread that ran one
parallel torch op and stays alive (its team with it), then alone again once the helper has ended.
It prints the medians and their ratio.

Run: `python -m sarathi_sdk.bench.openmp_teams [--model GGUF] [--repeats 3]`
"""

from __future__ import annotations

import argparse
import statistics
import threading
from typing import Any

import anyio

from .. import Engine
from .decode_rate import decode_rate
from .default_model import default_gguf


class OtherTeam:
    """A thread that runs one parallel torch op, then waits until `end()`: its OpenMP team stays alive
    as long as the thread does."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="other-openmp-team", daemon=True)

    def _run(self) -> None:
        import torch

        torch.ones(1 << 22).sum()  # [4 Mi] fp32: large enough for torch to run it in parallel
        self._ready.set()
        self._done.wait()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=60)

    def end(self) -> None:
        self._done.set()
        self._thread.join(timeout=60)


async def run(model: str | None, repeats: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"alone": [], "with_other_team": []}
    async with Engine(model or default_gguf(), max_num_seqs=16, num_kv_blocks=512, token_budget=256) as engine:
        await decode_rate(engine, 16)  # warm
        for _ in range(repeats):
            rates["alone"].append(await decode_rate(engine, 16))
            other = OtherTeam()
            other.start()
            try:
                rates["with_other_team"].append(await decode_rate(engine, 16))
            finally:
                other.end()
    alone, shared = statistics.median(rates["alone"]), statistics.median(rates["with_other_team"])
    return {"alone_tok_s": alone, "with_other_team_tok_s": shared, "ratio": shared / alone, "runs": rates}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sarathi_sdk.bench.openmp_teams", description="Batch-16 decode with and without another thread's OpenMP team alive.")
    parser.add_argument("--model", default=None, help="a GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    result = anyio.run(run, args.model, args.repeats)
    print(f"batch-16 decode tok/s alone:                      {result['alone_tok_s']:.1f}")
    print(f"batch-16 decode tok/s, another thread's team alive: {result['with_other_team_tok_s']:.1f}")
    print(f"ratio:                                            {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
