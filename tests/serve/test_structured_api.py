"""Structured output and tool calls through the official `openai` client, on the real default model:
`response_format` (json_object, json_schema), `chat.completions.parse` with a pydantic model, vLLM's
`structured_outputs` field, and `tools` with each `tool_choice`, streamed and not."""

from __future__ import annotations

import json
import re

import jsonschema
import openai
import pydantic
import pytest

from sarathi_sdk.serve import create_app
from tests.serve.helpers import SMALL_ENGINE, running

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time now", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "pattern": "^[A-Z]{3}$"}}, "required": ["zone"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
HERMES_CALL = r'<tool_call>\{"name": "get_weather", "arguments": \{"city": "[A-Z][a-z]{2,8}", "unit": "celsius"\}\}</tool_call>'
"""A regex that makes the default model write a Hermes call: the parser is tested on what the engine
streams, whatever a 135M model would have written by itself."""


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=30)
    country: str = pydantic.Field(max_length=30)
    population: int = pydantic.Field(ge=0, le=100_000_000)


@pytest.fixture(scope="module")
def server(smollm2_folder):
    with running(create_app(str(smollm2_folder), tool_call_parser="hermes", **SMALL_ENGINE)) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=120, max_retries=0) as client:
        yield client


def chat(client, server, messages=ASK, **fields):
    fields = {"max_tokens": 96, "temperature": 0, **fields}
    return client.chat.completions.create(model=server.model_id, messages=messages, **fields)


def test_json_object_and_json_schema(server, client):
    anything = chat(client, server, response_format={"type": "json_object"}).choices[0]
    assert anything.finish_reason == "stop" and isinstance(json.loads(anything.message.content), dict)
    schema = City.model_json_schema()
    city = chat(client, server, messages=[{"role": "user", "content": "Describe the city of Paris as JSON."}],
                response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema,
                                                                        "strict": True}}).choices[0]
    assert city.finish_reason == "stop"
    jsonschema.validate(json.loads(city.message.content), schema)


def test_parse_returns_the_pydantic_object(server, client):
    reply = client.chat.completions.parse(
        model=server.model_id, max_tokens=96, temperature=0, response_format=City,
        messages=[{"role": "user", "content": "Give me a JSON object describing the city of Paris with name, country "
                                              "and population."}])
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, City) and parsed.name


def test_structured_outputs_extra_field_streamed(server, client):
    stream = chat(client, server, messages=[{"role": "user", "content": "Is the sky blue?"}], stream=True,
                  extra_body={"structured_outputs": {"choice": ["yes", "no"]}})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) in ("yes", "no")
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completions_take_response_format_and_structured_outputs(server, client):
    people = '{"name": "Alice", "age": 30}\n{"name": "Bob", "age": 25}\n'
    reply = client.completions.create(model=server.model_id, prompt=people,
                                      max_tokens=64, temperature=0,
                                      extra_body={"response_format": {"type": "json_object"}})  # not in the client's signature
    assert reply.choices[0].finish_reason == "stop" and isinstance(json.loads(reply.choices[0].text), dict)
    reply = client.completions.create(model=server.model_id, prompt="A year:", max_tokens=8, temperature=1.0, seed=3,
                                      extra_body={"structured_outputs": {"regex": "(19|20)[0-9]{2}"}})
    assert re.fullmatch("(19|20)[0-9]{2}", reply.choices[0].text)


def test_a_bad_constraint_is_a_400_naming_the_field(server, client):
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, server, extra_body={"structured_outputs": {"regex": "a(b"}})
    assert refused.value.body["param"] == "structured_outputs"
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, server, response_format={"type": "json_object"}, extra_body={"structured_outputs": {"regex": "a"}})
    assert refused.value.status_code == 400


@pytest.mark.parametrize("stream", [False, True])
def test_required_tool_choice_returns_calls_that_match_the_tools(server, client, stream):
    reply = chat(client, server, tools=[WEATHER, TIME], tool_choice="required", stream=stream)
    calls, finish = collect(reply, stream)
    assert finish == "tool_calls" and calls
    for call in calls:
        tool = {"get_weather": WEATHER, "get_time": TIME}[call["name"]]
        jsonschema.validate(json.loads(call["arguments"]), tool["function"]["parameters"])
        assert call["id"].startswith("call_")


@pytest.mark.parametrize("stream", [False, True])
def test_named_tool_choice_calls_that_function(server, client, stream):
    reply = chat(client, server, tools=[WEATHER, TIME], stream=stream, parallel_tool_calls=False,
                 tool_choice={"type": "function", "function": {"name": "get_weather"}})
    calls, finish = collect(reply, stream)
    assert finish == "tool_calls" and [c["name"] for c in calls] == ["get_weather"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER["function"]["parameters"])


def test_tool_choice_none_answers_in_text(server, client):
    choice = chat(client, server, tools=[WEATHER], tool_choice="none", max_tokens=8).choices[0]
    assert choice.message.tool_calls is None and choice.message.content


@pytest.mark.parametrize("stream", [False, True])
def test_auto_reads_the_models_hermes_calls(server, client, stream):
    reply = chat(client, server, tools=[WEATHER, TIME], stream=stream, extra_body={"structured_outputs": {
        "regex": HERMES_CALL}})
    calls, finish = collect(reply, stream)
    assert finish == "tool_calls" and [c["name"] for c in calls] == ["get_weather"]
    assert json.loads(calls[0]["arguments"])["unit"] == "celsius"


@pytest.mark.parametrize("stream", [False, True])
def test_auto_reads_llama3_json_calls(smollm2_folder, stream):
    call = r'\{"name": "get_time", "parameters": \{"zone": "(UTC|CET)"\}\}'
    with running(create_app(str(smollm2_folder), tool_call_parser="llama3_json", **SMALL_ENGINE)) as server:
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=120, max_retries=0) as client:
            reply = chat(client, server, tools=[WEATHER, TIME], stream=stream,
                         extra_body={"structured_outputs": {"regex": call}})
            calls, finish = collect(reply, stream)
    assert finish == "tool_calls" and [c["name"] for c in calls] == ["get_time"]
    assert json.loads(calls[0]["arguments"])["zone"] in ("UTC", "CET")


def collect(reply, stream: bool) -> tuple[list[dict], str]:
    """(calls as {"id", "name", "arguments"}, finish reason) of a reply or a stream of chunks, the
    stream's deltas accumulated by index as OpenAI's clients do."""
    if not stream:
        choice = reply.choices[0]
        calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                 for c in choice.message.tool_calls or []]
        return calls, choice.finish_reason
    calls: dict[int, dict] = {}
    finish = None
    for chunk in reply:
        choice = chunk.choices[0]
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
        finish = choice.finish_reason or finish
    return [calls[i] for i in sorted(calls)], finish
