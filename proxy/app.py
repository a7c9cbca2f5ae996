"""Builds the aiohttp application: routes, the middleware order, and the lifecycle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from proxy import gemini_api, models_api, ops
from proxy.chain import Resolver
from proxy.config import Config
from proxy.cooldown import Cooldowns
from proxy.metrics import Counters
from proxy.middleware import Middleware
from proxy.middleware.admission import GlobalAdmission
from proxy.middleware.auth import ClientAuth
from proxy.middleware.errors import ErrorMiddleware
from proxy.middleware.ratelimit import ClientRateLimit
from proxy.middleware.telemetry import Telemetry
from proxy.pacing import Pacer
from proxy.responders import build_responder
from proxy.rotation import Rotator, utc_now
from proxy.state import CONFIG, RUNTIME, Runtime
from proxy.telemetry.attempts import Observer
from proxy.telemetry.prom import Prom
from proxy.telemetry.tracing import build_provider, head_ratio, tracer_of

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


@dataclass(frozen=True, slots=True)
class Parts:
    """What exists before start-up: shared by the middleware layers and the handlers."""

    config: Config
    clock: Callable[[], float]
    counters: Counters
    cooldowns: Cooldowns
    pacer: Pacer
    prom: Prom
    provider: TracerProvider | None
    observer: Observer


def _runtime_ctx(
    parts: Parts, now: Callable[[], datetime]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = parts.config
        session = _session()
        responders = {
            name: build_responder(name, conf.type, conf.spec, session)
            for name, conf in config.responders.items()
        }
        app[RUNTIME] = Runtime(
            config=config,
            responders=responders,
            resolver=Resolver(config),
            cooldowns=parts.cooldowns,
            counters=parts.counters,
            pacer=parts.pacer,
            observer=parts.observer,
            prom=parts.prom,
            rotator=Rotator(
                config.rotation,
                responders,
                parts.cooldowns,
                parts.counters,
                parts.pacer,
                parts.observer,
                now,
            ),
        )
        parts.prom.watch_state(lambda: ops.state_rows(app[RUNTIME]))
        try:
            yield
        finally:
            await session.close()
            if parts.provider is not None:
                # Flush what the batch processor holds; its exporter blocks, so not on the loop.
                await asyncio.get_running_loop().run_in_executor(None, parts.provider.shutdown)

    return ctx


async def _drain(app: web.Application) -> None:
    app[RUNTIME].draining = True


def middlewares(parts: Parts) -> list[Middleware]:
    """The layers, outermost first."""
    config = parts.config
    return [
        # Telemetry outermost: its span and timings cover everything, errors included.
        Telemetry(
            tracer_of(parts.provider),
            parts.prom,
            tracing=parts.provider is not None,
            head_ratio=head_ratio(config.tracing),
        ),
        # Errors next: it turns every inner layer's refusals into Gemini JSON.
        ErrorMiddleware(),
        # Auth before limits: limits are per client, so the client must be known first.
        ClientAuth(config.clients),
        ClientRateLimit(config.clients, parts.counters, parts.clock),
        # Global admission last: a refused client never takes one of the shared slots.
        GlobalAdmission(config.limits, parts.counters, parts.clock),
    ]


def create_app(
    config: Config,
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
    provider: TracerProvider | None = None,
) -> web.Application:
    """The proxy as an aiohttp app. ``clock``/``now`` and the tracer ``provider`` are injectable
    for tests; by default the provider comes from ``tracing:`` and ``OTEL_*``."""
    provider = provider or build_provider(config.tracing)
    prom = Prom()
    parts = Parts(
        config=config,
        clock=clock,
        counters=Counters(),
        cooldowns=Cooldowns(clock),
        pacer=Pacer(clock, enabled=config.limits.adaptive),
        prom=prom,
        provider=provider,
        observer=Observer(
            tracer_of(provider),
            prom,
            tracing=provider is not None,
            capture_content=config.tracing.capture_content,
        ),
    )
    app = web.Application(
        middlewares=middlewares(parts), client_max_size=config.limits.max_body_bytes
    )
    app[CONFIG] = config
    app.cleanup_ctx.append(_runtime_ctx(parts, now))
    app.on_shutdown.append(_drain)
    # One plain prefix per version (no regex) keeps aiohttp's indexed route lookup fast.
    for version in VERSIONS:
        app.router.add_post(f"/{version}/models/{{target}}", gemini_api.model_action)
        app.router.add_get(f"/{version}/models", models_api.list_models)
        app.router.add_get(f"/{version}/models/{{target}}", models_api.get_model)
    ops.add_routes(app)
    return app
