"""Start-up and shut-down: what the app builds before serving, and unwinds after.

Everything that needs the event loop (the HTTP session, the store, the background tasks) is
opened in one ``cleanup_ctx`` generator and closed in reverse order. On the way down the ledger
queue is written out in full, and the counters are saved, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from proxy.config import Config
from proxy.events import Bus
from proxy.metrics import Counters
from proxy.resources.owners import Owners, key_id
from proxy.resources.uploads import Uploads
from proxy.responders import build_responder
from proxy.routing.budget import Budget
from proxy.routing.chain import Resolver
from proxy.routing.cooldown import Cooldowns
from proxy.routing.keys import KeyPicker
from proxy.routing.pacing import Pacer
from proxy.routing.rotation import Rotator
from proxy.state import RUNTIME, Runtime
from proxy.store.db import Store, StoreError
from proxy.store.memory import Memory
from proxy.store.writer import Writer
from proxy.surfaces.ops import state_rows
from proxy.tasks import Supervisor, every
from proxy.telemetry.attempts import Observer
from proxy.telemetry.prom import Prom
from proxy.watchdog import Watchdog

log = logging.getLogger("l104")
COUNTERS_SAVE_S = 10.0


@dataclass(frozen=True, slots=True)
class Parts:
    """What exists before start-up: shared by the middleware layers and the handlers."""

    config: Config
    clock: Callable[[], float]
    counters: Counters
    cooldowns: Cooldowns
    pacer: Pacer
    budget: Budget
    prom: Prom
    provider: TracerProvider | None
    observer: Observer
    bus: Bus
    writer: Writer | None


def _session() -> aiohttp.ClientSession:
    # One pooled session for every upstream call: keep-alive, cached DNS, no per-host cap
    # beyond the global one, so a burst never waits behind a handful of sockets.
    connector = aiohttp.TCPConnector(
        limit=1024, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
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
        parts.counters.restore(await store.load_counters())
        for ref, left in await store.load_cooldowns():
            parts.cooldowns.until[ref] = parts.clock() + left
        parts.budget.restore(await store.load_day_counts())
    except (sqlite3.Error, OSError) as exc:
        await store.close()
        raise StoreError(f"cannot read the store at {config.path}: {exc}") from exc
    parts.cooldowns.listener = lambda ref, left: store.save_cooldown(ref, time.time() + left)
    return store


def _start_tasks(runtime: Runtime, store: Store | None) -> Supervisor:
    supervisor = Supervisor()
    watchdog = Watchdog(runtime, runtime.bus)
    supervisor.start("watchdog", lambda: every(1.0, watchdog.tick))
    if store is not None:
        config = runtime.config.store

        async def maintain() -> None:
            pruned = await store.prune(config.retention_days)
            pruned += await runtime.owners.prune() + runtime.uploads.prune()
            await store.checkpoint()
            log.debug("maintenance: %d old rows pruned, WAL checkpointed", pruned)

        async def save_counters() -> None:
            await store.save_counters(runtime.counters.persistent())
            await store.save_day_counts(runtime.rotator.budget.day_counts())

        supervisor.start("maintenance", lambda: every(config.maintenance_s, maintain))
        supervisor.start("counters", lambda: every(COUNTERS_SAVE_S, save_counters))
    return supervisor


def _key_ids(config: Config) -> dict[str, tuple[str, ...]]:
    """Each responder's keys, named by digest (local responders have one pseudo-key)."""
    return {
        name: tuple(key_id(k) for k in getattr(conf.spec, "api_keys", ())) or ("local",)
        for name, conf in config.responders.items()
    }


async def _runtime(
    parts: Parts,
    now: Callable[[], datetime],
    session: aiohttp.ClientSession,
    store: Store | None,
) -> Runtime:
    config = parts.config
    responders = {
        name: build_responder(name, conf.type, conf.spec, session, config.limits.max_response_bytes)
        for name, conf in config.responders.items()
    }
    memory = (
        Memory(store, config.store.memory_turns, config.store.memory_tokens)
        if store is not None
        else None
    )
    owners = Owners(_key_ids(config), store.db if store is not None else None)
    if held := await owners.load():
        log.info("%d files and cached contents held, from the store", held)
    return Runtime(
        config=config,
        responders=responders,
        resolver=Resolver(config),
        cooldowns=parts.cooldowns,
        counters=parts.counters,
        pacer=parts.pacer,
        observer=parts.observer,
        prom=parts.prom,
        bus=parts.bus,
        memory=memory,
        writer=parts.writer if store is not None else None,
        rotator=Rotator(
            config.rotation,
            responders,
            parts.cooldowns,
            parts.counters,
            parts.pacer,
            parts.observer,
            now,
            queue_timeout_s=config.limits.queue_timeout_s,
            budget=parts.budget,
        ),
        owners=owners,
        uploads=Uploads(),
        keys=KeyPicker(parts.cooldowns),
    )


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
        session = _session()
        store: Store | None = None
        writing: asyncio.Task[None] | None = None
        supervisor: Supervisor | None = None
        try:
            # Whatever fails on the way up, everything opened so far is closed on the way out:
            # an open SQLite connection's thread would keep the process from ever exiting.
            store = await _open_store(parts)
            if store is not None and parts.writer is not None:
                writing = asyncio.create_task(parts.writer.run(store.db), name="l104:writer")
            runtime = app[RUNTIME] = await _runtime(parts, now, session, store)
            parts.prom.watch_state(lambda: state_rows(runtime))
            supervisor = _start_tasks(runtime, store)
            yield
        finally:
            if supervisor is not None:
                await supervisor.stop()
            await session.close()
            await _close_store(parts, store, writing)
            if parts.provider is not None:
                # Flush what the batch processor holds; its exporter blocks, so not on the loop.
                await asyncio.get_running_loop().run_in_executor(None, parts.provider.shutdown)

    return ctx
