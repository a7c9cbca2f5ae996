"""A generation: one loaded config and everything built from it, for start-up and for reloads.

What is learned while serving lives outside a generation and carries over a reload: cooldowns,
paces, counters, quota windows (:class:`~proxy.lifecycle.Parts`), and from the generation before,
the clients' windows, the rotation's turns and timeout streaks, the files and cached contents
held, uploads and Live sessions in progress. A member that is gone simply stops being asked for.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from proxy.billing.charge import Billing
from proxy.billing.prices import PriceBook, shipped
from proxy.config import Config
from proxy.middleware import Handler, Middleware
from proxy.middleware.admin import AdminGate
from proxy.middleware.admission import GlobalAdmission, SharedGate
from proxy.middleware.auth import ClientAuth, TokenOwner
from proxy.middleware.browser import Browser
from proxy.middleware.budget import ClientBudgets
from proxy.middleware.errors import ErrorMiddleware
from proxy.middleware.layers import Layers
from proxy.middleware.ratelimit import ClientRateLimit
from proxy.resources.kinds import TOKEN
from proxy.resources.live_budget import ByteBudget
from proxy.resources.owners import Owners, RemoteMap, key_id
from proxy.resources.uploads import Uploads
from proxy.responders import Responder, build_responder
from proxy.routing.chain import Resolver
from proxy.routing.keys import KeyPicker
from proxy.routing.rotation import Rotator
from proxy.shared.coordinator import Shared
from proxy.state import REQUEST_RUNTIME, Generation, Live, Parts, Runtime
from proxy.store.db import Store
from proxy.store.memory import Memory


class Current(Middleware):
    """Stamps a request with the generation it starts on, and runs that generation's layers:
    a reload meanwhile changes nothing for it."""

    def __init__(self, live: Live) -> None:
        self.live = live

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        generation = self.live.generation
        assert generation is not None, "a request before start-up"
        request[REQUEST_RUNTIME] = generation.runtime
        return await generation.layers(request, handler)


def config_layers(
    config: Config,
    parts: Parts,
    browser: Browser,
    before: Layers | None = None,
    shared: Shared | None = None,
    uploads: Uploads | None = None,
    owners: Owners | None = None,
    billing: Billing | None = None,
) -> Layers:
    """The layers that read the config, outermost first."""
    limits = config.limits
    admission = before.find(GlobalAdmission) if before is not None else None
    clients = len(config.clients)
    if admission is None or admission.limits != limits or admission.clients != clients:
        admission = GlobalAdmission(limits, parts.counters, parts.clock, clients)
    layers: list[tuple[str, Middleware]] = [
        # Errors first: it turns every inner layer's refusals into Gemini JSON.
        ("errors", ErrorMiddleware(limits.max_body_bytes)),
        # shared_fail: closed, and Redis is away: nothing is served on local state.
        *([("shared", SharedGate(lambda: shared.refusing))] if shared is not None else []),
        # CORS preflights are answered before auth: a browser sends them without a key.
        ("browser", browser),
        # The proxy's own pages are the admin's, when an admin key is set.
        *([("admin", _admin_gate(config, parts, before))] if config.listen.admin_key else []),
        # Auth before limits: limits are per client, so the client must be known first.
        ("auth", ClientAuth(config.clients, uploads, _token_owner(owners))),
        (
            "client_limits",
            ClientRateLimit(
                config.clients,
                parts.counters,
                parts.clock,
                before.find(ClientRateLimit) if before is not None else None,
                shared.windows if shared is not None else None,
            ),
        ),
        # Budgets after the limits: a request refused for its rate spends nothing.
        *([("budgets", _budgets(config, parts, billing, shared))] if billing is not None else []),
        # Global admission last: a refused client never takes one of the shared slots.
        ("admission", admission),
    ]
    return Layers([layer for name, layer in layers if parts.wants(name)])


def _budgets(
    config: Config, parts: Parts, billing: Billing, shared: Shared | None
) -> ClientBudgets:
    """The budgets layer, its estimate priced at the dearest input of the chains' members."""
    prices = [billing.prices.prices.get(m.model) for c in config.chains.values() for m in c.members]
    top = max((p.above or p.base).input for p in prices if p is not None) if any(prices) else 0.0
    fleet = shared.spending if shared is not None else None
    budgets = ClientBudgets(
        config.clients, parts.spending, billing, top, parts.counters, parts.writer, fleet
    )
    parts.spending.zone = ZoneInfo(config.budgets_timezone)
    return budgets


