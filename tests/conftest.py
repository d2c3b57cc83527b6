"""Shared test helpers: requests built the way the engine builds them.

Without CUDA, Triton's kernels run in its CPU interpreter, which must be switched on before anything
imports triton (transformers and torch may, while tests are collected), hence here, the first
conftest pytest imports.
"""

from __future__ import annotations

import itertools
import os

if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

import pytest

from sarathi_sdk import Request, SamplingParams

_arrivals = itertools.count()


def make_request(
    request_id: str, prompt_len: int, max_tokens: int = 16, priority: int = 0, **params: object
) -> Request:
    """A request whose prompt is `prompt_len` distinct token ids, arriving after every earlier one."""
    index = next(_arrivals)
    return Request(
        request_id=request_id,
        prompt_token_ids=tuple((index * 7919 + i) % 1000 + 1 for i in range(prompt_len)),
        sampling_params=SamplingParams(max_tokens=max_tokens, **params),
        arrival_time=float(index),
        arrival_index=index,
        priority=priority,
    )


@pytest.fixture
def request_factory():
    return make_request


def default_sigint() -> None:
    """`preexec_fn` of a subprocess that a test interrupts: Ctrl-C acts as in a terminal even when the
    test run itself ignores SIGINT (a job started in the background with `&` does, and its children
    inherit that, so Python would never raise KeyboardInterrupt in them)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)

