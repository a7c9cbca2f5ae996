"""The store with the server as a process: one ledger row per request, also across SIGTERM under
load, and counters and cooldowns that survive a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ProxyProcess, Upstream, base_yaml, http

StartProcess = Callable[..., ProxyProcess]


def ledger(db: Path) -> list[tuple[str, str, str, int, int, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT client, requested, served, status, input_tokens, output_tokens FROM ledger"
        ).fetchall()


async def test_concurrent_sdk_requests_leave_one_row_each(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await asyncio.to_thread(proxy_process, base_yaml(upstream.url, store=str(db)))
    client = proxy.client()
    answers = await asyncio.gather(
        *(client.aio.models.generate_content(model="default", contents=f"q{i}") for i in range(40))
    )
    assert all(a.text == "Hello from m1." for a in answers)
    await client.aio.aclose()
    metrics = json.loads(http("GET", f"{proxy.url}/metrics")[2])
    assert metrics["ledger_dropped"] == 0
    assert await asyncio.to_thread(proxy.stop) == 0
    rows = ledger(db)
    assert len(rows) == 40
    assert set(rows) == {("anonymous", "default", "m1", 200, 8, 3)}


async def test_sigterm_under_load_loses_no_row(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await asyncio.to_thread(proxy_process, base_yaml(upstream.url, store=str(db)))
    upstream.script("m1", *({"hang": 0.4} for _ in range(30)))
    url = f"{proxy.url}/v1beta/models/default:generateContent"

    async def one(s: aiohttp.ClientSession) -> int:
        try:
            async with s.post(url, json={"contents": []}) as r:
                await r.read()
                return r.status
        except aiohttp.ClientError:
            return 0

    async with aiohttp.ClientSession() as s:
        load = [asyncio.create_task(one(s)) for _ in range(30)]
        while len(upstream.requests("m1")) < 30:  # noqa: ASYNC110 - every request is in flight
            await asyncio.sleep(0.02)
        proxy.proc.send_signal(signal.SIGTERM)
        statuses = await asyncio.gather(*load)
    assert await asyncio.to_thread(proxy.proc.wait, 20) == 0
    answered = statuses.count(200)
    assert answered == 30  # in-flight requests finish during the graceful stop
    assert [r[3] for r in ledger(db)].count(200) == answered


async def test_counters_and_cooldowns_survive_a_restart(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    text = base_yaml(upstream.url, keys=("only-key",), store=str(db))
    first = await asyncio.to_thread(proxy_process, text)
    upstream.script("m1", {"status": 429, "quota": "day"})
    client = first.client()
    await client.aio.models.generate_content(model="default", contents="x")
    await client.aio.aclose()
    before = json.loads(http("GET", f"{first.url}/metrics")[2])
    assert await asyncio.to_thread(first.stop) == 0

    second = await asyncio.to_thread(proxy_process, text)
    health = json.loads(http("GET", f"{second.url}/health")[2])
    assert health["models"]["m1"]["state"] == "cooling"
    assert health["models"]["m1"]["cooldown_s"] > 60  # the per-day reset, not a minute
    after = json.loads(http("GET", f"{second.url}/metrics")[2])
    for name in ("model_usage", "model_429_count", "model_rotations", "requests_total"):
        assert after[name] == before[name], name
    client = second.client()
    answer = await client.aio.models.generate_content(model="default", contents="x")
    await client.aio.aclose()
    assert answer.text == "Hello from m2."
    assert len(upstream.requests("m1")) == 1  # the restarted proxy did not hammer m1


async def test_no_key_reaches_the_store(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    from tests.conftest import key_shaped

    secret = key_shaped("s")
    db = tmp_path / "l104.db"
    clients = 'clients:\n  - {name: alice, key: "alice-secret-key"}'
    text = base_yaml(upstream.url, keys=(secret,), store=str(db), extra=clients)
    proxy = await asyncio.to_thread(proxy_process, text)
    upstream.script("m1", {"status": 429})
    async with aiohttp.ClientSession() as s:
        for path, body in (
            ("/v1beta/models/default:generateContent", {"contents": []}),
            ("/api/v6/stream", {"signal": "hi", "session": "s1"}),
        ):
            async with s.post(
                proxy.url + path, json=body, headers={"x-goog-api-key": "alice-secret-key"}
            ) as r:
                assert r.status == 200
                await r.read()
    assert await asyncio.to_thread(proxy.stop) == 0
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert "alice" in dump  # the client's name is there ...
    assert "alice-secret-key" not in dump  # ... never its key
    assert secret not in dump


def test_per_day_counts_survive_a_restart(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    yaml = base_yaml(upstream.url, keys=("only-key",), store=str(db)).replace(
        'default: ["up:m1", "up:m2", "up:m3"]', 'default: [{member: "up:m1", rpd: 2}, "up:m2"]'
    )
    first = proxy_process(yaml)
    client = first.client()
    served = [client.models.generate_content(model="default", contents="x").text for _ in range(3)]
    assert served == ["Hello from m1.", "Hello from m1.", "Hello from m2."]
    assert first.stop() == 0
    second = proxy_process(yaml)
    again = second.client()  # held: the SDK closes its session when a Client is collected
    answer = again.models.generate_content(model="default", contents="x")
    assert answer.text == "Hello from m2."  # the day's two are still spent
    assert len(upstream.requests("m1")) == 2  # and m1 was skipped with no round trip
    health = json.loads(http("GET", f"{second.url}/health")[2])
    key = health["models"]["m1"]["keys"][0]
    assert key["state"] == "cooling"
    assert key["quota"] == {"rpd": {"limit": 2, "used": 2, "left": 0}}


async def test_sigkill_under_load_loses_no_answered_row(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    yaml = base_yaml(upstream.url, store=str(db))
    proxy = await asyncio.to_thread(proxy_process, yaml)
    url = f"{proxy.url}/v1beta/models/default:generateContent"
    answered = 0
    killed = asyncio.Event()

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal answered
        for _ in range(5_000):  # bounded: the kill comes after about a second
            try:
                async with s.post(url, json={"contents": []}) as r:
                    await r.read()
            except aiohttp.ClientError:
                return
            if r.status == 200 and not killed.is_set():
                answered += 1

    async with aiohttp.ClientSession() as s:
        workers = [asyncio.create_task(worker(s)) for _ in range(8)]
        await asyncio.sleep(1.0)
        proxy.proc.kill()  # SIGKILL: no shutdown, no flush
        killed.set()
        await asyncio.gather(*workers)
    await asyncio.to_thread(proxy.proc.wait, 5)
    assert answered > 100
    # The next start writes what the killed process had queued, from its journal.
    again = await asyncio.to_thread(proxy_process, yaml)
    rows = [r[3] for r in ledger(db)]
    assert rows.count(200) >= answered
    assert rows.count(200) <= answered + 8  # at most the requests in flight at the kill
    assert await asyncio.to_thread(again.stop) == 0
    assert "queued writes of the last run were written from the journal" in again.log.read_text()


def _generate(proxy: ProxyProcess) -> int:
    url = f"{proxy.url}/v1beta/models/default:generateContent"
    return http("POST", url, {"contents": [{"parts": [{"text": "hi"}]}]})[0]


def _health(proxy: ProxyProcess) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(http("GET", f"{proxy.url}/health")[2])
    return out


def _delete(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _wait_for(check: Callable[[], bool], limit_s: float = 10) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


@pytest.mark.parametrize("on_corrupt", ["move_aside", "refuse"])
def test_a_store_deleted_while_serving_is_noticed_and_counted(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path, on_corrupt: str
) -> None:
    """SQLite goes on writing to a deleted file's inode: every row would vanish unseen. The
    proxy notices within seconds, says so once, counts what was lost in ``ledger_dropped``,
    then makes the store again (move_aside) or keeps no rows (refuse), and /health says which."""
    db = tmp_path / "l104.db"
    yaml = base_yaml(upstream.url, store=str(db)).replace(
        f'store: {{path: "{db}"}}', f'store: {{path: "{db}", on_corrupt: {on_corrupt}}}'
    )
    proxy = proxy_process(yaml)
    for _ in range(3):
        assert _generate(proxy) == 200
    _wait_for(lambda: len(ledger(db)) == 3)
    _delete(db)
    _wait_for(lambda: "store" in _health(proxy))
    health = _health(proxy)
    assert "was deleted while serving" in health["store"]["note"]
    assert health["ledger_dropped"] >= 3
    assert _generate(proxy) == 200
    if on_corrupt == "move_aside":
        assert health["store"]["state"] == "reopened"
        _wait_for(lambda: db.exists() and len(ledger(db)) == 1)
    else:
        assert health["store"]["state"] == "refusing"
        assert health["status"] == "degraded"
        _wait_for(lambda: _health(proxy)["ledger_dropped"] >= 4)
        assert not db.exists()
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert log.count("was deleted while serving") == 1
    assert "Traceback" not in log


def _chattr(flag: str, *paths: Path) -> bool:
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


def _keep_sending(proxy: ProxyProcess, stop: threading.Event) -> None:
    for _ in range(2000):  # bounded: about two seconds of load
        if stop.is_set():
            return
        with contextlib.suppress(OSError):
            _generate(proxy)


def test_an_immutable_store_and_journal_never_kill_the_process(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    """``chattr +i`` on the store and its journal while serving: the journal's writes fail with
    one log line and the process keeps serving. A memory-mapped journal died of SIGBUS at the
    first store into a page the kernel had written back (``sync`` makes that happen now)."""
    db = tmp_path / "l104.db"
    proxy = proxy_process(base_yaml(upstream.url, store=str(db)))
    for _ in range(3):
        assert _generate(proxy) == 200
    _wait_for(lambda: len(ledger(db)) == 3)
    journal = Path(f"{db}-queue-0")
    stop = threading.Event()
    warm = [threading.Thread(target=_keep_sending, args=(proxy, stop)) for _ in range(8)]
    for thread in warm:
        thread.start()
    time.sleep(1)
    assert journal.exists()
    immutable = _chattr("+i", journal, db)
    if not immutable:
        stop.set()
        pytest.skip("chattr +i is not available here (needs root on ext4 or xfs)")
    try:
        # Under load the queue never runs empty, so the journal stays mapped; once its pages
        # are clean (sync), the next store into one asks the file system, which says no.
        for _ in range(20):
            os.sync()
            time.sleep(0.1)
        stop.set()
        for thread in warm:
            thread.join(10)
        assert proxy.proc.poll() is None, f"the proxy died: {proxy.proc.returncode}"
        assert _generate(proxy) == 200
        assert _health(proxy)["status"] in ("ok", "degraded")
    finally:
        _chattr("-i", journal, db)
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "the store's journal cannot be written" in log
    assert log.count("the store's journal cannot be written") == 1
    assert "Traceback" not in log
