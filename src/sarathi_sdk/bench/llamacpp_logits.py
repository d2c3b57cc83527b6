"""llama.cpp's logits at every position of a token sequence: the reference of `bench.accuracy`.

Run in a process of its own by any interpreter with `llama-cpp-python` (as `llamacpp`, which says
why), this file by its path: the sequence is evaluated in one batch with `logits_all=True` and the
logits are saved as float32 [N, V] in a .npy file, row i predicting token i + 1.

Imports only the standard library (and numpy and llama_cpp in the child).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def save_llamacpp_logits(model: str, tokens: list[int], out: str, python: str, threads: int) -> None:
    """Evaluate `tokens` on `model` under the interpreter `python`; the logits go to the file `out`."""
    job = {"model": model, "tokens": tokens, "threads": threads, "out": out}
    # -I: isolated, so this folder (whose module names could shadow llama_cpp's imports) is not on the path
    done = subprocess.run([python, "-I", __file__, json.dumps(job)], capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp under {python} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _evaluate(job: dict[str, Any]) -> None:
    import numpy as np
    from llama_cpp import Llama

    tokens = job["tokens"]
    llm: Any = Llama(model_path=job["model"], n_ctx=len(tokens) + 8, n_batch=512, n_threads=job["threads"],
                     logits_all=True, verbose=False)
    llm.eval(tokens)
    np.save(job["out"], np.asarray(llm.scores[: len(tokens)], dtype=np.float32))


if __name__ == "__main__":
    _evaluate(json.loads(sys.argv[1]))
