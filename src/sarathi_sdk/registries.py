"""The name registries every plugin contributes to, collected once per engine.

Factories that pick an entry by name (the batch policy by `config.scheduler`, the backend by the
checkpoint's architecture and `config.attention_backend`) receive this object instead of the plugin
manager, so no plugin needs the manager itself and the hook specifications need nothing of it.

Imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Factory = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Registries:
    """`name -> factory` of every registry hook, the user's plugins winning over the bundled ones."""

    schedulers: Mapping[str, Factory] = field(default_factory=dict)
    """From `sarathi_register_schedulers`: `factory(config, kv_cache_manager)` returns a BatchPolicy."""
    model_architectures: Mapping[str, Factory] = field(default_factory=dict)
    """From `sarathi_register_model_architectures`, keyed as config.json's "architectures"."""
    attention_backends: Mapping[str, Factory] = field(default_factory=dict)
    """From `sarathi_register_attention_backends`, selected by `config.attention_backend`."""
    proposers: Mapping[str, Factory] = field(default_factory=dict)
    """From `sarathi_register_proposers`: `factory(config, argument, make_backend)` returns a Proposer,
    selected by `config.speculative`."""
