"""Tool calls, without a model: the checks on `tools` / `tool_choice`, the schema a forced choice
constrains the output to, the Hermes and Llama 3 parsers (streamed in pieces that split their
markers), and the replies and stream deltas each choice makes."""

from __future__ import annotations

import json

import jsonschema
import pytest

from sarathi_sdk.serve.errors import APIError
from sarathi_sdk.serve.tool_calls import HermesParser, Llama3JsonParser, ToolReply, tool_choice

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time"}}


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def feed_all(parser, text: str, size: int = 3):
    content, calls = "", []
    for piece in pieces(text, size):
        more, made = parser.feed(piece)
        content += more
        calls += made
    more, made = parser.finish()
    return content + more, calls + made


@pytest.mark.parametrize("tools, choice, parser, param", [
    (None, "required", None, "tool_choice"),
    ([WEATHER, WEATHER], "required", None, "tools"),
    ([WEATHER], {"type": "function", "function": {"name": "nope"}}, None, "tool_choice"),
    ([WEATHER], "auto", None, "tool_choice"),
    ([WEATHER], None, None, "tool_choice"),
])
def test_tool_requests_that_cannot_be_served_are_400s_naming_the_field(tools, choice, parser, param):
    with pytest.raises(APIError) as refused:
        tool_choice(tools, choice, None, parser)
    assert refused.value.status == 400 and refused.value.param == param


def test_no_tools_is_no_tool_choice_and_auto_is_the_default_with_a_parser():
    assert tool_choice(None, None, None, None) is None and tool_choice([], "none", None, None) is None
    assert tool_choice([WEATHER], None, None, "hermes").kind == "auto"


def test_required_constrains_to_an_array_of_calls_of_the_tools():
    schema = json.loads(tool_choice([WEATHER, TIME], "required", None, None).constraint().json)
    jsonschema.validate([{"name": "get_weather", "parameters": {"city": "Oslo"}}, {"name": "get_time", "parameters": {}}],
                        schema)
    for bad in ([], [{"name": "get_news", "parameters": {}}], [{"name": "get_weather", "parameters": {}}]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    single = json.loads(tool_choice([WEATHER, TIME], "required", False, None).constraint().json)
    assert single["maxItems"] == 1


def test_a_named_function_constrains_to_its_arguments():
    choice = tool_choice([WEATHER, TIME], {"type": "function", "function": {"name": "get_time"}}, None, None)
    assert json.loads(choice.constraint().json) == {"type": "object", "properties": {}}
    assert [(c.name, c.arguments) for c in choice.forced_calls('{}')] == [("get_time", "{}")]


@pytest.mark.parametrize("size", [1, 3, 7, 100])
def test_hermes_calls_are_read_from_pieces_that_split_the_markers(size):
    text = ('Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
            '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    content, calls = feed_all(HermesParser(), text, size)
    assert content == "Let me check. "
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"}), ("get_time", {})]


def test_hermes_keeps_text_that_is_no_call_as_content():
    text = "a < b and <tool_call>not json</tool_call> and <tool_ca"
    assert feed_all(HermesParser(), text) == (text, [])


@pytest.mark.parametrize("text, names", [
    ('{"name": "get_weather", "parameters": {"city": "Oslo"}}', ["get_weather"]),
    ('<|python_tag|>{"name": "get_time", "parameters": {}}; {"name": "get_weather", "parameters": {"city": "A"}}',
     ["get_time", "get_weather"]),
])
def test_llama3_json_calls(text, names):
    content, calls = feed_all(Llama3JsonParser(), text)
    assert content == "" and [c.name for c in calls] == names


def test_llama3_json_streams_plain_content_at_once_and_keeps_bad_json_as_content():
    parser = Llama3JsonParser()
    assert parser.feed("Hello") == ("Hello", [])
    assert feed_all(Llama3JsonParser(), '{"name": oops') == ('{"name": oops', [])


def test_required_reply_and_stream_make_the_same_calls():
    choice = tool_choice([WEATHER], "required", None, None)
    text = '[{"name": "get_weather", "parameters": {"city": "Oslo"}}]'
    message, finish = ToolReply(choice, None).message(text, "stop")
    assert finish == "tool_calls" and message["content"] is None
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]] == [
        ("get_weather", {"city": "Oslo"})]
    streaming = ToolReply(choice, None)
    assert all(streaming.deltas(piece) == [] for piece in pieces(text))
    deltas, finish = streaming.finish("stop")
    assert finish == "tool_calls" and deltas[0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert ToolReply(choice, None).message(text[:10], "length") == ({"role": "assistant", "content": text[:10]}, "length")


def test_named_stream_sends_the_name_then_the_arguments_as_they_come():
    choice = tool_choice([WEATHER], {"type": "function", "function": {"name": "get_weather"}}, None, None)
    reply = ToolReply(choice, None)
    deltas = [d for piece in pieces('{"city": "Oslo"}') for d in reply.deltas(piece)]
    assert deltas[0]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas) == '{"city": "Oslo"}'
    assert {d["tool_calls"][0]["index"] for d in deltas} == {0}
    assert reply.finish("stop") == ([], "tool_calls")


def test_auto_streams_content_then_indexed_calls():
    reply = ToolReply(tool_choice([WEATHER, TIME], "auto", None, "hermes"), "hermes")
    text = 'Sure.<tool_call>{"name": "get_time", "arguments": {}}</tool_call><tool_call>{"name": "get_weather", ' \
           '"arguments": {"city": "B"}}</tool_call>'
    deltas = [d for piece in pieces(text, 5) for d in reply.deltas(piece)]
    held, finish = reply.finish("stop")
    deltas += held
    assert "".join(d.get("content", "") for d in deltas) == "Sure."
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "get_time"), (1, "get_weather")]
    assert finish == "tool_calls"
    plain = ToolReply(tool_choice([WEATHER], "auto", None, "hermes"), "hermes")
    assert plain.message("Just text.", "stop") == ({"role": "assistant", "content": "Just text."}, "stop")
