"""What a public server meets: clients that leave mid-answer, many at once, and bad input. Each bad
request gets its status and an OpenAI error body naming the field, and the server serves on."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from sarathi_sdk.serve import create_app
from tests.serve.helpers import SMALL_ENGINE, running, sse_payloads

ABORTED = 'sarathi_requests_finished_total{finish_reason="abort"}'
LONG = {"max_tokens": 400, "ignore_eos": True, "temperature": 0}
"""A request that runs for seconds on the CPU, long enough to leave in the middle."""


@pytest.fixture(scope="module")
def server(smollm2_folder):
    with running(create_app(str(smollm2_folder), **SMALL_ENGINE)) as server:
        yield server


def idle(values: dict[str, float]) -> bool:
    return values["sarathi_kv_blocks_used"] == 0 and values["sarathi_requests_running"] == 0 and (
        values["sarathi_requests_waiting"] == 0)


def test_a_client_leaving_mid_stream_aborts_its_request_and_frees_its_kv_blocks(server):
    aborted = server.metrics()[ABORTED]
    body = {"model": server.model_id, "prompt": "Once upon a time", "stream": True, **LONG}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        with client.stream("POST", "/v1/completions", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()  # held: dropping the iterator would close the connection now
            first = next(lines)
            assert json.loads(first.removeprefix("data: "))["choices"][0]["text"]
            running_now = server.metrics()
            assert running_now["sarathi_kv_blocks_used"] > 0 and running_now["sarathi_requests_running"] == 1
            assert running_now[ABORTED] == aborted
    after = server.wait_for_metrics(lambda values: idle(values) and values[ABORTED] == aborted + 1)
    assert after["sarathi_generation_tokens_total"] > 0


def test_a_client_leaving_a_non_streaming_request_aborts_it(server):
    aborted = server.metrics()[ABORTED]
    body = {"model": server.model_id, "messages": [{"role": "user", "content": "Tell me a story."}], **LONG}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(30, read=1.0))
    server.wait_for_metrics(lambda values: idle(values) and values[ABORTED] == aborted + 1)


async def test_64_concurrent_streams_all_complete(server):
    async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=60,
                                  max_retries=0) as client:

        async def one(i: int) -> tuple[str, str, int]:
            stream = await client.chat.completions.create(
                model=server.model_id, messages=[{"role": "user", "content": f"Count to {i}."}], max_tokens=8,
                temperature=0.7, seed=i, stream=True, stream_options={"include_usage": True})
            text, finish, usage = "", None, None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
                else:
                    usage = chunk.usage
            return text, finish, usage.completion_tokens

        async with asyncio.timeout(90):
            results = await asyncio.gather(*(one(i) for i in range(64)))
    assert len(results) == 64
    for text, finish, completion_tokens in results:
        assert finish in ("stop", "length") and 1 <= completion_tokens <= 8
        assert finish == "stop" or completion_tokens == 8
        assert text or finish == "stop"
    assert idle(server.metrics())


def chat(server, **fields):
    return {"model": server.model_id, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **fields}


def completion(server, **fields):
    return {"model": server.model_id, "prompt": "Hi", "max_tokens": 4, **fields}


BAD_REQUESTS = [
    # (case, endpoint, body builder or raw bytes, status, param, words in the message)
    ("malformed JSON", "chat", b'{"model": ', 400, None, "not valid JSON"),
    ("body not an object", "chat", b"[]", 400, None, "request body"),
    ("messages missing", "chat", lambda s: {"model": s.model_id}, 400, "messages", "required"),
    ("temperature a string", "chat", lambda s: chat(s, temperature="hot"), 400, "temperature", "number"),
    ("max_tokens a string", "completions", lambda s: completion(s, max_tokens="5"), 400, "max_tokens", "integer"),
    ("unknown model", "chat", lambda s: chat(s, model="gpt-4o"), 400, "model", "gpt-4o"),
    ("n=5", "chat", lambda s: chat(s, n=5), 400, "n", "n=1"),
    ("temperature -1", "chat", lambda s: chat(s, temperature=-1), 400, "temperature", ">= 0"),
    ("tools without a parser", "chat", lambda s: chat(s, tools=[{"type": "function", "function": {"name": "f"}}]),
     400, "tool_choice", "--tool-call-parser"),
    ("schema that does not compile", "chat", lambda s: chat(s, response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}}), 400,
     "response_format", "does not compile"),
    ("unknown role", "chat", lambda s: chat(s, messages=[{"role": "robot", "content": "x"}]), 400, "messages.0.role",
     "user"),
    ("top_logprobs alone", "chat", lambda s: chat(s, top_logprobs=2), 400, "top_logprobs", "logprobs"),
    ("too many logprobs", "completions", lambda s: completion(s, logprobs=50), 400, "logprobs", "max_logprobs"),
    ("past the context", "completions", lambda s: completion(s, max_tokens=10**6), 400, "prompt", "max_model_len"),
    ("empty prompt", "completions", lambda s: completion(s, prompt=""), 400, "prompt", "empty"),
    ("two prompts", "completions", lambda s: completion(s, prompt=["a", "b"]), 400, "prompt", "batch"),
    ("echo", "completions", lambda s: completion(s, echo=True), 400, "echo", "not supported"),
    ("empty stop string", "completions", lambda s: completion(s, stop=""), 400, "stop", "non-empty"),
    ("negative seed", "completions", lambda s: completion(s, seed=-1), 400, "seed", "seed"),
    ("stream_options without stream", "chat", lambda s: chat(s, stream_options={"include_usage": True}), 400,
     "stream_options", "stream"),
    ("body over 1 MiB", "completions", lambda s: completion(s, prompt="x" * (1 << 20)), 413, None, "larger than"),
]


@pytest.mark.parametrize("case,endpoint,body,status,param,words", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_gets_its_status_and_an_openai_error_body(server, case, endpoint, body, status, param, words):
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    content = body if isinstance(body, bytes) else json.dumps(body(server)).encode()
    response = httpx.post(server.base_url + path, content=content, headers={"Content-Type": "application/json"},
                          timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert words in error["message"]


def test_the_openai_client_raises_bad_request_naming_the_field(server):
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=30, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=server.model_id, messages=[{"role": "user", "content": "Hi"}], n=5)
        assert refused.value.param == "n" and refused.value.status_code == 400
        with pytest.raises(openai.BadRequestError) as refused:
            client.completions.create(model="davinci", prompt="Hi")
        assert refused.value.param == "model"


def test_unknown_routes_are_404_in_the_same_error_shape(server):
    response = httpx.get(server.base_url + "/v1/engines", timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_the_server_still_serves_after_bad_input_and_disconnects(server):
    response = httpx.post(server.base_url + "/v1/completions", json=completion(server, stream=True, temperature=0),
                          timeout=30)
    payloads = sse_payloads(response.text.splitlines())
    assert response.status_code == 200 and payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["choices"][0]["finish_reason"] in ("stop", "length")
    assert idle(server.metrics())
