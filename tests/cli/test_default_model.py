"""The README's first command: the bundled model answers through `sarathi generate` and `sarathi chat`."""

from __future__ import annotations

from tests.cli.conftest import run_sarathi
from tests.gguf.smollm2 import PARIS_QUESTION


def test_generate_answers_with_the_default_model(smollm2_folder):
    result = run_sarathi("generate", PARIS_QUESTION, "--max-tokens", "16", cache_dir=smollm2_folder.parent)
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


def test_generate_raw_continues_the_text_as_is(smollm2_folder):
    result = run_sarathi(
        "generate", "--raw", "The capital of France is", "--max-tokens", "4", cache_dir=smollm2_folder.parent
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.lstrip().startswith("Paris")


def test_chat_answers_each_line_until_exit(smollm2_folder):
    stdin = f"{PARIS_QUESTION}\n/exit\nthis line is never read\n"
    result = run_sarathi("chat", "--max-tokens", "16", cache_dir=smollm2_folder.parent, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout and len(result.stdout.strip().splitlines()) == 1
