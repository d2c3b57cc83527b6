"""llama.cpp's batch-1 decode and prefill rates on a GGUF file: the reference of `bench.cpu`.

Measured in a process of its own: llama.cpp's worker threads and torch's OpenMP team slow each other
when they share a process (2-core Zen 4, 2026-11-30: our batch-1 decode fell from 105 to 48 tok/s after
llama.cpp had run in the same process, and llama.cpp on two threads from 71 to 58). The child process
gets its prompts as JSON on the command line and prints its rates as one JSON line.

The child runs this file by its path, so any interpreter with `llama-cpp-python` serves, sarathi_sdk
installed or not: `bench.cpu --isa` pairs each ISA level with a llama.cpp built for it, each in a
venv of its own (`--llamacpp-python avx2=/venvs/llama-avx2/bin/python`). Without an interpreter named,
the current one runs it if it has `llama-cpp-python` (the optional extra `llamacpp`).

Imports only the standard library (and llama_cpp in the child).
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import time
from typing import Any


def llamacpp_rates(model_path: str, threads: int, repeats: int, prompt: list[int], long_prompt: list[int],
                   decode_tokens: int, python: str | None = None) -> dict[str, float] | None:
    """Decode tokens/s after `prompt`, and `long_prompt` prefill tokens/s unless it is empty, medians of
    `repeats`, measured by the interpreter `python`; None when `python` is not given and the current
    interpreter has no llama-cpp-python."""
    if python is None:
        if importlib.util.find_spec("llama_cpp") is None:
            return None
        python = sys.executable
    job = {"model": model_path, "threads": threads, "repeats": repeats, "prompt": prompt,
           "long_prompt": long_prompt, "decode_tokens": decode_tokens}
    # -I: isolated, so this folder (whose module names could shadow llama_cpp's imports) is not on the path
    done = subprocess.run([python, "-I", __file__, json.dumps(job)], capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp under {python} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates


def _measure(job: dict[str, Any]) -> dict[str, float]:
    from llama_cpp import Llama

    llm: Any = Llama(model_path=job["model"], n_ctx=2048, n_batch=1024, n_threads=job["threads"], verbose=False)
    decode, prefill = [], []
    for _ in range(job["repeats"]):
        llm.reset()
        llm.eval(job["prompt"])
        steps = []
        for i in range(job["decode_tokens"]):
            start = time.perf_counter()
            llm.eval([1 + i])
            steps.append(time.perf_counter() - start)
        decode.append(1 / statistics.median(steps))
        if job["long_prompt"]:
            llm.reset()
            start = time.perf_counter()
            llm.eval(job["long_prompt"])
            prefill.append(len(job["long_prompt"]) / (time.perf_counter() - start))
    rates = {"decode_tok_s": statistics.median(decode)}
    if prefill:
        rates["prefill_tok_s"] = statistics.median(prefill)
    return rates


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.argv[1]))))
