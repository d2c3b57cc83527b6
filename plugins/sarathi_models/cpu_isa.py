"""Which build of the CPU kernels this machine can run: ISA levels, the CPU's features, the choice.

The kernels of `csrc/` are compiled per ISA level, never with `-march=native`: a build is named by
its level (and `cpu_ops` keys its folder by the level's flags and features), so a home directory
shared by machines with different CPUs never hands one of them a binary with instructions it lacks,
and every level can be built and tested on a machine that has it (an AVX-512 machine checks the
AVX2 and portable code too).

- "avx512": x86-64-v4 plus AVX-512 VNNI and BF16 (Zen 4, Sapphire Rapids): every kernel's widest path.
- "avx2": x86-64-v3 (AVX2, FMA, F16C: Haswell on, Zen 1-3, Intel client CPUs): the same kernels in
  256-bit code, computing the same bits as the avx512 ones (vdpbf16ps replayed as two fmas, the same
  reduction trees), so greedy text does not change with the CPU.
- "neon-dotprod": ARM64 with the dot-product instructions (ARMv8.2-A+dotprod: Graviton 2 on, Apple
  M1 on, Ampere Altra, Cortex-A76 on): NEON kernels, `sdot` in the quantized matmul.
- "neon": any ARM64 (ARMv8-A; NEON is in every core): the same, the quantized products in `smull` +
  pairwise adds. Both ARM64 levels compute the avx512 level's bits too (checked under qemu-user by
  `tests/models/test_kernel_cores_isas.py`; no ARM64 hardware has run them yet).
- "portable": x86-64-v2 on x86 (no flag elsewhere): the scalar code every kernel keeps, the same bits
  (but for fp32 attention, and prefill attention, which it leaves to SDPA). It is slower than torch's
  own ops, so the engine never picks it by itself; `SARATHI_CPU_ARCH=portable` builds it (the tests
  check its arithmetic).

`SARATHI_CPU_ARCH` chooses: unset or "auto" takes the best fast level this CPU has; a level's name
(or its -march name: x86-64-v4, x86-64-v3, x86-64-v2, armv8.2-a+dotprod, armv8-a) takes that level
if this CPU has its features. On a CPU with no fast level (x86 without AVX2, other architectures)
the engine runs the torch path.

Imports only the standard library.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

ARCH_ENV = "SARATHI_CPU_ARCH"

_X86_64_V2 = frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})
_X86_64_V3 = _X86_64_V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
_X86_64_V4 = _X86_64_V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


@dataclass(frozen=True, slots=True)
class IsaLevel:
    """One build of the kernels: its compiler flags and the CPU features its code needs."""

    name: str
    march: str
    """The -march name it is known by too (x86-64-v3 ...), or "" where it sets none."""
    flags: tuple[str, ...]
    requires: frozenset[str]
    """Feature flags as /proc/cpuinfo spells them; the build runs only on a CPU with all of them."""
    fast: bool
    """Whether the engine takes this build by itself: its kernels beat torch's ops."""


AVX512 = IsaLevel("avx512", "x86-64-v4", ("-march=x86-64-v4", "-mavx512vnni", "-mavx512bf16"),
                  _X86_64_V4 | {"avx512_vnni", "avx512_bf16"}, fast=True)
AVX2 = IsaLevel("avx2", "x86-64-v3", ("-march=x86-64-v3",), _X86_64_V3, fast=True)
PORTABLE_X86 = IsaLevel("portable", "x86-64-v2", ("-march=x86-64-v2",), _X86_64_V2, fast=False)
NEON_DOTPROD = IsaLevel("neon-dotprod", "armv8.2-a+dotprod", ("-march=armv8.2-a+dotprod",),
                        frozenset({"asimd", "asimddp"}), fast=True)
NEON = IsaLevel("neon", "armv8-a", ("-march=armv8-a",), frozenset({"asimd"}), fast=True)
PORTABLE = IsaLevel("portable", "", (), frozenset(), fast=False)


def levels(machine: str | None = None) -> tuple[IsaLevel, ...]:
    """The levels that exist for this machine architecture, best first."""
    machine = machine or platform.machine()
    if machine in ("x86_64", "AMD64"):
        return (AVX512, AVX2, PORTABLE_X86)
    if machine in ("aarch64", "arm64"):
        return (NEON_DOTPROD, NEON, PORTABLE)
    return (PORTABLE,)


def cpu_features() -> frozenset[str]:
    """This CPU's feature flags from /proc/cpuinfo ("flags" on x86, "Features" on ARM); empty where
    there is none (then only a level that needs nothing runs)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name, for benchmark records."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runnable_levels(features: frozenset[str] | None = None) -> tuple[IsaLevel, ...]:
    """The levels whose code this CPU can execute, best first."""
    have = cpu_features() if features is None else features
    return tuple(level for level in levels() if level.requires <= have)


def find_level(name: str) -> IsaLevel | None:
    """The level called `name` (or by its -march name) here, or None."""
    return next((level for level in levels() if name in (level.name, level.march) and name), None)


@dataclass(frozen=True, slots=True)
class Choice:
    """The level the kernels build for, or None with the reason the torch path runs instead."""

    level: IsaLevel | None
    reason: str


def choose_level(features: frozenset[str] | None = None, requested: str | None = None) -> Choice:
    """The build for this CPU and `requested` (default: `SARATHI_CPU_ARCH`); see the module docstring."""
    have = cpu_features() if features is None else features
    wanted = os.environ.get(ARCH_ENV, "auto") if requested is None else requested
    runnable = runnable_levels(have)
    if wanted in ("", "auto", "native"):
        best = next((level for level in runnable if level.fast), None)
        if best is None:
            return Choice(None, f"this CPU ({platform.machine()}) has no level with fast kernels "
                                "(AVX2 at least on x86, NEON on ARM64)")
        return Choice(best, f"the best level this CPU runs: {best.name}")
    level = find_level(wanted)
    if level is None:
        names = ", ".join(f"{lv.name} ({lv.march})" if lv.march else lv.name for lv in levels())
        return Choice(None, f"{ARCH_ENV}={wanted!r} is not a level here; levels: auto, {names}")
    if level not in runnable:
        missing = ", ".join(sorted(level.requires - have))
        return Choice(None, f"{ARCH_ENV}={wanted!r}: this CPU lacks {missing}")
    return Choice(level, f"{ARCH_ENV}={wanted}")
