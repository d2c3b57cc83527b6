"""The engine's own failures over HTTP, on FakeBackend (no model): a dead engine is a 503 and an
unhealthy /health, a failure mid-stream ends the stream with an error event, overload is a 503 with
Retry-After; and the API key and body cap of the guard in front of every route."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from sarathi_sdk.serve import create_app
from sarathi_sdk.testing import FakeBackend
from tests.serve.helpers import parse_metrics, running, sse_payloads

KEY = "sk-test-0123456789"


def completion(**fields):
    return {"model": "default", "prompt": [1, 2, 3], "max_tokens": 8, **fields}


def test_a_dead_engine_answers_503_and_health_turns_unhealthy():
    with running(create_app(backend=FakeBackend(fail_at_step=1))) as server:
        assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200
        for _ in range(2):  # the request that kills the engine, then one to the dead engine
            response = httpx.post(server.base_url + "/v1/completions", json=completion(), timeout=30)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "engine_dead"
            assert response.json()["error"]["type"] == "server_error"
        health = httpx.get(server.base_url + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["error"]["code"] == "engine_dead"
        assert server.metrics()["sarathi_engine_healthy"] == 0


def test_an_engine_failing_mid_stream_ends_the_stream_with_an_error_event():
    with running(create_app(backend=FakeBackend(fail_at_step=3))) as server:
        response = httpx.post(server.base_url + "/v1/completions", json=completion(stream=True), timeout=30)
        assert response.status_code == 200
        payloads = sse_payloads(response.text.splitlines())
        assert payloads[-1] == "[DONE]"
        assert json.loads(payloads[-2])["error"]["code"] == "engine_dead"
        assert len(payloads) == 2  # no tokenizer, so no text before the failure: the error and [DONE]
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0) as client:
            with pytest.raises(openai.APIError):
                list(client.completions.create(model="default", prompt=[1, 2, 3], max_tokens=8, stream=True))


async def test_an_overloaded_engine_answers_503_with_retry_after():
    app = create_app(backend=FakeBackend(step_delay=0.02), max_num_seqs=1, max_waiting_requests=1)
    with running(app) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client, asyncio.timeout(30):
            async with client.stream("POST", "/v1/completions", json=completion(max_tokens=500, stream=True)):
                waiting = asyncio.create_task(client.post("/v1/completions", json=completion(max_tokens=2)))
                while parse_metrics((await client.get("/metrics")).text)["sarathi_requests_waiting"] < 1:
                    await asyncio.sleep(0.01)
                refused = await client.post("/v1/completions", json=completion())
                assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
                error = refused.json()["error"]
                assert error["code"] == "engine_overloaded" and error["type"] == "server_error"
                assert "max_waiting_requests=1" in error["message"]
            assert (await waiting).status_code == 200  # the running stream left, so the waiting one ran
        assert server.metrics()['sarathi_requests_finished_total{finish_reason="abort"}'] == 1


def test_chat_without_a_tokenizer_is_a_400_and_token_id_prompts_still_work():
    with running(create_app(backend=FakeBackend())) as server:
        chat = {"model": "default", "messages": [{"role": "user", "content": "Hi"}]}
        response = httpx.post(server.base_url + "/v1/chat/completions", json=chat, timeout=30)
        assert response.status_code == 400 and "tokenizer" in response.json()["error"]["message"]
        response = httpx.post(server.base_url + "/v1/completions", json=completion(), timeout=30)
        assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 8


@pytest.fixture(scope="module")
def guarded():
    with running(create_app(backend=FakeBackend(), api_key=KEY, max_body_bytes=2048,
                            served_model_name="fake")) as server:
        yield server


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                                     {"Authorization": f"Basic {KEY}"}], ids=["missing", "wrong", "no-scheme", "basic"])
def test_v1_routes_need_the_api_key(guarded, headers):
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions")):
        response = httpx.request(method, guarded.base_url + path, headers=headers, timeout=10,
                                 json=completion(model="fake") if method == "POST" else None)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_right_key_is_served_and_health_and_metrics_stay_open(guarded):
    with openai.OpenAI(base_url=guarded.base_url + "/v1", api_key=KEY, max_retries=0) as client:
        assert [model.id for model in client.models.list().data] == ["fake"]
        assert client.completions.create(model="fake", prompt=[1, 2, 3], max_tokens=3).usage.completion_tokens == 3
    with openai.OpenAI(base_url=guarded.base_url + "/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    assert httpx.get(guarded.base_url + "/health", timeout=10).status_code == 200
    assert httpx.get(guarded.base_url + "/metrics", timeout=10).status_code == 200


def test_a_body_over_the_cap_is_413_declared_or_chunked(guarded):
    big = json.dumps(completion(model="fake", stop=["x" * 3000])).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    declared = httpx.post(guarded.base_url + "/v1/completions", content=big, headers=headers, timeout=10)
    chunked = httpx.post(guarded.base_url + "/v1/completions", headers=headers, timeout=10,
                         content=iter([big[:1000], big[1000:]]))
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    small = httpx.post(guarded.base_url + "/v1/completions", json=completion(model="fake"), headers=headers,
                       timeout=10)
    assert small.status_code == 200
