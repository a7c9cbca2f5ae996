"""Limits held exactly across replicas: three proxy processes on one real Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import aiohttp

from tests.conftest import ProxyProcess, RedisServer, Upstream, base_yaml

StartProcess = Callable[..., ProxyProcess]
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}


def _yaml(upstream: Upstream, redis: RedisServer, chains: str, extra: str = "") -> str:
    return base_yaml(upstream.url, keys=("only-key",), chains=chains, extra=extra).replace(
        'store: {path: ""}', f'store: {{path: "", shared: "{redis.url}"}}'
    )


def _client_limit_yaml(upstream: Upstream, redis: RedisServer, rpm: int) -> str:
    """One member, and the client ``app`` (key ``app-key``) limited to ``rpm``."""
    return _yaml(
        upstream,
        redis,
        'default: ["up:m1"]',
        f'clients: [{{name: app, key: "app-key", requests_per_minute: {rpm}}}]',
    )


async def _replicas(start: StartProcess, yaml: str, count: int = 3) -> list[str]:
    """``count`` proxy processes on one config (one Redis); their URLs."""
    return [(await asyncio.to_thread(start, yaml)).url for _ in range(count)]


async def _burst(urls: list[str], count: int, headers: dict[str, str]) -> Counter[int]:
    """``count`` requests spread over the replicas, all at once."""
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> int:
            url = f"{urls[i % len(urls)]}/v1beta/models/default:generateContent"
            async with session.post(url, json=BODY, headers=headers) as r:
                await r.read()
                return r.status

        return Counter(await asyncio.gather(*(one(i) for i in range(count))))


async def test_a_clients_limit_holds_exactly_across_three_replicas(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = _client_limit_yaml(upstream, redis_server, rpm=10)
    urls = await _replicas(proxy_process, yaml)
    statuses = await _burst(urls, 30, {"x-goog-api-key": "app-key"})
    assert statuses == Counter({200: 10, 429: 20})  # 10 in all, not 10 each


async def test_a_declared_rpm_holds_across_three_replicas(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = _yaml(upstream, redis_server, 'default: [{member: "up:m1", rpm: 6}, "up:m2"]')
    statuses = await _burst(await _replicas(proxy_process, yaml), 18, {})
    assert statuses == Counter({200: 18})
    assert len(upstream.requests("m1")) == 6  # the fleet sent m1 its quota, and no more
    assert len(upstream.requests("m2")) == 12


async def test_workers_on_one_host_share_the_limit(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = _client_limit_yaml(upstream, redis_server, rpm=8)
    proxy = await asyncio.to_thread(proxy_process, yaml, args=("--workers", "2"))
    statuses = await _burst([proxy.url], 24, {"x-goog-api-key": "app-key"})
    assert statuses == Counter({200: 8, 429: 16})
    assert await asyncio.to_thread(proxy.stop) == 0
    assert "without store.shared" not in proxy.log.read_text()


async def test_leases_never_admit_past_the_limit_and_give_back_what_they_hold(
    redis_server: RedisServer,
) -> None:
    from proxy.shared.link import Link
    from proxy.shared.windows import LaneLimits, Windows

    links = [Link(redis_server.url) for _ in range(3)]  # three replicas' links
    runs = [asyncio.create_task(link.run()) for link in links]
    try:
        assert all([await link.connected(5) for link in links])
        windows = [Windows(link) for link in links]
        limits = LaneLimits(rpm=1000)
        assert limits.lease() == 20
        admitted = 0
        for i in range(1500):  # the replicas in turn, far past the limit
            taken = await windows[i % 3].take("c:lease", limits, 0)
            assert taken is not None
            admitted += taken[2] is not None
        assert 990 <= admitted <= 1000  # never past it; at most a few slots still leased
        for w in windows:  # leases end: what they held comes back, to the last slot
            for lease in w._leases.values():
                lease.ends = 0
            w.expire()
            await w.link.settle()
        for i in range(30):
            taken = await windows[i % 3].take("c:lease", limits, 0)
            assert taken is not None
            admitted += taken[2] is not None
        assert admitted == 1000
        count = int(redis_server.command("ZCARD", "l104:w:c:lease:r"))
        assert count == 1000
    finally:
        for run in runs:
            run.cancel()
        for link in links:
            await link.close()
