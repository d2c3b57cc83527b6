"""Conversations are checked before a chat template ever sees them."""

import asyncio

import pytest

from sarathi_sdk import InvalidRequestError
from sarathi_sdk.admission import check_messages
from tests.engine.conftest import TIMEOUT, fake_engine


@pytest.mark.parametrize(
    "messages",
    ["hello", None, [], [1, 2], [{"content": "x"}], [{"role": "user"}], [{"role": "user", "content": 5}]],
)
def test_malformed_conversations_are_invalid_requests(messages):
    with pytest.raises(InvalidRequestError):
        check_messages(messages)


def test_a_well_formed_conversation_passes():
    messages = ({"role": "system", "content": ""}, {"role": "user", "content": "Hi"})
    assert check_messages(messages) == list(messages)


async def test_chat_without_a_tokenizer_is_an_invalid_request():
    async with asyncio.timeout(TIMEOUT):
        async with fake_engine() as engine:
            with pytest.raises(InvalidRequestError, match="chat needs a tokenizer"):
                await anext(engine.chat([{"role": "user", "content": "Hi"}]))
