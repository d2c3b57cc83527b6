"""The examples that need no model run as written."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_custom_policy_example_runs(capsys):
    runpy.run_path(str(EXAMPLES / "custom_policy.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "step 1: 0 decodes, prefill chunks [short:5, medium:20, long:7]" in out
