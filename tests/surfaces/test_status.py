"""The status page's files, JSON snapshot and live feed."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import StartProxy, Upstream, base_yaml


async def test_page_and_files_have_security_headers(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    async with aiohttp.ClientSession() as s:
        for path, kind in (
            ("/", "text/html"),
            ("/static/app.js", "javascript"),
            ("/static/app.css", "text/css"),
        ):
            async with s.get(proxy.url + path) as r:
                assert r.status == 200
                assert kind in r.headers["Content-Type"]
                csp = r.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp
                assert "unsafe-inline" not in csp
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["X-Frame-Options"] == "DENY"
                body = await r.text()
                assert "<script>" not in body  # no inline script anywhere


async def test_snapshot_shows_chains_states_and_counts(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "50s"})
    await proxy.client().aio.models.generate_content(model="default", contents="x")
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/api/v6/status") as r:
        snap = await r.json()
    members = {m["model"]: m for m in snap["chains"][0]["members"]}
    assert snap["chains"][0]["name"] == "default"
    assert members["m1"]["state"] == "cooling"
    assert members["m1"]["cooldown_s"] == 50.0
    assert members["m2"]["state"] == "ready"
    assert snap["counts"]["model_rotations"] == 1
    assert snap["auth"] is False


async def test_events_feed_sends_snapshot_then_changes(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/api/v6/events") as r:
        assert (await r.content.readuntil(b"\r\n\r\n")).startswith(b"event: snapshot")
        upstream.script("m1", {"status": 429, "delay": "50s"})
        await proxy.client().aio.models.generate_content(model="default", contents="x")
        seen: list[tuple[str, dict[str, object]]] = []
        async with asyncio.timeout(5):
            while not any(name == "state" for name, _ in seen):
                block = (await r.content.readuntil(b"\r\n\r\n")).decode()
                name = block.split("\r\n")[0].removeprefix("event: ")
                data = json.loads(block.split("data: ", 1)[1])
                seen.append((name, data))
    change = next(data for name, data in seen if name == "state")
    assert change["model"] == "m1"
    assert (change["from"], change["state"]) == ("ready", "cooling")
