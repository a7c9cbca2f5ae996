"""Files and counters across replicas: proxy processes on one real Redis, no common store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from google.genai import errors, types
from google.genai.interactions import Interaction

from tests.conftest import ProxyProcess, RedisServer, Upstream, base_yaml, http
from tests.surfaces.test_live_api import LIVE, session

StartProcess = Callable[..., ProxyProcess]
CLIENTS = "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]"


def _yaml(upstream: Upstream, redis: RedisServer) -> str:
    return base_yaml(upstream.url, extra=CLIENTS).replace(
        'store: {path: ""}', f'store: {{path: "", shared: "{redis.url}"}}'
    )


def test_a_file_uploaded_through_one_replica_is_used_through_another(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer, tmp_path: Path
) -> None:
    yaml = _yaml(upstream, redis_server)
    first, second = proxy_process(yaml), proxy_process(yaml)
    doc = tmp_path / "notes.txt"
    doc.write_bytes(b"L104 notes\n" * 100)
    uploader = first.client(key="alice-key")  # held: a client that is collected closes
    upload = uploader.files.upload(file=doc, config={"mime_type": "text/plain"})
    assert upload.uri is not None
    assert upload.name is not None
    uploaded_with = [
        r["headers"]["x-goog-api-key"] for r in upstream.requests() if r["action"] == "files.upload"
    ]
    alice = second.client(key="alice-key")
    part = types.Part.from_uri(file_uri=upload.uri, mime_type="text/plain")
    answer = alice.models.generate_content(model="default", contents=[part, "sum it up"])
    assert answer.text == "Hello from m1."
    used = [r for r in upstream.requests() if r["action"] == "generateContent"]
    assert used[-1]["headers"]["x-goog-api-key"] == uploaded_with[0]  # the file's own key
    assert alice.files.get(name=upload.name).uri == upload.uri
    assert [f.name for f in alice.files.list()] == [upload.name]
    bob = second.client(key="bob-key")
    with pytest.raises(errors.ClientError) as other:  # still alice's only
        bob.files.get(name=upload.name)
    assert other.value.code == 403


def test_the_registry_is_the_fleets(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    """A batch, a store and an interaction made through one replica are the same client's, on
    the same key, through another."""
    yaml = _yaml(upstream, redis_server)
    first, second = proxy_process(yaml), proxy_process(yaml)
    maker = first.client(key="alice-key")
    job = maker.batches.create(model="default", src=[types.InlinedRequest(contents="x")])
    store = maker.file_search_stores.create(config={"display_name": "docs"})
    talk = maker.interactions.create(model="default", input="hi")
    assert isinstance(talk, Interaction)
    assert job.name is not None
    assert store.name is not None
    assert talk.id is not None
    made = {
        r["action"]: r["headers"]["x-goog-api-key"]
        for r in upstream.requests()
        if r["action"] in ("batchGenerateContent", "groups.post", "interactions.create")
    }
    alice = second.client(key="alice-key")
    assert alice.batches.get(name=job.name).name == job.name
    assert [j.name for j in alice.batches.list()] == [job.name]
    assert [s.name for s in alice.file_search_stores.list()] == [store.name]
    follow = alice.interactions.create(
        model="default", input="more", previous_interaction_id=talk.id
    )
    assert isinstance(follow, Interaction)
    assert follow.status == "completed"
    polled = [r for r in upstream.requests() if r["action"] == "groups.get"]
    assert polled[0]["headers"]["x-goog-api-key"] == made["batchGenerateContent"]
    followed = [r for r in upstream.requests() if r["action"] == "interactions.create"][-1]
    assert followed["headers"]["x-goog-api-key"] == made["interactions.create"]
    bob = second.client(key="bob-key")
    with pytest.raises(errors.ClientError) as other:
        bob.batches.get(name=job.name)
    assert other.value.code == 403
    assert list(bob.file_search_stores.list()) == []


def test_metrics_on_any_replica_show_the_fleets_totals(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = _yaml(upstream, redis_server)
    proxies = [proxy_process(yaml) for _ in range(3)]
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    for proxy, count in zip(proxies, (5, 7, 3), strict=True):
        for _ in range(count):
            status, _, _ = http(
                "POST",
                f"{proxy.url}/v1beta/models/default:generateContent",
                body,
                {"x-goog-api-key": "alice-key"},
            )
            assert status == 200
    deadline = time.monotonic() + 5
    while True:  # each replica adds its counts to the fleet's once a second
        totals = [json.loads(http("GET", f"{p.url}/metrics")[2]) for p in proxies]
        if all(t["requests_total"] == 15 for t in totals) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for metrics in totals:
        assert metrics["scope"] == "fleet"
        assert metrics["requests_total"] == 15
        assert metrics["model_usage"] == {"m1": 15}
    status = json.loads(http("GET", f"{proxies[2].url}/api/v6/status")[2])
    assert status["counts"]["requests_total"] == 15  # the status page shows the fleet too


async def test_live_sessions_are_capped_across_replicas(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = _yaml(upstream, redis_server).replace(
        "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]",
        "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]\n"
        "limits: {max_live_sessions: 1}",
    )
    first = await asyncio.to_thread(proxy_process, yaml)
    second = await asyncio.to_thread(proxy_process, yaml)
    s, ws, setup = await session(first.url, key="alice-key")
    assert setup == {"setupComplete": {}}
    async with aiohttp.ClientSession() as other:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await other.ws_connect(
                second.url + LIVE.format(v="v1beta"), headers={"x-goog-api-key": "alice-key"}
            )
        assert refused.value.status == 429  # alice's one session is open on the other replica
    await ws.close()
    await s.close()
    await asyncio.sleep(0.3)  # the close reaches the fleet's count
    s, ws, setup = await session(second.url, key="alice-key")
    assert setup == {"setupComplete": {}}
    await ws.close()
    await s.close()


def test_a_budget_holds_across_three_replicas(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    """Each answer costs $0.000038 and each request (43 bytes) is estimated at $0.00001: a
    $0.000195 day takes five (the sixth would find 0.00019 + 0.00001 spent), whichever replicas
    they go to (on their own, three replicas would take 15)."""
    budget = """
clients: [{name: alice, key: alice-key, budget: {usd_per_day: 0.000195}}]
pricing: {m1: {input: 1.0, output: 10.0}}
"""
    yaml = base_yaml(upstream.url, extra=budget).replace(
        'store: {path: ""}', f'store: {{path: "", shared: "{redis_server.url}"}}'
    )
    replicas = [proxy_process(yaml) for _ in range(3)]
    statuses = []
    told: list[int] = []
    for i in range(9):
        status, headers, _ = http(
            "POST",
            f"{replicas[i % 3].url}/v1beta/models/m1:generateContent",
            {"contents": [{"parts": [{"text": "hi"}]}]},
            {"x-goog-api-key": "alice-key"},
        )
        statuses.append(status)
        if status == 429:
            told.append(int(headers["Retry-After"]))
        time.sleep(0.05)  # the real cost replaces the estimate in Redis without waiting
    assert statuses == [200] * 5 + [429] * 4
    midnight = 86_400 - time.time() % 86_400  # the day ends at midnight UTC (budgets.timezone)
    assert all(abs(wait - midnight) < 5 for wait in told), (told, midnight)
    assert len([r for r in upstream.requests() if r["model"] == "m1"]) == 5
