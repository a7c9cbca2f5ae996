"""Empty answers are failed attempts with no cooldown; a stream is judged on its first event,
before a byte reaches the client; every member empty gives the last empty answer unchanged."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartProxy, Upstream, base_yaml, read_sse

GEN = "/v1beta/models/default:generateContent"
STREAM = "/v1beta/models/default:streamGenerateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


async def _post(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(url, json=BODY) as r:
        return r.status, dict(r.headers), await r.read()


async def _json(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        out: dict[str, Any] = await r.json()
        return out


@pytest.mark.parametrize("kind", ["none", "other", "malformed_function_call"])
async def test_an_empty_answer_moves_on_with_no_cooldown(
    start_proxy: StartProxy, upstream: Upstream, kind: str
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"empty": kind})
    status, headers, body = await _post(proxy.url + GEN)
    assert status == 200
    assert headers["x-l104-model"] == "m2"
    assert headers["x-l104-attempts"] == "2"
    assert json.loads(body)["candidates"][0]["content"]["parts"][0]["text"] == "Hello from m2."
    health = await _json(f"{proxy.url}/health")
    assert health["models"]["m1"]["state"] == "ready"  # not its quota: nothing cools
    metrics = await _json(f"{proxy.url}/metrics")
    assert metrics["model_rotations"] == 1
    # The next request goes to m1 again, and it answers.
    status, headers, _ = await _post(proxy.url + GEN)
    assert headers["x-l104-model"] == "m1"


@pytest.mark.parametrize("sse", [True, False])
async def test_a_stream_is_judged_on_its_first_event(
    start_proxy: StartProxy, upstream: Upstream, sse: bool
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"empty": "other"})
    url = proxy.url + STREAM + ("?alt=sse" if sse else "")
    async with aiohttp.ClientSession() as s, s.post(url, json=BODY) as r:
        assert r.status == 200
        assert r.headers["x-l104-model"] == "m2"
        events = [data for _, data in await read_sse(r)] if sse else json.loads(await r.read())
    assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in events] == [
        f"part{i} from m2. " for i in range(3)
    ]


async def test_every_member_empty_gives_the_last_empty_answer_unchanged(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    for model in ("m1", "m2", "m3"):
        upstream.script(model, {"empty": "none"})
    status, headers, body = await _post(proxy.url + GEN)
    assert status == 200
    assert headers["x-l104-model"] == "m3"
    assert json.loads(body) == {
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "m3",
    }


async def test_a_blocked_prompt_or_a_safety_stop_is_an_answer(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"empty": "safety"})
    status, headers, _ = await _post(proxy.url + GEN)
    assert status == 200
    assert headers["x-l104-model"] == "m1"


async def test_without_empty_in_rotation_on_an_empty_answer_is_passed_on(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url, keys=("only-key",)).replace(
        "on: [429, 503, timeout, connect, empty]", "on: [429, 503]"
    )
    proxy = await start_proxy(yaml)
    upstream.script("m1", {"empty": "none"})
    status, headers, _ = await _post(proxy.url + GEN)
    assert status == 200
    assert headers["x-l104-model"] == "m1"
