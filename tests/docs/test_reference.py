"""Every public name has a docstring and a place in the API reference.

The reference page lists `::: sarathi_sdk.NAME` entries by hand, grouped by topic; this test is what
keeps it complete when a name joins `sarathi_sdk.__all__`.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import sarathi_sdk
from sarathi_sdk import EngineConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


def own_docstring(obj: object) -> str:
    """The docstring written for `obj` itself: for a class, not one inherited or generated (a
    dataclass without a docstring gets its signature as one)."""
    if isinstance(obj, type):
        doc = vars(obj).get("__doc__") or ""
        return "" if doc.startswith(f"{obj.__name__}(") else doc
    return inspect.getdoc(obj) or ""


@pytest.mark.parametrize("name", sarathi_sdk.__all__)
def test_public_name_has_a_docstring(name: str) -> None:
    assert own_docstring(getattr(sarathi_sdk, name)).strip(), f"sarathi_sdk.{name} has no docstring"


@pytest.mark.parametrize("name", sarathi_sdk.__all__)
def test_public_name_is_in_the_api_reference(name: str) -> None:
    reference = (DOCS / "reference" / "api.md").read_text()
    assert f"::: sarathi_sdk.{name}\n" in reference, f"add `::: sarathi_sdk.{name}` to docs/reference/api.md"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(EngineConfig)])
def test_every_engine_option_is_on_the_configuration_page(field: str) -> None:
    page = (DOCS / "configuration.md").read_text()
    assert f"| `{field}` |" in page, f"document EngineConfig.{field} in docs/configuration.md"
