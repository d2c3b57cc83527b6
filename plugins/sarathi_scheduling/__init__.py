"""Bundled plugin: batch policies, selected by name with `Engine(scheduler=...)`.

`sarathi` (the default) is decode-maximal chunked-prefill batching. Every policy is registered through
`sarathi_register_schedulers`, the registry third-party plugins add to; the default
`sarathi_make_batch_policy` builds the one `config.scheduler` names.
"""

from __future__ import annotations

from sarathi_sdk import ConfigError, EngineConfig, KVCacheManager, PluginManager, hookimpl

from .policy_base import PolicyBase
from .sarathi import SarathiPolicy


@hookimpl
def sarathi_register_schedulers(register) -> None:
    register("sarathi", SarathiPolicy)


@hookimpl(trylast=True)
def sarathi_make_batch_policy(config: EngineConfig, kv_cache_manager: KVCacheManager,
                              plugin_manager: PluginManager):
    schedulers = plugin_manager.registry("sarathi_register_schedulers")
    try:
        factory = schedulers[config.scheduler]
    except KeyError:
        known = ", ".join(sorted(schedulers))
        raise ConfigError(f"unknown scheduler {config.scheduler!r}; registered: {known}") from None
    return factory(config, kv_cache_manager)


__all__ = ["PolicyBase", "SarathiPolicy", "sarathi_make_batch_policy", "sarathi_register_schedulers"]
