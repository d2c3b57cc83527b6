"""The machine a benchmark ran on: what it is, and its measured copy bandwidth and matmul rate.

MBU and MFU are fractions of what this machine does in the same run, not of a datasheet: copy
bandwidth (bytes read plus written per second, a large tensor copy) and the bf16 (fp32 where bf16
matmul is unsupported) matmul rate of a square GEMM on the model's device.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
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
    numel = (512 if device.startswith("cuda") else 64) << 20
    src = torch.ones(numel, device=device)  # [numel] fp32
    dst = torch.empty_like(src)
    copy = _median_seconds(lambda: dst.copy_(src), 5, sync)
    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)  # [n, n]
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)  # [n, n]
    gemm = _median_seconds(lambda: a @ b, 5, sync)
    return {"copy_bandwidth": 2 * src.nbytes / copy, "matmul_rate": 2 * n**3 / gemm}


def describe(device: str = "cpu") -> dict[str, Any]:
    """Processor, device, versions, date: what a reader needs to compare a result with theirs."""
    import torch

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": _cpu_model(),
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


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
