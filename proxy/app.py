"""Builds the aiohttp application: routes, the middleware order, and the lifecycle."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from proxy.billing.budgets import Spending
from proxy.config import Config
from proxy.events import Bus
from proxy.exchange import Exchange
from proxy.generation import Current
from proxy.lifecycle import runtime_ctx
from proxy.metrics import Counters
from proxy.middleware import Middleware
from proxy.middleware.errors import note_started
from proxy.middleware.ledger import Ledger
from proxy.middleware.telemetry import Telemetry
from proxy.routing.budget import Budget
from proxy.routing.cooldown import Cooldowns
from proxy.routing.pacing import Pacer
from proxy.routing.rotation import utc_now
from proxy.state import LIVE, Live, Parts
from proxy.store.writer import Writer
from proxy.surfaces import (
    VERSIONS,
    caches_api,
    files_api,
    gemini_api,
    interactions_api,
    live_api,
    models_api,
    openai_api,
    ops,
    resources_api,
    status,
    tokens,
    unserved,
    usage_api,
    v6,
    vertex_api,
)
from proxy.telemetry.attempts import Observer
from proxy.telemetry.prom import Prom
from proxy.telemetry.tracing import build_provider, head_ratio, tracer_of

log = logging.getLogger("l104")


def _outer(parts: Parts, live: Live, now: Callable[[], datetime]) -> list[Middleware]:
    """The layers that do not read the reloadable config, outermost first; the config's own
    layers run inside them (:class:`~proxy.generation.Current`)."""
    layers: list[Middleware] = []
    if parts.wants("telemetry"):
        # Telemetry outermost: its span and timings cover everything, errors included.
        layers.append(
            Telemetry(
                tracer_of(parts.provider),
                parts.prom,
                parts.counters,
                tracing=parts.provider is not None,
                head_ratio=head_ratio(parts.config.tracing),
            )
        )
    if parts.writer is not None and parts.wants("ledger"):
        # The ledger sees the final status (after errors became answers) inside the span.
        layers.append(Ledger(parts.writer, _billed(live), parts.prom, _wall(now)))
    return [*layers, Current(live)]


def _wall(now: Callable[[], datetime]) -> Callable[[], float] | None:
    """Wall time from an injected ``now`` (a test's made days); None for the real clock."""
    if now is utc_now:
        return None
    return lambda: now().timestamp()


def _billed(live: Live) -> Callable[[Exchange], tuple[str, float | None, float | None]]:
    """A ledger row's project and costs, by the prices of the config serving now."""

    def billed(exchange: Exchange) -> tuple[str, float | None, float | None]:
        billing = live.runtime.billing
        return billing.row(exchange) if billing is not None else ("", None, None)

    return billed


def create_app(
    config: Config,
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
    provider: TracerProvider | None = None,
    only: frozenset[str] | None = None,
) -> web.Application:
    """The proxy as an aiohttp app. ``clock``/``now`` and the tracer ``provider`` are injectable
    for tests; by default the provider comes from ``tracing:`` and ``OTEL_*``. ``only`` names
    the middleware layers to build (the bench's layer budget; None: all of them)."""
    provider = provider or build_provider(config.tracing)
    prom = Prom()
    parts = Parts(
        config=config,
        clock=clock,
        counters=Counters(),
        cooldowns=Cooldowns(clock),
        pacer=Pacer(clock, enabled=config.limits.adaptive),
        budget=Budget(config.quotas, clock, now),
        prom=prom,
        provider=provider,
        bus=Bus(),
        writer=Writer() if config.store.path else None,
        spending=Spending(config.budgets_timezone, _wall(now) or time.time),
        observer=Observer(
            tracer_of(provider),
            prom,
            tracing=provider is not None,
            capture_content=config.tracing.capture_content,
        ),
        only=only,
    )
    live = Live()

    async def on_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
        # One handler for both jobs: each handler is a coroutine a response.
        note_started(request)
        if live.generation is not None:
            live.generation.browser.decorate(request, response)

    async def drain(app: web.Application) -> None:
        live.draining = True

    app = web.Application(
        middlewares=_outer(parts, live, now), client_max_size=config.limits.max_body_bytes
    )
    app[LIVE] = live
    app.cleanup_ctx.append(runtime_ctx(parts, now))
    app.on_response_prepare.append(on_prepare)
    app.on_shutdown.append(drain)
    # One plain prefix per version (no regex) keeps aiohttp's indexed route lookup fast.
    for version in VERSIONS:
        app.router.add_post(f"/{version}/models/{{target}}", gemini_api.model_action)
        app.router.add_get(f"/{version}/models", models_api.list_models)
        app.router.add_get(f"/{version}/models/{{target}}", models_api.get_model)
    ops.add_routes(app)
    status.add_routes(app)
    v6.add_routes(app)
    usage_api.add_routes(app)
    openai_api.add_routes(app)
    files_api.add_routes(app)
    caches_api.add_routes(app)
    interactions_api.add_routes(app)
    live_api.add_routes(app)
    tokens.add_routes(app)
    unserved.add_routes(app)
    vertex_api.add_routes(app)
    resources_api.add_routes(app)  # every path under a version not served above
    unserved.add_last_route(app)  # and every other path
    return app
