"""``/api/v6/usage`` over a month of ledger rows (timestamps made, not waited for): totals by
client, model, key and project, by hour or day, in JSON and CSV; a client sees its own only."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.conftest import Proxy, StartProxy, Upstream, base_yaml, ledger_rows

CLIENTS = "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]"
ADMIN = "listen: {host: 127.0.0.1, port: 0, admin_key: the-admin-key}"
START = 1_790_000_000.0  # a made Unix time (2026-09-21, UTC)
DAY = 86_400.0


def _row(
    at: float,
    client: str,
    requested: str,
    served: str,
    attempts: int,
    status: int,
    prompt: int,
    output: int,
    cached: int,
    key: int,
    project: str,
    usd: float,
) -> tuple[Any, ...]:
    """A ledger row in LEDGER_INSERT's column order (thoughts 5 where anything was cached)."""
    thoughts = 5 if cached else 0
    return (
        at,
        client,
        requested,
        served,
        attempts,
        status,
        prompt,
        output,
        2.0,
        0.0,
        "",
        cached,
        thoughts,
        0,
        0,
        key,
        project,
        usd,
        usd,
    )


def month_of_rows(db: Path) -> None:
    """30 days: each day alice makes two m1 calls (one refused with a 429 after a rotation)
    and bob one m2 call."""
    rows = []
    for day in range(30):
        at = START + day * DAY
        rows += [
            _row(at + 10, "alice", "default", "m1", 1, 200, 100, 10, 0, 0, "p-a", 0.01),
            _row(at + 20, "alice", "default", "m1", 2, 429, 0, 0, 0, 1, "p-b", 0.0),
            _row(at + 30, "bob", "m2", "m2", 1, 200, 200, 20, 50, 0, "p-a", 0.02),
        ]
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO ledger (at, client, requested, served, attempts, status, input_tokens, "
            "output_tokens, latency_ms, ttfb_ms, trace_id, cached_tokens, thoughts_tokens, "
            "tool_use_tokens, audio_tokens, key_index, project, cost_usd, list_cost_usd) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def get(proxy: Proxy, query: str, key: str) -> tuple[int, Any]:
    headers = {"x-goog-api-key": key} if key != "the-admin-key" else {"x-l104-admin-key": key}
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{proxy.url}/api/v6/usage?{query}", headers=headers) as r,
    ):
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


@pytest.fixture
async def month(start_proxy: StartProxy, upstream: Upstream, tmp_path: Path) -> Proxy:
    db = tmp_path / "l104.db"
    yaml = base_yaml(upstream.url, store=str(db), extra=CLIENTS).replace(
        "listen: {host: 127.0.0.1, port: 0}", ADMIN
    )
    proxy = await start_proxy(yaml)
    month_of_rows(db)
    return proxy


async def test_the_admin_sees_every_client_and_the_totals_add_up(month: Proxy) -> None:
    status, body = await get(month, "by=client", "the-admin-key")
    assert status == 200
    rows = {r["client"]: r for r in body["rows"]}
    assert rows["alice"]["requests"] == 60
    assert rows["alice"]["rate_limited"] == 30
    assert rows["alice"]["rotations"] == 30
    assert rows["alice"]["cost_usd"] == pytest.approx(0.30)
    assert rows["bob"]["input_tokens"] == 6_000
    assert rows["bob"]["cached_tokens"] == 1_500
    assert rows["bob"]["cost_usd"] == pytest.approx(0.60)
    status, by_project = await get(month, "by=project", "the-admin-key")
    assert {r["project"]: r["requests"] for r in by_project["rows"]} == {"p-a": 60, "p-b": 30}
    status, by_key = await get(month, "by=key", "the-admin-key")
    assert {r["key"] for r in by_key["rows"]} == {"p-a #0", "p-b #1"}


async def test_a_client_sees_its_own_by_day_and_within_bounds(month: Proxy) -> None:
    status, body = await get(month, "by=model&step=day", "alice-key")
    assert status == 200
    assert {r["model"] for r in body["rows"]} == {"m1"}  # bob's m2 is not alice's
    assert len(body["rows"]) == 30
    assert body["rows"][0]["at"] == int(START // DAY * DAY)
    assert all(r["requests"] == 2 for r in body["rows"])
    until = quote(datetime.fromtimestamp(START + 20 * DAY, UTC).isoformat())  # ISO or seconds
    status, ten_days = await get(month, f"by=client&from={START + 10 * DAY}&to={until}", "bob-key")
    assert [(r["client"], r["requests"]) for r in ten_days["rows"]] == [("bob", 10)]


async def test_csv_and_refusals(month: Proxy) -> None:
    status, text = await get(month, "by=client&step=hour&format=csv", "the-admin-key")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 60  # 30 days x (alice's hour, bob's hour)
    assert set(rows[0]) >= {"at", "client", "requests", "cost_usd"}
    status, refused = await get(month, "by=colour", "alice-key")
    assert status == 400
    assert refused["error"]["message"] == "'by' must be one of client, model, project, key."
    status, _ = await get(month, "by=client", "a-stranger")
    assert status == 403


async def test_a_call_through_the_proxy_shows_up(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db), extra=CLIENTS))
    await proxy.client(key="alice-key").aio.models.generate_content(model="m1", contents="hi")
    await ledger_rows(db, "client", 1)
    status, body = await get(proxy, "by=model", "alice-key")
    assert status == 200
    assert body["rows"][0]["model"] == "m1"
    assert body["rows"][0]["input_tokens"] == 8
