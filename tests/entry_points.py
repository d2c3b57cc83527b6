"""Install a plugin distribution for one test: a module and a dist-info folder with a `sarathi_sdk`
entry point, on a temporary sys.path entry; nothing is installed into the environment."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str, source: str) -> str:
    """Make `module` (with `source`) importable and announce it as entry point `name`; returns `name`."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist = tmp_path / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[sarathi_sdk]\n{name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name
