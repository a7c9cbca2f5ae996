"""/health, /ready and /metrics."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartProxy, Upstream, base_yaml


async def get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.json()


async def test_health_turns_degraded_when_a_member_cools(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    status, body = await get(f"{proxy.url}/health")
    assert status == 200
    config = body.pop("config")
    assert isinstance(config, dict)
    assert (config["version"], len(config["digest"])) == (1, 12)
    assert config["file"].endswith(".yaml")
    assert body == {
        "status": "ok",
        "models": {
            m: {"state": "ready", "cooldown_s": 0.0, "keys": [{"key": 0, "state": "ready"}]}
            for m in ("m1", "m2", "m3")
        },
        "chains": {
            "default": {
                "members": ["up:m1", "up:m2", "up:m3"],
                "aliases": [],
                "sticky_turn": False,
            }
        },
    }
    upstream.script("m1", {"status": 429, "delay": "30s"})
    await proxy.client().aio.models.generate_content(model="default", contents="x")
    _, body = await get(f"{proxy.url}/health")
    assert body["status"] == "degraded"
    assert body["models"]["m1"] == {  # type: ignore[index]
        "state": "cooling",
        "cooldown_s": 30.0,
        "keys": [{"key": 0, "state": "cooling", "cooldown_s": 30.0}],
        # The 429 said the quota is 20 a minute (QuotaFailure.quotaValue): now it is the pace.
        # The refused call itself does not count against it (the upstream did not count it).
        "pace": {"requests_per_minute": 20.0, "sent_last_minute": 0, "source": "quota"},
    }


async def test_health_shows_each_key_and_a_partial_model(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"status": 429, "delay": "30s"})
    await proxy.client().aio.models.generate_content(model="default", contents="x")
    _, body = await get(f"{proxy.url}/health")
    m1 = body["models"]["m1"]  # type: ignore[index]
    assert m1["state"] == "partial"  # key 0 cools, key 1 serves
    assert m1["keys"] == [
        {"key": 0, "state": "cooling", "cooldown_s": 30.0},
        {"key": 1, "state": "ready"},
    ]
    assert "key-a-upstream" not in str(body)


async def test_metrics_has_the_contract_fields(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    proxy.clock.advance(0)
    _, body = await get(f"{proxy.url}/metrics")
    assert set(body) == {
        "model_rotations",
        "model_skips",
        "signature_repairs",
        "model_usage",
        "model_429_count",
        "requests_total",
        "rate_limited_total",
        "rate_limited_by_client",
        "uptime_s",
        "resources",
    }
    assert body["resources"] == {"files": 0, "cached_contents": 0, "live_sessions": 0}
    assert body["requests_total"] == 0
    assert body["model_usage"] == {}
    assert isinstance(body["uptime_s"], float)


async def test_ready_answers_503_while_draining(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    assert (await get(f"{proxy.url}/ready"))[0] == 200
    await proxy.app.shutdown()
    status, body = await get(f"{proxy.url}/ready")
    assert (status, body) == (503, {"status": "draining"})
