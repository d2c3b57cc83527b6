"""Bundled plugin: the torch model backend for Llama-family checkpoints (safetensors and GGUF).

Registered by module path; pluggy finds the hook implementations re-exported here. Heavy imports
(torch, gguf) happen inside the hooks, so registering this plugin costs nothing.
"""

from .hooks import (
    sarathi_convert_model,
    sarathi_make_backend,
    sarathi_make_pipeline_stage,
    sarathi_make_sampler,
    sarathi_register_attention_backends,
    sarathi_register_model_architectures,
)
from .resolve import sarathi_resolve_model

__all__ = [
    "sarathi_convert_model",
    "sarathi_make_backend",
    "sarathi_make_pipeline_stage",
    "sarathi_make_sampler",
    "sarathi_register_attention_backends",
    "sarathi_register_model_architectures",
    "sarathi_resolve_model",
]
