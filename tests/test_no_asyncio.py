"""The SDK runs on anyio, so under asyncio and trio alike: no module of `sarathi_sdk` uses asyncio.

The CLI and the server still run their event loop on asyncio, through `anyio.run(..., backend="asyncio")`
(a backend's name in a string, not a use of the module). Code is read as Python (imports and
`asyncio.<name>`), so prose about asyncio in docstrings and comments is no use of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "sarathi_sdk"


def asyncio_uses(source: str) -> list[int]:
    """Line numbers of every import of asyncio (or a submodule) and every `asyncio.<name>` in `source`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "asyncio":
            modules = ["asyncio"]
        else:
            continue
        if any(m == "asyncio" or m.startswith("asyncio.") for m in modules):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_check_finds_every_kind_of_use():
    source = "\n".join([
        "import asyncio", "from asyncio import gather", "import os, asyncio.subprocess", "x = asyncio.Event()",
        '"""prose: asyncio.wait_for is not a use"""', "# nor is asyncio.run in a comment",
        'import anyio; anyio.run(main, backend="asyncio")', "from . import asyncio_helpers",
    ])
    assert asyncio_uses(source) == [1, 2, 3, 4]


def test_no_module_of_the_sdk_uses_asyncio():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20  # the package itself, not an empty folder
    uses = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in modules
            for line in asyncio_uses(path.read_text(encoding="utf-8"))]
    assert not uses, "asyncio used (use anyio, which runs under asyncio and trio):\n" + "\n".join(uses)
