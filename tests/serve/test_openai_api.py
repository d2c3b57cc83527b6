"""The server through the official `openai` client, on the real default model: greedy answers equal
the same engine's own `chat` / `complete`, streamed or not, and usage counts the engine's tokens."""

from __future__ import annotations

import httpx
import openai
import pytest

from sarathi_sdk import RequestOutput, SamplingParams
from sarathi_sdk.serve import create_app
from tests.gguf.smollm2 import PARIS_QUESTION
from tests.serve.helpers import SMALL_ENGINE, running

MESSAGES = [{"role": "user", "content": PARIS_QUESTION}]
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def server(smollm2_folder):
    with running(create_app(str(smollm2_folder), **SMALL_ENGINE)) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=60, max_retries=0) as client:
        yield client


def engine_chat(server, messages, params: SamplingParams) -> RequestOutput:
    async def chat():
        return RequestOutput.concat([output async for output in server.engine.chat(messages, params)])

    return server.call(chat())


def chat_prompt_len(server, messages) -> int:
    tokenizer = server.engine.tokenizer
    return len(tokenizer.encode(tokenizer.apply_chat_template(messages), add_special_tokens=False))


def test_models_lists_the_model_folder_name(server, client, smollm2_folder):
    assert [model.id for model in client.models.list().data] == [smollm2_folder.name]


def test_greedy_chat_equals_engine_chat_and_counts_usage(server, client):
    expected = engine_chat(server, MESSAGES, SamplingParams(max_tokens=24, temperature=0))
    reply = client.chat.completions.create(model=server.model_id, messages=MESSAGES, max_tokens=24, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.text and "Paris" in expected.text
    assert choice.finish_reason == expected.finish_reason
    assert reply.object == "chat.completion" and reply.model == server.model_id and reply.id.startswith("chatcmpl-")
    assert reply.usage.prompt_tokens == chat_prompt_len(server, MESSAGES)
    assert reply.usage.completion_tokens == len(expected.token_ids)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_chat_equals_engine_chat_with_role_finish_and_usage_chunks(server, client):
    expected = engine_chat(server, MESSAGES, SamplingParams(max_tokens=24, temperature=0))
    chunks = list(client.chat.completions.create(
        model=server.model_id, messages=MESSAGES, max_completion_tokens=24, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == expected.text
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == expected.finish_reason and not any(finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == chat_prompt_len(server, MESSAGES)
    assert chunks[-1].usage.completion_tokens == len(expected.token_ids)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert len({chunk.id for chunk in chunks}) == 1


def test_greedy_completion_equals_engine_complete_and_counts_usage(server, client):
    params = SamplingParams(max_tokens=12, temperature=0)
    expected = server.call(server.engine.complete(PROMPT, params))
    reply = client.completions.create(model=server.model_id, prompt=PROMPT, max_tokens=12, temperature=0)
    assert reply.choices[0].text == expected.text
    assert reply.choices[0].finish_reason == "length"
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.usage.prompt_tokens == len(server.engine.tokenizer.encode(PROMPT))
    assert reply.usage.completion_tokens == 12


def test_streamed_completion_of_token_ids_equals_engine_complete(server, client):
    prompt = server.engine.tokenizer.encode(PROMPT)
    expected = server.call(server.engine.complete(prompt, SamplingParams(max_tokens=10, temperature=0)))
    chunks = list(client.completions.create(model=server.model_id, prompt=prompt, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == expected.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.prompt_tokens == len(prompt) and chunks[-1].usage.completion_tokens == 10


def test_logprobs_come_back_per_token_in_each_endpoints_shape(server, client):
    chat = client.chat.completions.create(model=server.model_id, messages=MESSAGES, max_tokens=6, temperature=0,
                                          logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens
    assert "".join(entry.token for entry in content).startswith(chat.choices[0].message.content[:4])
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert bytes(entry.bytes).decode() == entry.token
    completion = client.completions.create(model=server.model_id, prompt=PROMPT, max_tokens=6, temperature=0,
                                           logprobs=3)
    logprobs = completion.choices[0].logprobs
    assert "".join(logprobs.tokens) == completion.choices[0].text
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == 6
    assert all(1 <= len(top) <= 3 for top in logprobs.top_logprobs)
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset[1] == len(logprobs.tokens[0])


def test_stop_string_and_seed_map_onto_sampling(server, client):
    stopped = client.chat.completions.create(model=server.model_id, messages=MESSAGES, max_tokens=24, temperature=0,
                                             stop=" Paris")
    assert stopped.choices[0].finish_reason == "stop" and "Paris" not in stopped.choices[0].message.content
    assert stopped.choices[0].message.content.startswith("The capital of France")
    sampled = [client.completions.create(model=server.model_id, prompt=PROMPT, max_tokens=8, temperature=1.0,
                                         top_p=0.9, seed=7,
                                         extra_body={"top_k": 50, "min_p": 0.01, "repetition_penalty": 1.1},
                                         ).choices[0].text
               for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_health_and_metrics_report_the_engine_and_finished_requests(server, client):
    assert httpx.get(server.base_url + "/health", timeout=10).json() == {"status": "ok"}
    before = server.metrics()
    client.completions.create(model=server.model_id, prompt=PROMPT, max_tokens=4, temperature=0)
    after = server.metrics()
    response = httpx.get(server.base_url + "/metrics", timeout=10)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert after["sarathi_engine_healthy"] == 1
    assert after["sarathi_kv_blocks_total"] == SMALL_ENGINE["num_kv_blocks"]
    assert after["sarathi_kv_blocks_used"] == 0 and after["sarathi_requests_running"] == 0
    assert after["sarathi_steps_total"] >= before["sarathi_steps_total"] + 4
    assert after['sarathi_requests_finished_total{finish_reason="length"}'] == (
        before['sarathi_requests_finished_total{finish_reason="length"}'] + 1)
    assert after["sarathi_time_to_first_token_seconds_count"] == before["sarathi_time_to_first_token_seconds_count"] + 1
    assert after["sarathi_time_between_tokens_seconds_count"] == before["sarathi_time_between_tokens_seconds_count"] + 3
    assert after['sarathi_time_to_first_token_seconds_bucket{le="+Inf"}'] == after[
        "sarathi_time_to_first_token_seconds_count"]
    assert after["sarathi_generation_tokens_total"] == before["sarathi_generation_tokens_total"] + 4