def _token_owner(owners: Owners | None) -> TokenOwner | None:
    """Who made an ephemeral token, from the registry (a token is a resource like any other)."""
    if owners is None:
        return None

    async def owner(token: str) -> str | None:
        if not token.startswith("auth_tokens/"):
            return None
        holder = await owners.find(token)
        return holder.client if holder is not None and holder.kind == TOKEN.tag else None

    return owner


def _admin_gate(config: Config, parts: Parts, before: Layers | None) -> AdminGate:
    """The admin gate; across a reload, the failed attempts it counted carry over."""
    listen = config.listen
    secure = listen.tls is not None or listen.public_url.startswith("https://")
    gate = AdminGate(listen.admin_key, secure=secure, clock=parts.clock)
    old = before.find(AdminGate) if before is not None else None
    if old is not None:
        gate.failures = old.failures
    return gate


def _key_ids(config: Config) -> dict[str, tuple[str, ...]]:
    """Each responder's keys, named by digest (local responders have one pseudo-key)."""
    return {
        name: tuple(key_id(k) for k in getattr(conf.spec, "api_keys", ())) or ("local",)
        for name, conf in config.responders.items()
    }


def _runtime(
    config: Config,
    parts: Parts,
    now: Callable[[], datetime],
    session: aiohttp.ClientSession,
    store: Store | None,
    before: Runtime | None,
    remote: RemoteMap | None = None,
) -> Runtime:
    responders = {
        name: build_responder(name, conf.type, conf.spec, session, config.limits.max_response_bytes)
        for name, conf in config.responders.items()
    }
    rotator = Rotator(
        config.rotation,
        responders,
        parts.cooldowns,
        parts.counters,
        parts.pacer,
        parts.observer,
        now,
        queue_timeout_s=config.limits.queue_timeout_s,
        budget=parts.budget,
    )
    parts.budget.requota(config.quotas)
    parts.pacer.enabled = config.limits.adaptive
    keys = _key_ids(config)
    if before is not None:
        rotator.turns, rotator.streaks, rotator.rests, rotator.blind = (
            before.rotator.turns,
            before.rotator.streaks,
            before.rotator.rests,
            before.rotator.blind,
        )
        rotator.sticky.turns = before.rotator.sticky.turns
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
        memory=(
            Memory(store, config.store.memory_turns, config.store.memory_tokens)
            if store is not None
            else None
        ),
        writer=parts.writer if store is not None else None,
        rotator=rotator,
        owners=(
            before.owners.rekeyed(keys)
            if before is not None
            else Owners(keys, store.db if store is not None else None, remote)
        ),
        uploads=before.uploads if before is not None else Uploads(),
        keys=before.keys if before is not None else KeyPicker(parts.cooldowns),
        live_sessions=before.live_sessions if before is not None else Counter(),
        live_budget=_live_budget(config, before),
        billing=_billing(config, responders),
        store=store,
        spending=parts.spending,
    )


def _billing(config: Config, responders: Mapping[str, Responder]) -> Billing:
    """The shipped price table under the config's ``pricing:``."""
    _, table = shipped()
    free = frozenset(name for name, conf in config.responders.items() if conf.free_tier)
    return Billing(PriceBook({**table, **config.pricing}), free, responders)


def _live_budget(config: Config, before: Runtime | None) -> ByteBudget:
    """The Live byte budget: the same one across a reload (what is in flight stays counted),
    with the new cap."""
    budget = before.live_budget if before is not None else ByteBudget(0)
    budget.cap = config.limits.max_live_bytes_in_flight
    return budget


def digest(path: str) -> str:
    """A short digest of the config file's bytes ("" when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return ""


def build(
    config: Config,
    parts: Parts,
    now: Callable[[], datetime],
    session: aiohttp.ClientSession,
    store: Store | None,
    before: Generation | None = None,
    shared: Shared | None = None,
) -> Generation:
    """A generation for ``config``; with ``before``, what it learned carries over."""
    browser = Browser(config.listen.cors_origins)
    runtime = _runtime(
        config,
        parts,
        now,
        session,
        store,
        before.runtime if before is not None else None,
        shared.fleet.owners if shared is not None else None,
    )
    runtime.shared = shared
    runtime.rotator.coordination = shared
    return Generation(
        runtime=runtime,
        layers=config_layers(
            config,
            parts,
            browser,
            before.layers if before else None,
            shared,
            runtime.uploads,
            runtime.owners,
            runtime.billing if any(c.budget.any for c in config.clients) else None,
        ),
        browser=browser,
        version=before.version + 1 if before is not None else 1,
        digest=digest(config.file),
        loaded_at=time.time(),
    )
