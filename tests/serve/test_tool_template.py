"""Tools reach the chat template, and a conversation carries tool calls and their results back: on a
tiny random model whose template renders them as Qwen2.5's does (`tests.structured.tiny`)."""

from __future__ import annotations

import asyncio

import openai
import pytest

from sarathi_sdk import Engine, SamplingParams, hookimpl
from sarathi_sdk.serve import create_app
from tests.serve.helpers import running
from tests.structured.tiny import TOOL_TEMPLATE, tiny_folder

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TURNS = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "-3 C, snow"},
]


class Prompts:
    """Records every admitted prompt."""

    def __init__(self) -> None:
        self.token_ids: list[list[int]] = []

    @hookimpl
    def sarathi_on_request_added(self, prompt_token_ids):
        self.token_ids.append(list(prompt_token_ids))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_folder(tmp_path_factory.mktemp("tool-template"), TOOL_TEMPLATE)


async def test_tools_and_tool_turns_reach_the_template(folder):
    prompts = Prompts()
    async with asyncio.timeout(120):
        async with Engine(str(folder), plugins=[prompts]) as engine:
            messages = [dict(TURNS[0]), {**TURNS[1], "tool_calls": [{**TURNS[1]["tool_calls"][0], "function": {
                "name": "get_weather", "arguments": {"city": "Oslo"}}}]}, TURNS[2]]
            [o async for o in engine.chat(messages, SamplingParams(max_tokens=2), tools=[WEATHER])]
            [o async for o in engine.chat(TURNS[:1], SamplingParams(max_tokens=2))]
            with_tools, without = (engine.tokenizer.decode(ids) for ids in prompts.token_ids)
    assert '"name": "get_weather"' in with_tools and '"required": ["city"]' in with_tools
    assert '{"name": "get_weather", "arguments": {"city": "Oslo"}}' in with_tools
    assert "<tool_response>\n-3 C, snow\n</tool_response>" in with_tools
    assert "# Tools" not in without


def test_a_tool_result_round_trip_through_the_server(folder):
    prompts = Prompts()
    with running(create_app(str(folder), tool_call_parser="hermes", plugins=[prompts])) as server:
        with openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=60, max_retries=0) as client:
            reply = client.chat.completions.create(model=server.model_id, messages=TURNS, tools=[WEATHER],
                                                   tool_choice="none", max_tokens=4, temperature=0)
            rendered = server.engine.tokenizer.decode(prompts.token_ids[-1])
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert '{"name": "get_weather", "arguments": {"city": "Oslo"}}' in rendered  # arguments as JSON, once
    assert "-3 C, snow" in rendered
