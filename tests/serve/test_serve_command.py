"""`sarathi serve` as a user runs it: the installed command in a subprocess, on the real default model,
with an API key and a small body cap; bad options fail before loading; Ctrl-C shuts it down cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import httpx
import openai
import pytest

from tests.cli.conftest import SARATHI, run_sarathi
from tests.conftest import default_sigint
from tests.serve.helpers import sse_payloads

KEY = "sk-serve-test"
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(smollm2_folder, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    port = free_port()
    env = dict(os.environ, SARATHI_CACHE_DIR=str(smollm2_folder.parent))
    env.pop("SARATHI_API_KEY", None)
    command = [str(SARATHI), "serve", str(smollm2_folder), "--port", str(port), "--api-key", KEY,
               "--max-body-bytes", "4096", "--served-model-name", "smol", "--max-num-seqs", "8",
               "--shutdown-timeout", "1", "--speculative", "ngram", "--num-speculative-tokens", "3"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=default_sigint)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"sarathi serve exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"sarathi serve did not start:\n{log_path.read_text()}"
            try:
                if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield process, base_url, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_bad_options_and_a_missing_model_fail_before_the_port_is_bound(tmp_path):
    for args, words in ((["--scheduler", "nope"], "unknown scheduler 'nope'"),
                        (["--token-budget", "0"], "token_budget must be an integer >= 1"),
                        (["--speculative", "nope"], "unknown speculative proposer 'nope'"),
                        ([str(tmp_path / "nowhere")], "does not exist")):
        result = run_sarathi("serve", *args, cache_dir=tmp_path, timeout=60)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_the_served_model_answers_with_the_key_and_refuses_without(served):
    process, base_url, _ = served
    with openai.OpenAI(base_url=base_url + "/v1", api_key=KEY, timeout=60, max_retries=0) as client:
        assert [model.id for model in client.models.list().data] == ["smol"]
        reply = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=4, temperature=0)
        assert reply.usage.completion_tokens >= 1
        text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"  # served with --speculative ngram
        copied = client.chat.completions.create(
            model="smol", messages=[{"role": "user", "content": f"Repeat exactly: {text}"}], max_tokens=40,
            temperature=0)
        assert "alpha beta gamma" in copied.choices[0].message.content
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        response = httpx.get(base_url + "/v1/models", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(base_url + "/health", timeout=10).status_code == 200


def test_max_body_bytes_caps_the_request_body(served):
    process, base_url, _ = served
    response = httpx.post(base_url + "/v1/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=10,
                          json={"model": "smol", "prompt": "x" * 5000})
    assert response.status_code == 413


def test_ctrl_c_ends_open_streams_with_abort_and_shuts_down_cleanly(served):
    process, base_url, log_path = served
    body = {"model": "smol", "prompt": "Once upon a time", "max_tokens": 2000, "ignore_eos": True, "stream": True}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        with client.stream("POST", "/v1/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            process.send_signal(signal.SIGINT)
            payloads = sse_payloads(list(lines))  # the shutdown timeout (1 s) passes, then the abort ends it
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["choices"][0]["finish_reason"] == "abort"
    returncode = process.wait(30)
    log = log_path.read_text()
    assert returncode == 130, log  # uvicorn re-raises the SIGINT it caught; the CLI's exit status for Ctrl-C
    assert "aborted 1 request(s)" in log and "Application shutdown complete" in log and "Traceback" not in log
    assert "Uvicorn running on http://127.0.0.1:" in log  # the loopback address by default
