"""Hook implementations of the torch model backend plugin.

Registering the plugin imports only this module: torch and the model code load inside the hooks and
factories, when an engine actually builds a backend. The factories are `trylast`, so a user plugin that
returns a backend or sampler wins; the registries let any plugin add architectures and attention
backends (see `protocols` for what their factories return).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sarathi_sdk import EngineConfig, Registries, hookimpl

from .registry import ARCHITECTURES, ATTENTION_BACKENDS

Register = Callable[[str, Callable[..., Any]], None]


@hookimpl(trylast=True)
def sarathi_make_backend(config: EngineConfig, registries: Registries, sampler: Any) -> Any:
    from .backend import TorchModelBackend

    return TorchModelBackend(
        config,
        architectures=registries.model_architectures,
        attention_backends=registries.attention_backends,
        sampler=sampler,
    )


@hookimpl(trylast=True)
def sarathi_make_pipeline_stage(
    config: EngineConfig, registries: Registries, stage_index: int, num_stages: int, sampler: Any
) -> Any:
    from .stage import TorchPipelineStage

    return TorchPipelineStage(
        config,
        stage_index=stage_index,
        num_stages=num_stages,
        architectures=registries.model_architectures,
        attention_backends=registries.attention_backends,
        sampler=sampler,
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
    for name, factory in ARCHITECTURES.items():
        register(name, factory)


@hookimpl
def sarathi_register_attention_backends(register: Register) -> None:
    for name, factory in ATTENTION_BACKENDS.items():
        register(name, factory)


@hookimpl(trylast=True)
def sarathi_make_sampler(config: EngineConfig) -> Any:
    from .sampler import Sampler

    return Sampler(seed=config.seed)
