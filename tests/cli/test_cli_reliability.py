"""The CLI under a user's hands: Ctrl-C at the idle chat prompt, a bad scheduler name before any
weight loads, and a first-run GGUF conversion that says what it does."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.cli.conftest import SARATHI, run_sarathi
from tests.conftest import default_sigint
from tests.gguf.tiny_gguf import random_llama, write_llama_gguf


def test_ctrl_c_at_the_idle_chat_prompt_exits_at_once(smollm2_folder, tmp_path):
    env = dict(os.environ, SARATHI_CACHE_DIR=str(tmp_path))
    process = subprocess.Popen([str(SARATHI), "chat", "--model", str(smollm2_folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=default_sigint)
    try:
        process.stdin.write(b"Hi\n")  # one answered line shows the engine is up and idle again
        process.stdin.flush()
        deadline = time.monotonic() + 120
        first = process.stdout.readline()
        assert first and time.monotonic() < deadline
        process.send_signal(signal.SIGINT)  # stdin stays open: the reader thread is still blocked in it
        assert process.wait(timeout=15) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_an_unknown_scheduler_is_refused_before_the_model_loads(tmp_path):
    missing = tmp_path / "no-such-model"
    result = run_sarathi("generate", "Hi", "--model", str(missing), "--scheduler", "nope", cache_dir=tmp_path)
    assert result.returncode == 2
    assert "unknown scheduler 'nope'" in result.stderr and "sarathi" in result.stderr
    result = run_sarathi("chat", "--model", str(missing), "--speculative", "nope", cache_dir=tmp_path)
    assert result.returncode == 2
    assert "unknown speculative proposer 'nope'" in result.stderr and "ngram" in result.stderr


def test_the_first_run_announces_its_gguf_index(sp_model, tmp_path, caplog):
    from sarathi_models.resolve import cached_index

    gguf_file = tmp_path / "tiny.gguf"
    write_llama_gguf(gguf_file, random_llama(1000), sp_model)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SARATHI_CACHE_DIR", str(tmp_path / "cache"))
        with caplog.at_level("INFO"):
            folder = cached_index(gguf_file)
        assert "writing its index" in caplog.text and str(folder) in caplog.text
        caplog.clear()
        with caplog.at_level("INFO"):
            assert cached_index(gguf_file) == folder
        assert caplog.text == ""


def test_prefix_caching_is_a_command_line_option():
    from sarathi_sdk.cli import build_parser, engine_from_args

    args = build_parser().parse_args(["chat", "--model", "m", "--enable-prefix-caching"])
    assert engine_from_args(args).config.enable_prefix_caching is True
    args = build_parser().parse_args(["chat", "--model", "m"])
    assert engine_from_args(args).config.enable_prefix_caching is False
    serve = build_parser().parse_args(["serve", "m", "--enable-prefix-caching"])
    assert serve.enable_prefix_caching is True
