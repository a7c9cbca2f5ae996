"""``/metrics/prometheus``: the figures of ``/metrics`` and more, in Prometheus text format."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartProxy, Upstream, base_yaml


async def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics/prometheus") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        v for (got, v) in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())
    )


async def test_prometheus_figures(start_proxy: StartProxy, upstream: Upstream) -> None:
    clients = 'clients:\n  - {name: tiny, key: "tiny-key", requests_per_minute: 2}'
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), extra=clients))
    upstream.script("m1", {"status": 429, "delay": "40s", "value": "7"})
    client = proxy.client(key="tiny-key")
    await client.aio.models.generate_content(model="default", contents="x")
    stream = await client.aio.models.generate_content_stream(model="default", contents="x")
    _ = [c async for c in stream]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/default:generateContent",
            headers={"x-goog-api-key": "tiny-key"},
            json={"contents": []},
        ) as r,
    ):
        assert r.status == 429
    m = await scrape(proxy.url)
    route = "/v1beta/models/{target}"
    assert value(m, "l104_requests_total", route=route, status="200") == 2
    assert value(m, "l104_requests_total", route=route, status="429") == 1
    assert value(m, "l104_request_duration_seconds_count", route=route) == 3
    assert value(m, "l104_time_to_first_byte_seconds_count", route=route) == 2
    assert value(m, "l104_upstream_attempts_total", model="m1", outcome="429") == 1
    assert value(m, "l104_upstream_attempts_total", model="m2", outcome="200") == 2
    assert value(m, "l104_upstream_429_total", model="m1") == 1
    # One move (m1's 429, then m2); the stream that passed by the cooling m1 made none.
    assert value(m, "l104_rotations_total") == 1
    assert value(m, "l104_rate_limited_total", client="tiny", limit="requests-per-minute") == 1
    assert value(m, "l104_requests_in_flight") == 0
    assert value(m, "process_start_time_seconds") > 0
    assert 39 < value(m, "l104_cooldown_seconds", model="m1") <= 40
    assert value(m, "l104_model_ready", model="m1") == 0
    assert value(m, "l104_model_ready", model="m2") == 1
    assert value(m, "l104_learned_pace_requests_per_minute", model="m1") == 7
