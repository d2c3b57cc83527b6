"""The house rules, read from the source: the core imports no plugin, and the bundled plugins import
only the public `sarathi_sdk` API (never each other, never a private core module)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file())


def _imports(path: Path) -> list[str]:
    """Every absolute module an import statement of `path` names (relative imports stay inside)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_the_core_imports_no_plugin():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "src" / "sarathi_sdk").rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in PLUGINS
    ]
    assert offenders == []
    cli = (ROOT / "src" / "sarathi_sdk" / "cli.py").read_text(encoding="utf-8")
    assert not any(f'"{plugin}' in cli for plugin in PLUGINS)  # no import by name either


def test_plugins_import_only_the_public_api():
    offenders = []
    for plugin in PLUGINS:
        for path in (ROOT / "plugins" / plugin).rglob("*.py"):
            for name in _imports(path):
                top = name.split(".")[0]
                if (top in PLUGINS and top != plugin) or (top == "sarathi_sdk" and name != "sarathi_sdk"):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
