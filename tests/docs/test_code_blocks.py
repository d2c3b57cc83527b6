"""Every fenced code block in the docs is either a tested example or marked as not run.

The convention, one of two per block:

- **included**: the block's only lines are `--8<-- "examples/..."` snippet includes (pymdownx.snippets),
  of files under examples/ that tests/test_examples.py runs; the page shows the tested file itself;
- **not run**: the line just before the opening fence is an HTML comment `<!-- not run: why -->`
  (invisible on the site), for shell sessions, diagrams and sketches that need a server or a GPU.

A block with neither would be code a reader may copy that nothing checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES_TEST = ROOT / "tests" / "test_examples.py"
FENCE = re.compile(r"^\s*(```|~~~)")
NOT_RUN = re.compile(r"^\s*<!-- not run(: [^>]+)? -->\s*$")
SNIPPET = re.compile(r'^\s*--8<-- "(examples/[^"]+)"\s*$')
PAGES = sorted(DOCS.rglob("*.md"))


def code_blocks(page: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, the line before, body lines) of each fenced block of a page."""
    lines = page.read_text().splitlines()
    blocks, start = [], None
    for number, line in enumerate(lines):
        if not FENCE.match(line):
            continue
        if start is None:
            start = number
        else:
            blocks.append((start + 1, lines[start - 1] if start else "", lines[start + 1 : number]))
            start = None
    assert start is None, f"{page}: unclosed code fence at line {start + 1}"
    return blocks


def test_the_convention_is_checked_on_every_page() -> None:
    names = {page.name for page in PAGES}
    assert {"index.md", "quickstart.md", "plugins.md", "serving.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_code_blocks_are_tested_examples_or_marked_not_run(page: Path) -> None:
    tested = EXAMPLES_TEST.read_text()
    for line, before, body in code_blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        if NOT_RUN.match(before):
            continue
        includes = [SNIPPET.match(text) for text in body if text.strip()]
        assert includes and all(includes), (
            f"{where}: include a tested file from examples/ with --8<--, or put <!-- not run: why --> before it"
        )
        for include in includes:
            path = Path(include.group(1))
            assert (ROOT / path).is_file(), f"{where}: {path} does not exist"
            assert f'"{path.parts[1]}"' in tested, f"{where}: no test in tests/test_examples.py runs {path.parts[1]}"


def test_every_example_is_run_by_a_test() -> None:
    tested = EXAMPLES_TEST.read_text()
    examples = [p.name for p in (ROOT / "examples").iterdir() if p.suffix == ".py" or p.is_dir()]
    missing = [name for name in examples if name != "__pycache__" and f'"{name}"' not in tested]
    assert not missing, f"examples without a test in tests/test_examples.py: {missing}"
