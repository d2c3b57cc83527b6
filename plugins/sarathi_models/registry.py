"""This plugin's own registries: model architectures and attention backends, name -> factory.

The registry hooks (`hooks.py`) hand these to the engine's plugin manager, where other plugins may add
or override entries; a backend built without an engine (tests, benchmarks) takes them as they are.
Factories import their heavy modules when called, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sarathi_sdk import ConfigError, EngineConfig

_FAMILIES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
             "Qwen3ForCausalLM": "qwen3", "Phi3ForCausalLM": "phi3", "Gemma2ForCausalLM": "gemma2",
             "Gemma3ForCausalLM": "gemma3"}


def _llama_family(family: str) -> Callable[[dict[str, Any]], Any]:
    def build(hf_config: dict[str, Any]) -> Any:
        from .gemma import GemmaForCausalLM
        from .llama import LlamaForCausalLM
        from .model_config import GEMMA_FAMILIES, ModelConfig

        config = ModelConfig.from_hf(hf_config, family)
        return GemmaForCausalLM(config) if family in GEMMA_FAMILIES else LlamaForCausalLM(config)

    return build


def _torch_attention(config: EngineConfig) -> Any:
    from .torch_attention import TorchAttention

    return TorchAttention()


def _cpu_attention(config: EngineConfig) -> Any:
    from .cpu_attention import CpuAttention
    from .cpu_ops import kernels

    compiled = kernels()
    if compiled is None:
        raise ConfigError(
            "attention backend 'cpu' needs the fused CPU kernels, which did not build (a C++ compiler "
            "and ninja are needed; see the log); use attention_backend='torch'"
        )
    return CpuAttention(compiled)


ARCHITECTURES: dict[str, Callable[..., Any]] = {name: _llama_family(family) for name, family in _FAMILIES.items()}
ATTENTION_BACKENDS: dict[str, Callable[..., Any]] = {"torch": _torch_attention, "cpu": _cpu_attention}
