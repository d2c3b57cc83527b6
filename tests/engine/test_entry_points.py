"""Third-party plugins from the `sarathi_sdk` entry-point group load only when enabled or allowed."""

from __future__ import annotations

import textwrap

import pytest

from sarathi_sdk import EngineConfig, PluginManager


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A distribution `thirdparty` whose entry point `thirdparty` names a module with one observer."""
    (tmp_path / "thirdparty_plugin.py").write_text(textwrap.dedent("""
        from sarathi_sdk import hookimpl

        @hookimpl
        def sarathi_on_engine_start(config):
            pass
    """))
    dist = tmp_path / "thirdparty-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sarathi_sdk]\nthirdparty = thirdparty_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "thirdparty"


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
