"""The fused CPU kernels of `csrc/` (`bindings.cpp` binds them), compiled once per machine, with a torch fallback.

`kernels()` compiles the C++ file with torch's extension builder the first time it is called in a
process (about 40 s on a 2-core machine, then cached under torch's extensions folder, so later
processes load it in well under a second) and returns the module, or None when there is no C++
compiler, the build fails, or `SARATHI_CPU_KERNELS=0` turns them off. Callers fall back to the eager
torch formulas then, which compute the same values; the reason is logged once.

Imports torch and the standard library.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from pathlib import Path
from types import ModuleType

import torch

logger = logging.getLogger(__name__)

SOURCES = [Path(__file__).parent / "csrc" / name for name in ("bindings.cpp", "cpu_ops.cpp", "quant_matmul.cpp", "decode_stack.cpp", "argmax.cpp",
                                                             "prefill_attention.cpp")]
DISABLE_ENV = "SARATHI_CPU_KERNELS"


@functools.cache
def kernels() -> ModuleType | None:
    """The compiled kernels, or None (see the module docstring)."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        logger.info("fused CPU kernels turned off by %s=0", DISABLE_ENV)
        return None
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        logger.warning("no C++ compiler found: the torch backend runs its eager CPU ops (slower)")
        return None
    try:
        from torch.utils.cpp_extension import load

        return load(
            name="sarathi_cpu_ops",
            sources=[str(path) for path in SOURCES],
            extra_cflags=["-O3", "-march=native", "-fopenmp", "-ffast-math"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as exc:  # a failed build must never stop the engine: the eager ops are correct
        logger.warning("building the fused CPU kernels failed (%s); using the eager CPU ops", exc)
        return None


def cpu_kernels(x: torch.Tensor) -> ModuleType | None:
    """The kernels when `x` is a float32 or bfloat16 CPU tensor they can take, else None."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16):
        return None
    return kernels()
