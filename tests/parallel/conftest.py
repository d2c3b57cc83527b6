"""A tiny 4-layer Llama saved once per session, and a plugin that hands tests the engine's backend.

Every pipeline here has 2 stages on 127.0.0.1 (gloo): one spawned process per engine. On a shared
2-core machine each test keeps to a few short requests; every wait has a timeout.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest
import torch

from sarathi_sdk import hookimpl
from tests.models.helpers import save_tiny

TIMEOUT = 120.0
"""Seconds any one engine run may take, start and close included."""


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A random Llama of 4 layers (2 per stage), GQA, untied head; saved as safetensors."""
    return str(save_tiny(tmp_path_factory.mktemp("parallel") / "llama", "LlamaForCausalLM", num_hidden_layers=4))


class BackendProbe:
    """`Engine(plugins=[probe])`: keeps the backend the factory hooks built (the pipeline's, here)."""

    def __init__(self) -> None:
        self.backend: Any = None

    @hookimpl(wrapper=True)
    def sarathi_make_backend(self) -> Generator[None, Any, Any]:
        self.backend = yield
        return self.backend


def stage_pids(backend: Any) -> list[int]:
    return [process.pid for process in backend.processes.processes]


def assert_gone(pids: list[int]) -> None:
    """Every pid is reaped: not running, not a zombie (a zombie still answers signal 0)."""
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The engine's process runs stage 0 on the threads it is given; keep the test process's setting."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
