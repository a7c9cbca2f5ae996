"""A month of traffic through the proxy on made days (a wall clock the test moves, nothing waited
for): the ledger, the usage API and Prometheus give the same totals, and a daily budget resets at
each made midnight."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from google.genai import errors
from playwright.async_api import async_playwright

from tests.conftest import StartProxy, Upstream, base_yaml, ledger_rows
from tests.e2e.test_browser import CHROMIUM, FLAGS

CLIENTS = """
clients:
  - {name: alice, key: alice-key, budget: {usd_per_day: 0.00008}}
  - {name: bob, key: bob-key}
pricing:
  m1: {input: 1.0, output: 10.0}
"""
COST = 0.000038  # the fake's usage: 8 in at $1/M + 3 out at $10/M


class MadeDays:
    """A wall clock that only moves when told."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


async def test_a_month_gives_the_same_totals_everywhere(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    days = MadeDays()
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS, store=str(db)), now=days)
    alice = proxy.client(key="alice-key").aio
    bob = proxy.client(key="bob-key").aio
    refused = []
    for _ in range(30):
        # Alice's day holds two answers ($0.000076 of $0.00008); her third is refused until the
        # made midnight, and the next made day she has her budget again.
        for _ in range(2):
            await alice.models.generate_content(model="m1", contents="hi")
        with pytest.raises(errors.ClientError) as over:
            await alice.models.generate_content(model="m1", contents="hi")
        refused.append(over.value.code)
        delay = next(
            d["retryDelay"]
            for d in over.value.details["error"]["details"]
            if "RetryInfo" in d["@type"]
        )
        assert delay == "54000s"  # from 09:00 to the made midnight
        await bob.models.generate_content(model="m1", contents="hi")
        days.at += timedelta(days=1)
    assert refused == [429] * 30
    rows = await ledger_rows(db, "at", 120)
    assert len(rows) == 120  # 30 x (2 + 1 refused) of alice's, 30 of bob's
    with sqlite3.connect(db) as conn:
        spent_days = conn.execute(
            "SELECT COUNT(DISTINCT CAST(at / 86400 AS INTEGER)), SUM(cost_usd) FROM ledger"
        ).fetchone()
    assert spent_days[0] == 30  # one made day each
    assert spent_days[1] == pytest.approx(90 * COST)

    async with aiohttp.ClientSession() as s:
        mine = {"x-goog-api-key": "alice-key"}
        async with s.get(f"{proxy.url}/api/v6/usage?by=client&step=day", headers=mine) as r:
            by_day = (await r.json())["rows"]
        async with s.get(f"{proxy.url}/metrics/prometheus") as r:
            prom = await r.text()
    assert len(by_day) == 30  # alice's own days
    assert all(d["requests"] == 3 and d["rate_limited"] == 1 for d in by_day)
    assert sum(d["cost_usd"] for d in by_day) == pytest.approx(60 * COST)
    counted = {
        line.split('client="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in prom.splitlines()
        if line.startswith("l104_cost_usd_total{")
    }
    assert counted["alice"] == pytest.approx(60 * COST)
    assert counted["bob"] == pytest.approx(30 * COST)


async def test_the_charts_show_the_same_month(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    """The status page over the made month (the browser's clock made too, by Playwright): the
    cost chart's total is the ledger's, the API's and Prometheus'."""
    db = tmp_path / "l104.db"
    days = MadeDays()
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS, store=str(db)), now=days)
    alice = proxy.client(key="alice-key").aio
    for _ in range(30):
        for _ in range(2):
            await alice.models.generate_content(model="m1", contents="hi")
        days.at += timedelta(days=1)
    await ledger_rows(db, "at", 60)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        await page.clock.set_fixed_time(days.at)
        await page.goto(proxy.url)
        await page.fill("#key", "alice-key")
        await page.select_option("#range", "month")
        await page.wait_for_function(
            "() => (window.l104Charts['chart-cost']?.data[0].length ?? 0) >= 30"
        )
        budget = await page.evaluate(
            """() => { const c = window.l104Charts['chart-budget'];
                       return [c.series, Math.max(...c.data[1]), c.data[2][0]]; }"""
        )
        charted = await page.evaluate(
            """() => { const c = window.l104Charts['chart-cost'];
                       return [c.series, c.data[1].reduce((a, b) => a + b, 0),
                               c.data[1].filter((v) => v > 0).length]; }"""
        )
        shot = tmp_path / "month-charts.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"\nthe month's charts: {shot}")
        await browser.close()
    series, total, days_with_cost = charted
    # Each day's spend, by the day, beside the day's budget line.
    assert budget[0] == ["alice spent", "alice usd_per_day"]
    assert budget[1] == pytest.approx(2 * COST)
    assert budget[2] == pytest.approx(0.00008)
    assert series == ["alice USD"]
    assert days_with_cost == 30
    assert total == pytest.approx(60 * COST)
    with sqlite3.connect(db) as conn:
        ledger = conn.execute("SELECT SUM(cost_usd) FROM ledger WHERE client = 'alice'").fetchone()
    assert ledger[0] == pytest.approx(total)
