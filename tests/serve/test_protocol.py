"""The pieces of the server without a server: request bodies onto SamplingParams, error bodies and
statuses, response chunks, the Prometheus text; and the core importing none of the serve extra."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from sarathi_sdk import (
    EngineDeadError,
    EngineOverloadedError,
    EngineStateError,
    FinishReason,
    InvalidRequestError,
    RequestError,
    RequestMetrics,
    RequestOutput,
    SamplingParams,
)
from sarathi_sdk.batch import TokenLogprobs
from sarathi_sdk.serve.errors import APIError, from_sdk_error, from_validation_errors
from sarathi_sdk.serve.metrics import Histogram, RequestObserver, render
from sarathi_sdk.serve.protocol import ChatCompletionRequest, CompletionRequest, field_names
from sarathi_sdk.serve.responses import Reply, TokenTexts

HI = [{"role": "user", "content": "Hi"}]


def chat(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": HI, **fields})


def completion(**fields) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "m", "prompt": "Hi", **fields})


def test_every_sampling_field_maps_onto_sampling_params():
    params = chat(max_completion_tokens=7, temperature=0.5, top_p=0.9, top_k=40, min_p=0.05, seed=3, stop="END",
                  stop_token_ids=[2], ignore_eos=True, logprobs=True, top_logprobs=4, presence_penalty=0.5,
                  frequency_penalty=-0.5, repetition_penalty=1.2).sampling_params(512)
    assert params == SamplingParams(max_tokens=7, temperature=0.5, top_p=0.9, top_k=40, min_p=0.05, seed=3,
                                    stop=("END",), stop_token_ids=(2,), ignore_eos=True, logprobs=4,
                                    presence_penalty=0.5, frequency_penalty=-0.5, repetition_penalty=1.2)
    assert chat(logprobs=True).sampling_params(512).logprobs == 0
    assert chat().sampling_params(512) == SamplingParams(max_tokens=512)
    assert completion(logprobs=2, stop=["a", "b"]).sampling_params(16) == SamplingParams(
        max_tokens=16, logprobs=2, stop=("a", "b"))


@pytest.mark.parametrize("fields,param", [
    ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_k": 0}, "top_k"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"stop": [""]}, "stop"), ({"seed": -1}, "seed"), ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
    ({"presence_penalty": 3}, "presence_penalty"), ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"max_tokens": 3, "max_completion_tokens": 4}, "max_completion_tokens"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"stream_options": {"include_usage": True}}, "stream_options"),
])
def test_an_out_of_range_value_is_a_400_naming_the_request_field(fields, param):
    with pytest.raises(APIError) as refused:
        chat(**fields).sampling_params(512)
    assert refused.value.status == 400 and refused.value.param == param


def test_engine_admission_messages_name_the_request_field():
    assert chat().param_for("prompt (9000 tokens) plus max_tokens (16) exceeds max_model_len (8192)") == "messages"
    assert completion().param_for("the prompt is empty") == "prompt"
    assert completion().param_for("token id 99999 is outside the vocabulary of 49152 tokens") == "prompt"
    assert chat().param_for("logprobs must be at most max_logprobs (20), got 30") == "top_logprobs"
    assert completion().param_for("logprobs must be at most max_logprobs (20), got 30") == "logprobs"
    assert completion().param_for("stop_token_ids: token id 99999 is outside the vocabulary") == "stop_token_ids"
    assert chat().param_for("chat needs a tokenizer with a chat template; this engine has none") is None


@pytest.mark.parametrize("fields,param", [
    ({"n": 2}, "n"), ({"tools": [{"type": "function", "function": {"name": 3}}]}, "tools.0.function.name"),
    ({"response_format": {"type": "xml"}}, "response_format.type"), ({"tool_choice": "always"}, "tool_choice"),
    ({"logit_bias": {"1": 2}}, "logit_bias"), ({"temperature": "0.5"}, "temperature"), ({"max_tokens": 1.0}, "max_tokens"),
    ({"stream": "yes"}, "stream"), ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages.0.content"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"stream": True, "stream_options": {"continuous_usage_stats": True}}, "stream_options.continuous_usage_stats"),
])
def test_unsupported_or_mistyped_fields_are_refused_by_name(fields, param):
    with pytest.raises(ValidationError) as refused:
        chat(**fields)
    error = from_validation_errors([{**e, "loc": ("body", *e["loc"])} for e in refused.value.errors()],
                                   field_names())
    assert error.status == 400 and error.param == param and error.body()["error"]["type"] == "invalid_request_error"


def test_what_openai_clients_send_is_accepted():
    request = chat(user="u-1", stream=True, stream_options={"include_usage": True}, n=1,
                   messages=[{"role": "developer", "content": "Be brief."},
                             {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]}])
    assert request.include_usage
    assert request.template_messages() == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Hi\n!"}]
    assert completion(prompt=[[1, 2]]).engine_prompt() == [1, 2]
    assert completion(prompt=["one"]).engine_prompt() == "one"
    assert completion(prompt=[5, 6], echo=False, best_of=1).engine_prompt() == [5, 6]


def test_sdk_errors_map_onto_http_statuses():
    cases = [(InvalidRequestError("bad"), 400, None), (EngineOverloadedError("busy"), 503, "engine_overloaded"),
             (EngineDeadError("dead"), 503, "engine_dead"), (EngineStateError("closed"), 503, "engine_not_running"),
             (RequestError("failed"), 500, "request_failed")]
    for exc, status, code in cases:
        error = from_sdk_error(exc)
        assert (error.status, error.code, error.message) == (status, code, str(exc))
    assert from_sdk_error(EngineOverloadedError("busy")).headers == {"Retry-After": "1"}
    assert from_validation_errors([{"type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error",
                                    "ctx": {"error": "Expecting value"}}], field_names()).message == (
        "the request body is not valid JSON: Expecting value")


def final_output(text: str, tokens: tuple[int, ...], logprobs=None) -> RequestOutput:
    metrics = RequestMetrics(arrival_time=0.0, first_scheduled_time=0.0, first_token_time=0.1, finished_time=0.3,
                             scheduling_delay=0.0, ttft=0.1, tbts=(0.1, 0.1), e2e_latency=0.3, num_prompt_tokens=5,
                             num_cached_tokens=0, num_generated_tokens=len(tokens), num_preemptions=0)
    return RequestOutput("r", text, tokens, True, FinishReason.LENGTH, logprobs, metrics)


def test_chat_stream_chunks_announce_the_role_then_text_then_finish_then_usage():
    reply = Reply("chat", "chatcmpl-1", "m", 0, TokenTexts(None), include_usage=True)
    first = reply.first_chunks()[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""} and first["usage"] is None
    middle = reply.chunks(RequestOutput("r", "Hel", (1,)))
    assert [c["choices"][0]["delta"] for c in middle] == [{"content": "Hel"}]
    last = reply.chunks(final_output("lo", (2, 3)))
    assert [c["choices"][0]["delta"] for c in last] == [{"content": "lo"}, {}]
    assert last[-1]["choices"][0]["finish_reason"] == "length"
    assert reply.usage_chunk(final_output("lo", (2, 3)), 3) == {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def test_logprobs_take_each_endpoints_shape_and_never_carry_infinity():
    logprobs = (TokenLogprobs(7, -0.5, ((7, -0.5), (8, float("-inf")))),)
    chat_reply = Reply("chat", "c", "m", 0, TokenTexts(None), top_logprobs=1)
    body = chat_reply.response(final_output("x", (7,), logprobs))
    entry = body["choices"][0]["logprobs"]["content"][0]
    assert entry == {"token": "token_id:7", "logprob": -0.5, "bytes": list(b"token_id:7"),
                     "top_logprobs": [{"token": "token_id:7", "logprob": -0.5, "bytes": list(b"token_id:7")}]}
    completion_reply = Reply("completion", "c", "m", 0, TokenTexts(None), top_logprobs=2)
    body = completion_reply.response(final_output("x", (7,), logprobs))
    assert body["choices"][0]["logprobs"] == {"tokens": ["token_id:7"], "token_logprobs": [-0.5],
                                              "top_logprobs": [{"token_id:7": -0.5, "token_id:8": -9999.0}],
                                              "text_offset": [0]}


def test_prometheus_text_has_cumulative_histograms_and_engine_gauges():
    histogram = Histogram("x_seconds", "help", (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 5.0):
        histogram.observe(value)
    assert histogram.lines()[2:] == ['sarathi_x_seconds_bucket{le="0.1"} 2', 'sarathi_x_seconds_bucket{le="1.0"} 3',
                                     'sarathi_x_seconds_bucket{le="+Inf"} 4', "sarathi_x_seconds_sum 5.65",
                                     "sarathi_x_seconds_count 4"]
    observer = RequestObserver()
    observer.sarathi_on_request_finished("r", final_output("x", (1, 2, 3)))
    text = render(None, observer, healthy=True)
    assert "sarathi_time_between_tokens_seconds_count 2" in text and "sarathi_engine_healthy 1" in text
    assert 'sarathi_requests_finished_total{finish_reason="length"} 1' in text
    assert "sarathi_kv_blocks_used" not in text  # no engine stats before it starts


def test_the_core_and_the_cli_import_nothing_of_the_serve_extra():
    code = ("import sys, sarathi_sdk, sarathi_sdk.cli, sarathi_sdk.serve; "
            "sarathi_sdk.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_model_id_is_the_name_the_user_gave():
    from sarathi_sdk.serve.app import model_id

    assert model_id("/models/SmolLM2-135M-Instruct.Q4_1.gguf", "/cache/SmolLM2-135M-Instruct.Q4_1-898fe4f23152") \
        == "SmolLM2-135M-Instruct.Q4_1"
    assert model_id("/models/my-llama", "/models/my-llama") == "my-llama"
    assert model_id(None, "/cache/SmolLM2-135M-Instruct.Q4_1-898fe4f23152") == "SmolLM2-135M-Instruct.Q4_1"
    assert model_id(None, None) == "default"
