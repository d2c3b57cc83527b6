"""Whether Triton runs its kernels in the CPU interpreter: `TRITON_INTERPRET=1`, which must be set
before triton is first imported."""

from __future__ import annotations

import os


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
