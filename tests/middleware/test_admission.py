"""Global admission: a concurrency cap with a bounded wait, and a requests-per-second cap."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import StartProxy, Upstream, base_yaml

URL = "/v1beta/models/default:generateContent"


async def post(url: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.post(url, json={"contents": []}) as r:
        await r.read()
        return r.status, dict(r.headers)


async def test_concurrency_cap_waits_then_refuses(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(
        base_yaml(upstream.url, extra="limits: {max_concurrent: 2, queue_timeout_s: 0.2}")
    )
    upstream.script("m1", {"hang": 1}, {"hang": 1})
    results = await asyncio.gather(*(post(proxy.url + URL) for _ in range(3)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 429]
    refused = next(headers for status, headers in results if status == 429)
    assert refused["Retry-After"] == "1"
    assert len(upstream.requests()) == 2


async def test_requests_per_second_cap(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra="limits: {requests_per_second: 3}"))
    statuses = [(await post(proxy.url + URL))[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    proxy.clock.advance(1.01)
    assert (await post(proxy.url + URL))[0] == 200
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/metrics") as r:
        assert (await r.json())["rate_limited_by_client"] == {"anonymous": 2}
