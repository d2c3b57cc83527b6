"""CI runs exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    test_section = readme.split("## Test it", 1)[1]
    command = test_section.split("```bash\n", 1)[1].split("\n", 1)[0]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci_lines
