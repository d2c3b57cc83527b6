"""The per-engine plugin manager: bundled defaults, user objects, opt-in entry points.

One `PluginManager` per Engine, never a module global. Registration order, lowest precedence first:
the bundled plugins by module path (their factories are `trylast` as well), then allowed entry-point
plugins of the group `sarathi_sdk`, then the objects passed as `Engine(plugins=[...])`. A name in
`block_plugins` is never registered. A hook implementation with no specification (a misspelled hook)
is refused with a `PluginError`.

Imports pluggy, the standard library and the contract modules; the bundled plugins are imported by
name at run time, so the core never imports model code.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

import pluggy

from . import hookspecs
from .config import EngineConfig
from .errors import PluginError
from .registries import Registries

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sarathi_sdk"
BUNDLED_PLUGINS = ("sarathi_paged_kv", "sarathi_scheduling", "sarathi_tokenizers", "sarathi_models", "sarathi_triton",
                   "sarathi_parallel", "sarathi_structured", "sarathi_speculative")


class PluginManager:
    """pluggy's manager with the engine's registration rules, registries and safe observer calls."""

    def __init__(self, config: EngineConfig) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        for name in config.block_plugins:
            self._pm.set_blocked(name)
        try:
            for module_name in BUNDLED_PLUGINS:
                if not self._pm.is_blocked(module_name):
                    self._pm.register(importlib.import_module(module_name), name=module_name)
            self._load_entry_points(config.load_entrypoint_plugins)
            for plugin in config.plugins:
                self._pm.register(plugin)
            self._pm.check_pending()
        except (pluggy.PluginValidationError, ValueError, ImportError) as exc:
            raise PluginError(f"cannot load plugins: {exc}") from exc

    @property
    def hook(self) -> Any:
        return self._pm.hook

    def plugin_names(self) -> list[str]:
        """Registered plugins, in registration order."""
        return [name for name, plugin in self._pm.list_name_plugin() if plugin is not None]

    def registry(self, hook_name: str) -> dict[str, Callable[..., Any]]:
        """Collect every plugin's `register(name, factory)` calls of a registry hook.

        pluggy calls the plugin registered last first, so keeping the first factory given for a name
        lets a user plugin replace a bundled entry.
        """
        entries: dict[str, Callable[..., Any]] = {}
        getattr(self._pm.hook, hook_name)(register=entries.setdefault)
        return entries

    def registries(self) -> Registries:
        """The name registries, collected once, for the factory hooks that choose by name."""
        return Registries(
            schedulers=self.registry("sarathi_register_schedulers"),
            model_architectures=self.registry("sarathi_register_model_architectures"),
            attention_backends=self.registry("sarathi_register_attention_backends"),
            proposers=self.registry("sarathi_register_proposers"),
        )

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook; an exception in one observer is logged, naming the plugin and its
        implementation (a plugin object's registered name is only a number), and the others still run."""
        observers = getattr(self._pm.hook, hook_name).get_hookimpls()[::-1]  # pluggy's call order
        for impl in observers:
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                impl.function(**_args(impl, kwargs))
            except Exception:
                logger.exception("observer %s (plugin %s) failed; the engine goes on",
                                 impl.function.__qualname__, impl.plugin_name)

    def _load_entry_points(self, allowed: bool | tuple[str, ...]) -> None:
        if allowed is True:
            self._pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        elif allowed:
            for name in allowed:
                if self._pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name) == 0 and not (
                    self._pm.is_blocked(name) or self._pm.has_plugin(name)
                ):
                    raise PluginError(f"no plugin named {name!r} in entry-point group {ENTRY_POINT_GROUP!r}")


def _args(impl: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs[name] for name in impl.argnames}
