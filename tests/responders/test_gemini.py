"""The gemini responder against the fake upstream: keys, headers, timeouts, scrubbing."""

from __future__ import annotations

import aiohttp
import pytest

from proxy.errors import AttemptFailed
from proxy.responders import Call
from proxy.responders.gemini import GeminiResponder
from proxy.responders.gemini_spec import GeminiSpec
from tests.conftest import Upstream, free_port, key_shaped


async def test_key_goes_only_as_header_and_is_scrubbed_from_error_bodies(
    upstream: Upstream,
) -> None:
    secret = key_shaped("k")
    async with aiohttp.ClientSession() as session:
        responder = GeminiResponder(
            "up", GeminiSpec(base_url=upstream.url, api_keys=(secret,)), session
        )
        upstream.script("m1", {"status": 400, "echo_key": True})
        reply = await responder.send(
            Call("generateContent", "m1", headers={"user-agent": "sdk/1"}), 0
        )
    assert reply.status == 400
    assert secret.encode() not in reply.body
    assert b"[redacted]" in reply.body
    sent = upstream.requests("m1")[0]
    assert sent["headers"]["x-goog-api-key"] == secret
    assert sent["headers"]["user-agent"] == "sdk/1"
    assert sent["query"] == {}
    assert "key=" not in sent["path"]
    assert secret not in repr(responder.spec)


async def test_no_answer_is_an_attempt_failure(upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as session:
        dead = GeminiResponder(
            "up", GeminiSpec(base_url=f"http://127.0.0.1:{free_port()}", api_keys=("k",)), session
        )
        with pytest.raises(AttemptFailed) as info:
            await dead.send(Call("generateContent", "m1"), 0)
        assert info.value.kind == "connect"
        slow = GeminiResponder(
            "up", GeminiSpec(base_url=upstream.url, api_keys=("k",), timeout_s=0.2), session
        )
        upstream.script("m1", {"hang": 3})
        with pytest.raises(AttemptFailed) as info:
            await slow.send(Call("generateContent", "m1"), 0)
        assert info.value.kind == "timeout"
