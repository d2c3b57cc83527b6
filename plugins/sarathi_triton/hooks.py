"""The registry hook: "triton" -> a factory that checks Triton can run here before building."""

from __future__ import annotations

from typing import Any

from sarathi_sdk import ConfigError, EngineConfig, hookimpl

from .interpreter import interpreting


@hookimpl
def sarathi_register_attention_backends(register: Any) -> None:
    register("triton", _triton_attention)


def _triton_attention(config: EngineConfig) -> Any:
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"attention backend 'triton' needs the triton package: {exc}") from exc
    if not torch.cuda.is_available() and not interpreting():
        raise ConfigError(
            "attention backend 'triton' needs a CUDA GPU (or TRITON_INTERPRET=1 to run its kernels, slowly, "
            "in Triton's CPU interpreter); use attention_backend='auto'"
        )
    from .attention import TritonAttention

    return TritonAttention()
