"""Triton tests: without CUDA the kernels run in Triton's CPU interpreter, which the root conftest
switches on before anything imports triton."""

from __future__ import annotations

import pytest

pytest.importorskip("triton")
