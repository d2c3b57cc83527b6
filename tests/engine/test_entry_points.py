"""Third-party plugins from the `sarathi_sdk` entry-point group load only when enabled or allowed."""

from __future__ import annotations

import pytest

from sarathi_sdk import EngineConfig, PluginManager
from tests.entry_points import install_plugin


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A distribution `thirdparty` whose entry point names a module with one observer."""
    return install_plugin(tmp_path, monkeypatch, "thirdparty", "thirdparty_plugin", """
        from sarathi_sdk import hookimpl

        @hookimpl
        def sarathi_on_engine_start(config):
            pass
    """)


def test_entry_points_are_off_by_default(installed_plugin):
    assert installed_plugin not in PluginManager(EngineConfig()).plugin_names()


def test_entry_points_load_when_enabled(installed_plugin):
    assert installed_plugin in PluginManager(EngineConfig(load_entrypoint_plugins=True)).plugin_names()


def test_allow_list_loads_only_named_plugins(installed_plugin):
    names = PluginManager(EngineConfig(load_entrypoint_plugins=[installed_plugin])).plugin_names()
    assert installed_plugin in names


def test_blocked_entry_point_plugin_stays_out(installed_plugin):
    config = EngineConfig(load_entrypoint_plugins=True, block_plugins=[installed_plugin])
    assert installed_plugin not in PluginManager(config).plugin_names()
