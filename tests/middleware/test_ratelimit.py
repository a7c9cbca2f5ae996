"""Per-client limits through the SDK: one client over its limit, the other untouched."""

from __future__ import annotations

import aiohttp
import pytest
from google.genai import errors

from tests.conftest import StartProxy, Upstream, base_yaml

CLIENTS = """clients:
  - {name: alice, key: "alice-key", requests_per_minute: 3}
  - {name: bob, key: "bob-key", requests_per_minute: 100}
  - {name: carol, key: "carol-key", tokens_per_minute: 40}
"""
URL = "/v1beta/models/default:generateContent"


async def test_one_client_over_its_limit_does_not_touch_another(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    alice = proxy.client(key="alice-key")
    for _ in range(3):
        proxy.clock.advance(10)
        await alice.aio.models.generate_content(model="default", contents="x")
    with pytest.raises(errors.ClientError) as info:
        await alice.aio.models.generate_content(model="default", contents="x")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert "alice" in (info.value.message or "")
    async with aiohttp.ClientSession() as s:
        async with s.post(
            proxy.url + URL, headers={"x-goog-api-key": "alice-key"}, json={"contents": []}
        ) as r:
            assert r.status == 429
            # Alice came at t+10, t+20 and t+30: the first leaves the window at t+70, in 40 s.
            assert r.headers["Retry-After"] == "40"
        for _ in range(5):
            async with s.post(
                proxy.url + URL, headers={"x-goog-api-key": "bob-key"}, json={"contents": []}
            ) as r:
                assert r.status == 200
        async with s.get(f"{proxy.url}/metrics") as r:
            metrics = await r.json()
    assert metrics["rate_limited_total"] == 2
    assert metrics["rate_limited_by_client"] == {"alice": 2}
    assert len(upstream.requests()) == 8
    proxy.clock.advance(40)
    await alice.aio.models.generate_content(model="default", contents="x")


async def test_tokens_are_settled_against_usage_metadata(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    carol = proxy.client(key="carol-key")
    # Each answer reports totalTokenCount 11: three fit in 40 tokens a minute, a fourth does not.
    for _ in range(3):
        await carol.aio.models.generate_content(model="default", contents="x")
    with pytest.raises(errors.ClientError) as info:
        await carol.aio.models.generate_content(model="default", contents="x")
    assert info.value.code == 429
    assert "tokens-per-minute" in (info.value.message or "")
    proxy.clock.advance(61)
    await carol.aio.models.generate_content(model="default", contents="x")
