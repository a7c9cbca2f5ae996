"""Global admission: a concurrency cap with a bounded wait, and a requests-per-second cap."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from proxy.config import Limits
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
        base_yaml(
            upstream.url,
            extra="limits: {max_concurrent: 2, max_concurrent_per_client: 0, queue_timeout_s: 0.2}",
        )
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


async def test_one_client_holds_its_share_of_slots_and_no_more(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    extra = (
        "limits: {max_concurrent: 8, max_concurrent_per_client: 2, queue_timeout_s: 0.2}\n"
        "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]"
    )
    proxy = await start_proxy(base_yaml(upstream.url, extra=extra))
    upstream.script("m1", {"hang": 1}, {"hang": 1})

    async def as_(key: str) -> int:
        async with (
            aiohttp.ClientSession() as s,
            s.post(proxy.url + URL, json={"contents": []}, headers={"x-goog-api-key": key}) as r,
        ):
            await r.read()
            return r.status

    alice = [asyncio.ensure_future(as_("alice-key")) for _ in range(3)]
    await asyncio.sleep(0.3)
    # Alice's third is refused at once, while bob still gets a slot of the six left.
    assert [t.done() for t in alice].count(True) == 1
    assert await as_("bob-key") == 200
    assert sorted(await asyncio.gather(*alice)) == [200, 200, 429]
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/metrics") as r:
        assert (await r.json())["rate_limited_by_client"] == {"alice": 1}


def test_the_default_share_is_a_quarter_of_the_slots() -> None:
    assert Limits(max_concurrent=256).per_client_slots == 64
    assert Limits(max_concurrent=2).per_client_slots == 1
    assert Limits(max_concurrent=0).per_client_slots == 0
    assert Limits(max_concurrent=256, max_concurrent_per_client=0).per_client_slots == 0


@pytest.mark.parametrize(
    ("clients", "refused"),
    [
        ("", 0),  # no clients: a loopback proxy's one user is not capped by default
        ("clients: [{name: alice, key: alice-key}]", 0),
        ("clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]", 2),
    ],
)
async def test_the_default_share_applies_where_there_are_clients_to_share_with(
    start_proxy: StartProxy, upstream: Upstream, clients: str, refused: int
) -> None:
    extra = f"limits: {{max_concurrent: 8, queue_timeout_s: 0.2}}\n{clients}"
    proxy = await start_proxy(base_yaml(upstream.url, extra=extra))
    upstream.script("m1", *({"hang": 0.5} for _ in range(4)))

    async def one() -> int:
        headers = {"x-goog-api-key": "alice-key"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(proxy.url + URL, json={"contents": []}, headers=headers) as r,
        ):
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(4)))
    assert statuses.count(429) == refused
