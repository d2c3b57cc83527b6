"""Where the model runs and in which dtype: `device="auto"` and `dtype="auto"` made concrete.

- device "auto": CUDA when torch sees a GPU, else the CPU.
- dtype "auto": bfloat16 on CUDA (float16 on GPUs without bf16); on the CPU bfloat16 as well, chosen by measurement through this
  backend (SmolLM2-135M shape, random weights, Zen 4 with avx512_bf16, one thread, 2026-11-23):
  512-token prefill 1.0 s bf16 vs 1.9 s fp32; 16 decodes at context 512 0.19 s vs 0.30-0.50 s; one
  decode 54 ms vs 65-76 ms. (The "torch" attention keeps bf16 decodes off SDPA, which is slow there.)
- float16 on the CPU is refused: its matmul runs at 0.4 GFLOP/s there, 250x slower than bf16.
"""

from __future__ import annotations

import torch

from sarathi_sdk import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """`config.device` as a torch device; a GPU asked for and absent is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device type {device.type!r} is not supported; use 'cpu' or 'cuda'")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`config.dtype` on `device`; see the module docstring for "auto"."""
    if name == "auto":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if name not in _DTYPES:
        raise ConfigError(f"dtype must be one of 'auto', {', '.join(map(repr, _DTYPES))}, got {name!r}")
    if name == "float16" and device.type == "cpu":
        raise ConfigError(
            "dtype 'float16' is not supported on the CPU: its matmul runs about 250x slower there than "
            "bfloat16; use 'bfloat16' or 'float32'"
        )
    return _DTYPES[name]
