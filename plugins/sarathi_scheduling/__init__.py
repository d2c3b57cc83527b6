"""Bundled plugin: batch policies, selected by name with `Engine(scheduler=...)`.

`sarathi` (the default) is decode-maximal chunked-prefill batching; `vllm`, `orca` and `static` are
the baselines the SARATHI papers compare against, each in its own module with its exact rules. Every
policy is registered through `sarathi_register_schedulers`, the registry third-party plugins add to;
the default `sarathi_make_batch_policy` builds the one `config.scheduler` names.
"""

from __future__ import annotations

from sarathi_sdk import ConfigError, EngineConfig, KVCacheManager, Registries, hookimpl

from .orca import OrcaPolicy
from .policy_base import PolicyBase
from .sarathi import SarathiPolicy
from .static import StaticPolicy
from .vllm import VLLMPolicy

POLICIES = {"sarathi": SarathiPolicy, "vllm": VLLMPolicy, "orca": OrcaPolicy, "static": StaticPolicy}


@hookimpl
def sarathi_register_schedulers(register) -> None:
    for name, policy in POLICIES.items():
        register(name, policy)


@hookimpl(trylast=True)
def sarathi_make_batch_policy(config: EngineConfig, kv_cache_manager: KVCacheManager,
                              registries: Registries):
    schedulers = registries.schedulers
    try:
        factory = schedulers[config.scheduler]
    except KeyError:
        known = ", ".join(sorted(schedulers))
        raise ConfigError(f"unknown scheduler {config.scheduler!r}; registered: {known}") from None
    return factory(config, kv_cache_manager)


__all__ = [
    "POLICIES",
    "OrcaPolicy",
    "PolicyBase",
    "SarathiPolicy",
    "StaticPolicy",
    "VLLMPolicy",
    "sarathi_make_batch_policy",
    "sarathi_register_schedulers",
]
