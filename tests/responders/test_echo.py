"""The echo responder repeats the last user text."""

from __future__ import annotations

from google.genai import types

from tests.conftest import StartProxy, Upstream, base_yaml


async def test_echo_repeats_the_last_user_turn(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["mirror"]'))
    contents = [
        types.Content(role="user", parts=[types.Part(text="first")]),
        types.Content(role="model", parts=[types.Part(text="answer")]),
        types.Content(role="user", parts=[types.Part(text="second "), types.Part(text="turn")]),
    ]
    response = await proxy.client().aio.models.generate_content(model="default", contents=contents)
    assert response.text == "second turn"
    stream = await proxy.client().aio.models.generate_content_stream(
        model="default", contents="abc"
    )
    assert "".join([c.text or "" async for c in stream]) == "abc"
