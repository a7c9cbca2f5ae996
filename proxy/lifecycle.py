"""Start-up and shut-down: what the app builds before serving, and unwinds after.

Everything that needs the event loop (the HTTP session, the store, the background tasks) is
opened in one ``cleanup_ctx`` generator and closed in reverse order. On the way down the ledger
queue is written out in full, and the counters are saved, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime

import aiohttp
from aiohttp import web

from proxy import generation
from proxy.billing.budgets import Spending
from proxy.config import Config
from proxy.shared.coordinator import Shared
from proxy.state import LIVE, Generation, Live, Parts
from proxy.store.db import Store, StoreError
from proxy.store.journal import Journal
from proxy.surfaces.ops import state_rows
from proxy.tasks import Supervisor, every
from proxy.watchdog import Watchdog

log = logging.getLogger("l104")
COUNTERS_SAVE_S = 10.0
STORE_CHECK_S = 5.0  # how often the store's file is looked for at its path (one stat)
FLEET_PUSH_S = 1.0  # how often this replica's counts are added to the fleet's


def upstream_session() -> aiohttp.ClientSession:
    """The pooled session the responders share (the bench's bare pass-through uses it too)."""
    # One pooled session for every upstream call: keep-alive, cached DNS, and no cap of its
    # own (limits.max_concurrent and listen.max_connections bound the load), so a burst or
    # 10,000 open streams never wait behind a pool's size.
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
    )
    # No cookie jar: the upstream's cookies must never carry from one client to the next.
    return aiohttp.ClientSession(
        connector=connector,
        raise_for_status=False,
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def _open_store(parts: Parts) -> Store | None:
    if parts.writer is None:
        return None
    config = parts.config.store
    store = await Store.open(config.path, parts.writer, config.on_corrupt)
    try:
        # Each worker on one store has its own journal (the supervisor numbers them).
        worker = int(os.environ.get("L104_WORKER", "0"))
        if replayed := await store.replay(Journal(f"{config.path}-queue-{worker}", worker)):
            log.info("%d queued writes of the last run were written from the journal", replayed)
        parts.counters.restore(await store.load_counters())
        for ref, left in await store.load_cooldowns():
            parts.cooldowns.until[ref] = parts.clock() + left
        parts.budget.restore(await store.load_day_counts())
        parts.spending.load(await store.load_spent())
    except (sqlite3.Error, OSError) as exc:
        await store.close()
        raise StoreError(f"cannot read the store at {config.path}: {exc}") from exc
    parts.cooldowns.listener = lambda ref, left: store.save_cooldown(ref, time.time() + left)
    return store


def budget_rows(config: Config, spending: Spending) -> Iterator[tuple[str, str, float]]:
    """(client, period, USD left) for each money budget, for the Prometheus gauge."""
    for client in config.clients:
        for period, left in spending.remaining(client.name, client.budget).items():
            yield client.name, period, left


def _start_tasks(live: Live, store: Store | None) -> Supervisor:
    supervisor = Supervisor()
    watchdog = Watchdog(live)
    supervisor.start("watchdog", lambda: every(1.0, watchdog.tick))
    if store is not None:
        config = live.runtime.config.store  # the store's settings are read at start only

        async def maintain() -> None:
            pruned = await store.prune(config.retention_days)
            pruned += await live.runtime.owners.prune() + live.runtime.uploads.prune()
            await store.checkpoint()
            log.debug("maintenance: %d old rows pruned, WAL checkpointed", pruned)

        async def save_counters() -> None:
            await store.save_counters(live.runtime.counters.persistent())
            await store.save_day_counts(live.runtime.rotator.budget.day_counts())

        async def check_file() -> None:
            if await store.watch_file(config.on_corrupt):
                live.runtime.owners.db = store.db  # the resources' rows go to the new file

        supervisor.start("maintenance", lambda: every(config.maintenance_s, maintain))
        supervisor.start("store file", lambda: every(STORE_CHECK_S, check_file))
        supervisor.start("counters", lambda: every(COUNTERS_SAVE_S, save_counters))
    return supervisor


async def _close_store(
    parts: Parts, store: Store | None, writing: asyncio.Task[None] | None
) -> None:
    """Write out the ledger queue and the state, then close the store: always, even when a
    write fails (a full disk), so that shutdown never waits on the store's thread."""
    if store is None:
        return
    try:
        if parts.writer is not None and writing is not None:
            parts.writer.stop()
            await writing  # every queued row is written before the store closes
        await store.save_counters(parts.counters.persistent())
        await store.save_day_counts(parts.budget.day_counts())
    except (sqlite3.Error, OSError) as exc:
        log.error("the store could not save its state at shutdown: %s", exc)
    finally:
        await store.close()


def runtime_ctx(
    parts: Parts, now: Callable[[], datetime]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        session = upstream_session()
        store: Store | None = None
        writing: asyncio.Task[None] | None = None
        supervisor: Supervisor | None = None
        shared: Shared | None = None
        linking: asyncio.Task[None] | None = None
        try:
            # Whatever fails on the way up, everything opened so far is closed on the way out:
            # an open SQLite connection's thread would keep the process from ever exiting.
            store = await _open_store(parts)
            if store is not None and parts.writer is not None:
                writing = asyncio.create_task(parts.writer.run(store.db), name="l104:writer")
            live = app[LIVE]
            if parts.config.store.shared:
                shared = Shared(
                    parts.config.store,
                    parts.cooldowns,
                    parts.pacer,
                    lambda: live.runtime.responders,
                    lambda: live.runtime.owners.keys,
                    parts.counters,
                )

            def rebuild(config: Config, before: Generation | None) -> Generation:
                return generation.build(config, parts, now, session, store, before, shared)

            live.generation, live.rebuild = rebuild(parts.config, None), rebuild
            if shared is not None:
                linking = asyncio.create_task(shared.link.run(), name="l104:shared")
                await shared.start()

            if held := await live.runtime.owners.load():
                log.info("%d files and cached contents held, from the store", held)
            parts.prom.watch_state(lambda: state_rows(live.runtime))
            parts.prom.watch_budgets(lambda: budget_rows(live.runtime.config, parts.spending))
            supervisor = _start_tasks(live, store)
            if shared is not None:
                tick = shared.tick
                supervisor.start("shared state", lambda: every(FLEET_PUSH_S, tick))
            yield
        finally:
            if supervisor is not None:
                await supervisor.stop()
            if linking is not None:
                linking.cancel()
            if shared is not None:
                await shared.close()
            await session.close()
            await _close_store(parts, store, writing)
            if parts.provider is not None:
                # Flush what the batch processor holds; its exporter blocks, so not on the loop.
                await asyncio.get_running_loop().run_in_executor(None, parts.provider.shutdown)

    return ctx
