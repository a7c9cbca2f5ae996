"""Builds the aiohttp application: routes, the middleware order, and the lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import aiohttp
from aiohttp import web

from proxy import gemini_api, models_api, ops
from proxy.chain import Resolver
from proxy.config import Config
from proxy.cooldown import Cooldowns
from proxy.metrics import Counters
from proxy.middleware.errors import ErrorMiddleware
from proxy.responders import build_responder
from proxy.rotation import Rotator, utc_now
from proxy.state import CONFIG, RUNTIME, Runtime

log = logging.getLogger("l104")

VERSIONS = ("v1", "v1beta", "v1alpha")


def _session() -> aiohttp.ClientSession:
    # One pooled session for every upstream call: keep-alive, cached DNS, no per-host cap
    # beyond the global one, so a burst never waits behind a handful of sockets.
    connector = aiohttp.TCPConnector(
        limit=1024, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
    )
    return aiohttp.ClientSession(
        connector=connector, raise_for_status=False, skip_auto_headers=("User-Agent",)
    )


def _runtime_ctx(
    clock: Callable[[], float] | None, now: Callable[[], datetime]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        session = _session()
        responders = {
            name: build_responder(name, conf.type, conf.spec, session)
            for name, conf in config.responders.items()
        }
        cooldowns = Cooldowns(clock) if clock else Cooldowns()
        counters = Counters()
        app[RUNTIME] = Runtime(
            config=config,
            responders=responders,
            resolver=Resolver(config),
            cooldowns=cooldowns,
            counters=counters,
            rotator=Rotator(config.rotation, responders, cooldowns, counters, now),
        )
        try:
            yield
        finally:
            await session.close()

    return ctx


async def _drain(app: web.Application) -> None:
    app[RUNTIME].draining = True


def create_app(
    config: Config,
    *,
    clock: Callable[[], float] | None = None,
    now: Callable[[], datetime] = utc_now,
) -> web.Application:
    """The proxy as an aiohttp app. ``clock``/``now`` are injectable for tests."""
    # Outermost first: errors must see every exception, including the other layers'.
    middlewares = [ErrorMiddleware()]
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_body_bytes)
    app[CONFIG] = config
    app.cleanup_ctx.append(_runtime_ctx(clock, now))
    app.on_shutdown.append(_drain)
    # One plain prefix per version (no regex) keeps aiohttp's indexed route lookup fast.
    for version in VERSIONS:
        app.router.add_post(f"/{version}/models/{{target}}", gemini_api.model_action)
        app.router.add_get(f"/{version}/models", models_api.list_models)
        app.router.add_get(f"/{version}/models/{{target}}", models_api.get_model)
    ops.add_routes(app)
    return app
