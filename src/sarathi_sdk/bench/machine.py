"""The machine a benchmark ran on: what it is, and its measured copy (and read) bandwidth and matmul rate.

MBU and MFU are fractions of what this machine does in the same run, not of a datasheet: copy
bandwidth (bytes read plus written per second, a large tensor copy) and the bf16 (fp32 where bf16
matmul is unsupported) matmul rate of a square GEMM on the model's device.

`describe` is the `machine` object of every benchmark record: the CPU's model and SIMD flags (read
here from /proc/cpuinfo: the core imports no plugin, so not through the model plugin's `cpu_isa`),
the CPU kernel build the run used (the model backend's `kernel_variant`), the date and the command
line, so a record says which code ran where. Imports torch (lazily) and the standard library.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from importlib import metadata
from typing import Any


def _median_seconds(fn: Any, repeats: int, sync: Any) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_rates(device: str = "cpu") -> dict[str, float]:
    """{"copy_bandwidth": bytes/s, "matmul_rate": FLOP/s} on `device` ("cpu" or "cuda")."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)  # [n, n]
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)  # [n, n]
    gemm = _median_seconds(lambda: a @ b, 5, sync)
    return {"copy_bandwidth": copy_bandwidth(device), "matmul_rate": 2 * n**3 / gemm}


def copy_bandwidth(device: str = "cpu") -> float:
    """Bytes/s read plus written: the median of 5 copies of a 256 MiB (CPU) or 2 GiB (GPU) fp32 tensor,
    on the calling thread's torch threads."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    src = torch.ones((512 if device.startswith("cuda") else 64) << 20, device=device)  # [numel] fp32
    dst = torch.empty_like(src)
    return 2 * src.nbytes / _median_seconds(lambda: dst.copy_(src), 5, sync)


def read_bandwidth() -> float:
    """CPU bytes/s read: the median of 5 sums of a 256 MiB fp32 tensor, on the calling thread's torch
    threads. A decode step only reads its weights; on the 2-core VM a copy, with its writes counted,
    measured 1.5-2x what a read alone gets, so MBU against the copy has a ceiling well under 100%, and
    this second reference says how close a step is to what reading can do."""
    import torch

    src = torch.ones(64 << 20)  # [64 Mi] fp32 = 256 MiB
    return src.nbytes / _median_seconds(src.sum, 5, lambda: None)


SIMD_FLAG_PREFIXES = ("sse4", "avx", "amx", "fma", "f16c", "neon", "asimd", "sve")
"""The /proc/cpuinfo flags a record keeps: the vector extensions that decide which kernel build runs."""


def describe(device: str = "cpu", kernel_variant: str | dict[str, str] = "unknown") -> dict[str, Any]:
    """Processor, its SIMD flags, the kernel build, device, versions, date and command: what a reader
    needs to compare a result with theirs. `kernel_variant` is the backend's (`kernel_variant_of`), or
    for a run of several builds (`bench.cpu --isa`) each level's."""
    import torch

    cpuinfo = _cpuinfo()
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "cpu_model": _cpu_model(cpuinfo),
        "cpu_flags": cpu_flags(cpuinfo),
        "kernel_variant": kernel_variant,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sarathi_sdk": _version("sarathi-sdk"),
        "transformers": _version("transformers"),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def kernel_variant_of(backend: object) -> str:
    """The CPU kernel build a model backend runs ("avx512", "avx2", "portable", "torch"; the bundled
    backend's `kernel_variant`, the device type on a GPU), or "unknown" for a backend that does not say."""
    return str(getattr(backend, "kernel_variant", "unknown"))


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The SIMD flags (`SIMD_FLAG_PREFIXES`) of the first processor in `cpuinfo` (default: this
    machine's /proc/cpuinfo): its "flags" line on x86, "Features" on ARM. Sorted; empty without one."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return sorted(flag for flag in set(value.split()) if flag.startswith(SIMD_FLAG_PREFIXES))
    return []


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"
