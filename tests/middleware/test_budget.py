"""Client budgets through the proxy: a client over its day's money or tokens is refused with
Gemini's 429 and the wait until the period resets; the spent amounts survive a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from google.genai import errors

from proxy.billing.budgets import Spending, period_keys, until_reset
from tests.conftest import StartProxy, Upstream, base_yaml

CLIENTS = """
clients:
  - {name: thrifty, key: thrifty-key, budget: {usd_per_day: 0.0001}}
  - {name: wordy, key: wordy-key, budget: {tokens_per_day: 30}}
  - {name: free, key: free-key}
pricing:
  m1: {input: 1.0, output: 10.0}
"""


async def test_a_client_past_its_budget_is_refused_until_the_period_resets(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS, store=str(db)))
    thrifty = proxy.client(key="thrifty-key").aio
    # Each answer: 8 in at $1/M + 3 out at $10/M = $0.000038; the day's budget is $0.0001.
    for _ in range(2):
        await thrifty.models.generate_content(model="m1", contents="hi")
    await thrifty.models.generate_content(model="m1", contents="hi")  # 0.000076 + estimate fits
    before = len(upstream.requests())
    with pytest.raises(errors.ClientError) as refused:
        await thrifty.models.generate_content(model="m1", contents="hi")
    assert refused.value.code == 429
    assert "usd_per_day" in str(refused.value.message)
    details = refused.value.details["error"]["details"]
    violation = next(d for d in details if "QuotaFailure" in d["@type"])["violations"][0]
    assert violation["subject"] == "clients/thrifty"
    retry = next(d for d in details if "RetryInfo" in d["@type"])["retryDelay"]
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86_400
    assert abs(int(retry.rstrip("s")) - (midnight - now.timestamp())) < 5
    assert len(upstream.requests()) == before  # refused before anything went upstream
    async with aiohttp.ClientSession() as s:
        chat = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
        async with s.post(
            f"{proxy.url}/v1beta/openai/chat/completions",
            json=chat,
            headers={"Authorization": "Bearer thrifty-key"},
        ) as r:
            assert r.status == 429
            assert (await r.json())["error"]["type"] == "rate_limit_error"  # OpenAI's shape
            assert int(r.headers["Retry-After"]) > 0

    wordy = proxy.client(key="wordy-key").aio
    # Each answer is 11 tokens; each request is estimated at a token for 4 bytes (13 here).
    await wordy.models.generate_content(model="m1", contents="hi")  # 0 + 13 fits 30
    await wordy.models.generate_content(model="m1", contents="hi")  # 11 + 13 fits
    with pytest.raises(errors.ClientError) as over:  # 22 + 13 would not
        await wordy.models.generate_content(model="m1", contents="hi")
    assert "has spent 22 of its tokens_per_day budget (30)" in str(over.value.message)
    # A client with no budget is never asked.
    for _ in range(5):
        await proxy.client(key="free-key").aio.models.generate_content(model="m1", contents="x")

    # Spent amounts are in the store, by client and period.
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/health") as r:
        assert r.status == 200
    day, month = period_keys(datetime.now(UTC).timestamp(), UTC_ZONE)
    for _ in range(50):
        with sqlite3.connect(db) as conn:
            spent = dict(
                ((c, p), (u, t))
                for c, p, u, t in conn.execute("SELECT client, period, usd, tokens FROM spent")
            )
        if ("wordy", day) in spent:
            break
        await asyncio.sleep(0.1)
    assert spent[("thrifty", day)][0] == pytest.approx(3 * 0.000038)
    assert spent[("thrifty", month)][0] == pytest.approx(3 * 0.000038)
    assert spent[("wordy", day)][1] == 22
    # Prometheus: the cost of the answers, and what is left of the budget.
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/metrics/prometheus") as r:
        text = await r.text()
    cost = _sample(text, 'l104_cost_usd_total{client="thrifty",model="m1"}')
    assert cost == pytest.approx(3 * 0.000038)
    left = _sample(text, 'l104_budget_remaining_usd{client="thrifty",period="day"}')
    assert left == pytest.approx(0.0001 - 3 * 0.000038)
    # A proxy started again on the same store knows what was spent: refused at once.
    again = await start_proxy(base_yaml(upstream.url, extra=CLIENTS, store=str(db)))
    with pytest.raises(errors.ClientError) as still:
        await again.client(key="thrifty-key").aio.models.generate_content(model="m1", contents="x")
    assert still.value.code == 429


UTC_ZONE = Spending("UTC").zone


def _sample(text: str, name: str) -> float:
    """The value of one sample of a Prometheus text page."""
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


def test_periods_and_their_resets_in_a_time_zone() -> None:
    paris = Spending("Europe/Paris").zone
    # 2026-12-31 23:30 UTC is already 2027-01-01 00:30 in Paris.
    at = datetime(2026, 12, 31, 23, 30, tzinfo=UTC).timestamp()
    assert period_keys(at, paris) == ("day:2027-01-01", "month:2027-01")
    assert period_keys(at, UTC_ZONE) == ("day:2026-12-31", "month:2026-12")
    assert until_reset(at, UTC_ZONE, "day") == 30 * 60
    assert until_reset(at, paris, "day") == 23.5 * 3600
    assert until_reset(at, UTC_ZONE, "month") == 30 * 60
    assert until_reset(at, paris, "month") == (31 * 24 - 0.5) * 3600  # to Feb 1st, Paris
