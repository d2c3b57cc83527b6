"""The documentation site builds offline with `mkdocs build --strict`, as CI builds it.

Strict mode turns every warning into a failure: a page in the nav that does not exist, a broken
link between pages, a snippet (`--8<--`) naming a missing file, an API reference entry (`:::`) that
mkdocstrings cannot resolve. The build reads the sources statically (griffe), so it needs no model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_mkdocs_build_strict_passes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    api = (site / "reference" / "api" / "index.html").read_text()
    assert 'id="sarathi_sdk.Engine.generate"' in api  # mkdocstrings rendered the docstrings
    hooks = (site / "reference" / "hooks" / "index.html").read_text()
    assert "sarathi_make_batch_policy" in hooks and "sarathi_on_step_end" in hooks
    quickstart = (site / "quickstart" / "index.html").read_text()
    assert "concurrent_requests" in quickstart and "--8&lt;--" not in quickstart  # snippets included


def test_site_links_no_font_service() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert "  font: false" in config.split("theme:", 1)[1].split("\n\n", 1)[0]
