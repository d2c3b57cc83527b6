"""Hook implementations of the torch model backend plugin.

Registering the plugin imports only this module: torch and the model code load inside the hooks and
factories, when an engine actually builds a backend. The factories are `trylast`, so a user plugin that
returns a backend or sampler wins; the registries let any plugin add architectures and attention
backends (see `protocols` for what their factories return).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sarathi_sdk import ConfigError, EngineConfig, PluginManager, hookimpl

Register = Callable[[str, Callable[..., Any]], None]

_FAMILIES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2"}


@hookimpl(trylast=True)
def sarathi_make_backend(config: EngineConfig, plugin_manager: PluginManager) -> Any:
    from .backend import TorchModelBackend

    return TorchModelBackend(
        config,
        architectures=plugin_manager.registry("sarathi_register_model_architectures"),
        attention_backends=plugin_manager.registry("sarathi_register_attention_backends"),
        sampler=plugin_manager.hook.sarathi_make_sampler(config=config),
    )


@hookimpl(trylast=True)
def sarathi_convert_model(source: str, out_dir: str) -> str | None:
    """`sarathi convert`: a .gguf file into a Hugging Face folder; other files are not ours."""
    if not str(source).endswith(".gguf"):
        return None
    from .gguf import convert_gguf

    return str(convert_gguf(source, out_dir))


@hookimpl
def sarathi_register_model_architectures(register: Register) -> None:
    for architecture, family in _FAMILIES.items():
        register(architecture, _llama_family(family))


@hookimpl
def sarathi_register_attention_backends(register: Register) -> None:
    register("torch", _torch_attention)
    register("cpu", _cpu_attention)


@hookimpl(trylast=True)
def sarathi_make_sampler(config: EngineConfig) -> Any:
    from .sampler import Sampler

    return Sampler(seed=config.seed)


def bundled_registry(kind: str) -> dict[str, Callable[..., Any]]:
    """This plugin's own "architectures" or "attention_backends", for a backend built without an engine."""
    entries: dict[str, Callable[..., Any]] = {}
    hook = sarathi_register_model_architectures if kind == "architectures" else sarathi_register_attention_backends
    hook(entries.__setitem__)
    return entries


def _llama_family(family: str) -> Callable[[dict[str, Any]], Any]:
    def build(hf_config: dict[str, Any]) -> Any:
        from .llama import LlamaForCausalLM
        from .model_config import ModelConfig

        return LlamaForCausalLM(ModelConfig.from_hf(hf_config, family))

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
