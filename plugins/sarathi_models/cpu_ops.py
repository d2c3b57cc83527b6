"""The fused CPU kernels of `csrc/` (`bindings.cpp` binds them), built once per ISA level, with a torch fallback.

`kernels()` builds the C++ files for the level `cpu_isa.choose_level` picks (the best one this CPU
runs, or `SARATHI_CPU_ARCH`'s) the first time it is called in a process (about 40 s on a 2-core
machine), then loads that build in well under a second in every later process, and returns the
module; None when the CPU has no fast level (x86 without AVX2; neither x86 nor ARM64), there is no C++ compiler,
the build fails, or `SARATHI_CPU_KERNELS=0` turns them off. Callers then run the eager torch
formulas, which compute the same values; the reason is logged once.

A build's name and folder carry a hash of everything it depends on: the sources and where they are,
torch's version, the compiler and its flags, and the CPU features the level needs. Two checkouts or
venvs on one machine therefore keep builds of their own and never rebuild each other's, and a build is
only ever loaded on a CPU that has its level's features.

Imports torch, the standard library and `cpu_isa`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import torch

from .cpu_isa import IsaLevel, choose_level, find_level, runnable_levels

logger = logging.getLogger(__name__)

CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / name for name in ("bindings.cpp", "cpu_ops.cpp", "quant_matmul.cpp", "decode_stack.cpp",
                                    "argmax.cpp", "prefill_attention.cpp", "dequantize.cpp",
                                    "quant_gemm.cpp", "token_bitmask.cpp")]
DISABLE_ENV = "SARATHI_CPU_KERNELS"
# Every level must compute the same bits (`cpu_isa`), so the sums are written in one order and the
# compiler may not reorder them: -ffast-math without associative math. -fno-finite-math-only keeps NaN
# tests (argmax) meaning something and RMSNorm's 1 / sqrt exact (finite-only math lets GCC use an rsqrt
# estimate, which differs between AVX-512 and AVX2). Hidden symbols keep builds of several levels in one
# process apart (see bindings.cpp).
COMMON_FLAGS = ("-O3", "-std=c++20", "-fopenmp", "-ffast-math", "-fno-associative-math", "-fno-finite-math-only",
                "-ffp-contract=off", "-fvisibility=hidden")


def build_name(level: IsaLevel) -> str:
    """The build's module name: the level and a hash of the sources (their folder too: torch's builder
    writes absolute source paths into its ninja file, so two checkouts of the same sources sharing one
    build would rebuild it at each turn), torch, compiler, flags and features."""
    digest = hashlib.sha256(str(CSRC).encode())
    for path in sorted(CSRC.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    compiler = os.environ.get("CXX", "c++")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    for part in (torch.__version__, compiler, version, *COMMON_FLAGS, *level.flags, *sorted(level.requires)):
        digest.update(part.encode() + b"\0")
    return f"sarathi_cpu_ops_{level.name}_{digest.hexdigest()[:16]}"


def build(level: IsaLevel) -> ModuleType:
    """Compile (or load the cached build of) the kernels for `level`; raises when the build fails."""
    from torch.utils.cpp_extension import get_default_build_root, load

    name = build_name(level)
    folder = Path(get_default_build_root()) / name
    folder.mkdir(parents=True, exist_ok=True)
    return load(name=name, sources=[str(path) for path in SOURCES], extra_cflags=[*COMMON_FLAGS, *level.flags],
                extra_ldflags=["-fopenmp"], build_directory=str(folder), verbose=False)


@functools.cache
def kernels_for(name: str) -> ModuleType | None:
    """The kernels built for the level called `name`, or None where this CPU cannot run that level
    or there is no compiler (tests build every level the machine runs with this)."""
    level = find_level(name)
    if level is None or level not in runnable_levels() or shutil.which(os.environ.get("CXX", "c++")) is None:
        return None
    return build(level)


@functools.cache
def kernels() -> ModuleType | None:
    """The compiled kernels the engine runs, or None (see the module docstring)."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        logger.info("fused CPU kernels turned off by %s=0", DISABLE_ENV)
        return None
    choice = choose_level()
    if choice.level is None:
        logger.warning("fused CPU kernels off: %s; the torch path runs", choice.reason)
        return None
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        logger.warning("no C++ compiler found: the torch backend runs its eager CPU ops (slower)")
        return None
    try:
        return build(choice.level)
    except Exception as exc:  # a failed build must never stop the engine: the eager ops are correct
        logger.warning("building the fused CPU kernels failed (%s); using the eager CPU ops", exc)
        return None


def kernel_variant() -> str:
    """The level the engine's kernels were built for ("avx512", "avx2", "portable"), or "torch"."""
    module = kernels()
    return "torch" if module is None else str(module.isa_level())


def cpu_kernels(x: torch.Tensor) -> ModuleType | None:
    """The kernels when `x` is a float32 or bfloat16 CPU tensor they can take, else None."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16):
        return None
    return kernels()
