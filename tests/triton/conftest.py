"""Triton tests: on a machine without CUDA the kernels run in Triton's CPU interpreter, which must be
switched on before triton is first imported (this conftest is imported at collection, before any
test runs; the bundled plugin imports triton only when its backend is built)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")
