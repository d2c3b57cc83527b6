"""What `Engine.start()` builds, in order: plugins, tokenizer and model backend, KV cache, policy.

The backend speaks first about its device: its `KVCacheSpec` says how many blocks fit and may suggest
a token budget and whether prefix caching pays there; options the user gave always win over those
suggestions. Loading and profiling run on a worker thread, so the event loop stays responsive.

Imports anyio, the standard library, the contract modules and the plugin manager; never model code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Set
from typing import Any

import anyio

from .admission import Admission
from .allocator import release_free_memory
from .budget import profile_token_budget
from .config import AUTO, EngineConfig
from .errors import PluginError
from .interfaces import BatchPolicy, KVCacheManager, KVCacheSpec, ModelBackend, Tokenizer
from .plugins import PluginManager
from .proposals import Proposer, Speculation
from .registries import Registries
from .structured_outputs import StructuredOutputBackend


@dataclasses.dataclass(frozen=True, slots=True)
class Built:
    """The engine's parts, and its config as start() settled it."""

    config: EngineConfig
    tokenizer: Tokenizer | None
    budget_profile: list[tuple[int, float]] | None
    plugins: PluginManager
    backend: ModelBackend
    kv: KVCacheManager
    policy: BatchPolicy
    admission: Admission
    structured: StructuredOutputBackend | None
    """Compiles requests' `structured_outputs`; None when no plugin provides one."""
    speculation: Speculation | None
    """Proposes tokens for speculative decoding (`config.speculative`); None when off."""


async def build_parts(config: EngineConfig, given_options: Set[str], given_backend: ModelBackend | None) -> Built:
    """Build everything; on failure the backend, if built, is closed again."""
    plugins = PluginManager(config)
    hook = plugins.hook
    registries = plugins.registries()
    tokenizer = None
    if given_backend is None or config.model is not None:
        config = await anyio.to_thread.run_sync(_resolve_model, plugins, config)
        tokenizer = hook.sarathi_make_tokenizer(config=config)
        release_free_memory()  # the tokenizer's parsing temporaries, before the model lands on top
    backend = given_backend
    if backend is None:
        backend = await anyio.to_thread.run_sync(_make_backend, plugins, config, registries)
        release_free_memory()
    try:
        spec = backend.kv_cache_spec(config)
        config = _apply_default_budget(config, spec, given_options)
        if spec.default_prefix_caching is not None and "enable_prefix_caching" not in given_options:
            config = dataclasses.replace(config, enable_prefix_caching=spec.default_prefix_caching)
        num_blocks = config.num_kv_blocks or spec.num_blocks
        await anyio.to_thread.run_sync(backend.start, config, num_blocks)
        profile = None
        if config.token_budget == AUTO:
            budget, profile = await anyio.to_thread.run_sync(profile_token_budget, backend, config, spec, num_blocks)
            config = dataclasses.replace(config, token_budget=budget, tbt_slo=None)
        kv = _required(hook.sarathi_make_kv_cache_manager(config=config, num_blocks=num_blocks), "KV-cache manager")
        policy = _required(hook.sarathi_make_batch_policy(config=config, kv_cache_manager=kv,
                                                          registries=registries), "batch policy")
        structured = hook.sarathi_make_structured_output_backend(config=config, tokenizer=tokenizer)
        speculation = None
        if config.speculative is not None:
            proposer = await anyio.to_thread.run_sync(_make_proposer, plugins, config, registries)
            speculation = Speculation(proposer, config, spec.vocab_size, spec.max_decode_rows)
    except BaseException:
        backend.close()
        raise
    return Built(config, tokenizer, profile, plugins, backend, kv, policy,
                 Admission(config, spec, kv, tokenizer), structured, speculation)


def _resolve_model(plugins: PluginManager, config: EngineConfig) -> EngineConfig:
    """`config` with `model` turned into the checkpoint folder `sarathi_resolve_model` gives."""
    resolved = plugins.hook.sarathi_resolve_model(config=config)
    return config if resolved is None else dataclasses.replace(config, model=resolved)


def _make_backend(plugins: PluginManager, config: EngineConfig, registries: Registries) -> ModelBackend:
    """The model backend of `config.model` (resolved), with the sampler `sarathi_make_sampler` builds."""
    sampler = plugins.hook.sarathi_make_sampler(config=config)
    backend = plugins.hook.sarathi_make_backend(config=config, registries=registries, sampler=sampler)
    return _required(backend, "model backend")  # type: ignore[no-any-return]


def _make_proposer(plugins: PluginManager, config: EngineConfig, registries: Registries) -> Proposer:
    """The proposer `config.speculative` names; a draft model it needs is built as the engine built its
    own backend (so a .gguf file works too)."""

    def make_backend(model: str) -> ModelBackend:
        draft = _resolve_model(plugins, dataclasses.replace(config, model=model, speculative=None))
        return _make_backend(plugins, draft, registries)

    proposer = plugins.hook.sarathi_make_proposer(config=config, registries=registries, make_backend=make_backend)
    return _required(proposer, "speculative-decoding proposer")  # type: ignore[no-any-return]


def _apply_default_budget(config: EngineConfig, spec: KVCacheSpec, given_options: Set[str]) -> EngineConfig:
    """Take the backend's measured budget for its device when the user set none. The defaults derived
    from the budget (`max_num_seqs`, `low_chunk_size`) follow it unless given; a given `max_num_seqs` or
    `low_chunk_size` larger than the suggestion raises the budget to it."""
    suggested = spec.default_token_budget
    if suggested is None or "token_budget" in given_options or suggested == config.token_budget:
        return config
    derived = ("max_num_seqs", "low_chunk_size")
    given = [getattr(config, name) for name in derived if name in given_options]
    budget = max([suggested, *given])
    reset: dict[str, Any] = {name: None for name in derived if name not in given_options}
    return dataclasses.replace(config, token_budget=budget, **reset)


def _required(obj: Any, what: str) -> Any:
    if obj is None:
        raise PluginError(f"no plugin provides a {what}")
    return obj
