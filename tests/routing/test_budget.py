"""Declared and learned quotas per (project, model): room before any round trip, exact waits,
per-day counts that reset at midnight US Pacific, token quotas that settle on usage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from proxy.config import Quota
from proxy.routing.budget import Budget
from tests.conftest import FakeClock, StartProxy, Upstream, base_yaml, ledger_rows

REF = ("up", "m1", 0)


class Now:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 12:00 in Los Angeles

    def __call__(self) -> datetime:
        return self.at


def test_declared_rpm_has_room_for_exactly_that_many_and_tells_the_exact_wait() -> None:
    clock = FakeClock()
    budget = Budget({("up", "m1"): Quota(rpm=2)}, clock, Now())
    for _ in range(2):
        assert budget.wait_for(REF, 1) == (0.0, "")
        budget.take(REF, 1)
    clock.advance(15)
    wait, why = budget.wait_for(REF, 1)
    assert wait == pytest.approx(45.0)
    assert "requests-per-minute" in why
    assert budget.wait_for(("up", "m1", 1), 1) == (0.0, "")  # another project: its own quota
    assert budget.wait_for(("up", "m2", 0), 1) == (0.0, "")  # undeclared: no limit


def test_requests_a_day_reset_at_midnight_pacific() -> None:
    now = Now()
    budget = Budget({("up", "m1"): Quota(rpd=3)}, FakeClock(), now)
    for _ in range(3):
        budget.take(REF, 1)
    wait, why = budget.wait_for(REF, 1)
    assert wait == pytest.approx(12 * 3600)  # noon to midnight in Los Angeles
    assert "per-day" in why
    assert budget.describe(REF) == {"rpd": {"limit": 3, "used": 3, "left": 0}}
    now.at += timedelta(hours=12, seconds=1)
    assert budget.wait_for(REF, 1) == (0.0, "")
    assert budget.describe(REF) == {"rpd": {"limit": 3, "used": 0, "left": 3}}


def test_a_learned_token_quota_settles_on_the_real_count() -> None:
    budget = Budget({}, FakeClock(), Now())
    assert budget.describe(REF) is None
    budget.learn_tokens(REF, 100)
    ticket = budget.take(REF, 80)
    assert budget.wait_for(REF, 50)[0] > 0
    budget.settle(REF, ticket, 10)  # usageMetadata said 10
    assert budget.wait_for(REF, 50) == (0.0, "")


def test_a_learned_token_quota_corrects_a_declaration_that_is_too_high() -> None:
    budget = Budget({("up", "m1"): Quota(tpm=1000)}, FakeClock(), Now())
    budget.take(REF, 60)
    budget.learn_tokens(REF, 100)
    assert budget.describe(REF) == {"tpm": {"limit": 100, "used": 60}}
    assert budget.wait_for(REF, 50)[0] > 0


def test_only_todays_counts_come_back() -> None:
    now = Now()
    budget = Budget({("up", "m1"): Quota(rpd=10)}, FakeClock(), now)
    budget.take(REF, 1)
    budget.learn_day(("up", "m2", 0), 20)
    saved = list(budget.day_counts())
    assert sorted(saved) == [
        (("up", "m1", 0), "2026-11-26", 1, 10),
        (("up", "m2", 0), "2026-11-26", 20, 20),
    ]
    again = Budget({("up", "m1"): Quota(rpd=10)}, FakeClock(), now)
    again.restore(saved)
    assert again.describe(("up", "m2", 0)) == {"rpd": {"limit": 20, "used": 20, "left": 0}}
    later = Now()
    later.at += timedelta(days=1)
    fresh = Budget({}, FakeClock(), later)
    fresh.restore(saved)
    assert fresh.describe(("up", "m2", 0)) is None


def quota_yaml(upstream: Upstream, member: str) -> str:
    return base_yaml(upstream.url, keys=("only-key",)).replace(
        'default: ["up:m1", "up:m2", "up:m3"]', f'default: [{member}, "up:m2", "up:m3"]'
    )


async def test_a_declared_rpm_means_no_upstream_429_even_in_the_first_burst(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(quota_yaml(upstream, '{member: "up:m1", rpm: 2}'))
    upstream.quota("m1", 2)  # the upstream's own hard quota: a third call would be a 429
    client = proxy.client().aio
    answers = await asyncio.gather(
        *(client.models.generate_content(model="default", contents="x") for _ in range(6))
    )
    assert sorted(a.text or "" for a in answers) == ["Hello from m1."] * 2 + ["Hello from m2."] * 4
    assert len(upstream.requests("m1")) == 2  # never a call m1 had no room for


async def test_every_member_full_answers_429_with_the_exact_wait(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url, keys=("key-k-upstream",)).replace(
        'default: ["up:m1", "up:m2", "up:m3"]', 'default: [{member: "up:m1", rpm: 1}]'
    )
    proxy = await start_proxy(yaml)
    url = f"{proxy.url}/v1beta/models/default:generateContent"
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json={"contents": []}) as r:
            assert r.status == 200
        proxy.clock.advance(15)
        async with s.post(url, json={"contents": []}) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "45"
            assert "requests-per-minute quota" in (await r.json())["error"]["message"]
    assert len(upstream.requests("m1")) == 1


async def test_a_request_waits_for_a_slot_that_frees_within_the_queue_timeout(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = base_yaml(
        upstream.url, keys=("key-k-upstream",), extra="limits: {queue_timeout_s: 3}"
    ).replace('default: ["up:m1", "up:m2", "up:m3"]', 'default: [{member: "up:m1", rpm: 1}]')
    proxy = await start_proxy(yaml)
    client = proxy.client().aio
    await client.models.generate_content(model="default", contents="x")
    proxy.clock.advance(59.5)  # the slot frees in half a second

    async def time_passes() -> None:
        await asyncio.sleep(0.2)
        proxy.clock.advance(0.5)

    answer, _ = await asyncio.gather(
        client.models.generate_content(model="default", contents="x"), time_passes()
    )
    assert answer.text == "Hello from m1."
    assert len(upstream.requests("m1")) == 2


async def test_a_token_quota_429_paces_by_tokens(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("key-k-upstream",)))
    upstream.script("m1", {"status": 429, "quota": "tokens", "value": "300", "delay": "5s"})
    client = proxy.client().aio
    first = await client.models.generate_content(model="default", contents="x")
    assert first.text == "Hello from m2."
    proxy.clock.advance(6)  # the cooldown is over; the token quota is now known
    small = await client.models.generate_content(model="default", contents="x")
    assert small.text == "Hello from m1."
    big = await client.models.generate_content(model="default", contents="y" * 2000)
    assert big.text == "Hello from m2."  # about 500 tokens: more than m1 has left this minute


async def test_usage_cut_across_network_reads_still_counts(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db)))
    upstream.script("m1", {"chunks": 2, "split_usage": True})
    stream = await proxy.client().aio.models.generate_content_stream(model="default", contents="x")
    assert len([c async for c in stream]) == 2
    rows = await ledger_rows(db, "input_tokens, output_tokens")
    assert rows == [(8, 3)]


async def test_a_per_day_429_is_counted_and_shown(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("key-k-upstream",)))
    upstream.script("m1", {"status": 429, "quota": "day", "value": "250"})
    await proxy.client().aio.models.generate_content(model="default", contents="x")
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/health") as r:
        key = (await r.json())["models"]["m1"]["keys"][0]
    assert key["state"] == "cooling"
    assert key["quota"] == {"rpd": {"limit": 250, "used": 250, "left": 0}}


def test_a_reload_keeps_what_was_counted_under_the_new_quota() -> None:
    clock = FakeClock()
    budget = Budget({("up", "m1"): Quota(rpm=3, rpd=100)}, clock, Now())
    for _ in range(3):
        budget.take(REF, 1)
    assert budget.wait_for(REF, 1)[0] > 0
    budget.requota({("up", "m1"): Quota(rpm=5, rpd=100)})
    for _ in range(2):  # the three of this minute still count: two more fit under five
        assert budget.wait_for(REF, 1) == (0.0, "")
        budget.take(REF, 1)
    assert budget.wait_for(REF, 1)[0] == pytest.approx(60.0)
    assert [used for _, _, used, _ in budget.day_counts()] == [5]
    budget.requota({})  # undeclared now: no limit, and today's count stays
    assert budget.wait_for(REF, 1) == (0.0, "")
    assert [used for _, _, used, _ in budget.day_counts()] == [5]
