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


def _module_names() -> dict[str, Path]:
    """Dotted name -> file of every module in src/ and plugins/."""
    modules = {}
    for base in (ROOT / "src", ROOT / "plugins"):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _module_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that `path` imports anywhere (lazy and TYPE_CHECKING imports too); `from
    package import module` counts as importing the module, not the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules.keys()
            found |= submodules if len(submodules) == len(node.names) else submodules | {target}
    return (found & modules.keys()) - {name}


def test_the_import_graph_has_no_circle():
    modules = _module_names()
    graph = {name: _module_imports(name, path, modules) for name, path in modules.items()}
    circles = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(modules):
        if name not in state:
            visit(name, [name])
    assert circles == []
