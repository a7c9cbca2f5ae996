"""What the running app holds, on typed ``web.AppKey``s: no module-level mutable state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from proxy.billing.budgets import Spending
from proxy.billing.charge import Billing
from proxy.config import Config
from proxy.events import Bus
from proxy.metrics import Counters
from proxy.middleware.browser import Browser
from proxy.middleware.layers import Layers
from proxy.resources.live_budget import ByteBudget
from proxy.resources.owners import Owners
from proxy.resources.uploads import Uploads
from proxy.responders import Responder
from proxy.routing.budget import Budget
from proxy.routing.chain import Resolver
from proxy.routing.cooldown import Cooldowns
from proxy.routing.keys import KeyPicker
from proxy.routing.pacing import Pacer
from proxy.routing.rotation import Rotator
from proxy.shared.coordinator import Shared
from proxy.store.db import Store
from proxy.store.memory import Memory
from proxy.store.writer import Writer
from proxy.telemetry.attempts import Observer
from proxy.telemetry.prom import Prom


@dataclass(frozen=True, slots=True)
class Parts:
    """What exists before start-up and lives as long as the process, across reloads: what
    the proxy learns while serving (cooldowns, paces, quota windows, counters) and the
    telemetry. ``config`` is the one it started with."""

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
    spending: Spending  # what clients spent per budget period (carried across reloads)
    # The middleware layers to build, by name (None: all). Only the bench's layer budget
    # leaves some out, to read what each one costs.
    only: frozenset[str] | None = None

    def wants(self, layer: str) -> bool:
        return self.only is None or layer in self.only


@dataclass(slots=True)
class Runtime:
    """The live parts built at start-up from the config."""

    config: Config
    responders: Mapping[str, Responder]
    resolver: Resolver
    cooldowns: Cooldowns
    counters: Counters
    pacer: Pacer
    observer: Observer
    prom: Prom
    bus: Bus
    memory: Memory | None
    writer: Writer | None
    rotator: Rotator
    owners: Owners
    uploads: Uploads
    keys: KeyPicker
    live_sessions: Counter[str] = field(default_factory=Counter)  # open Live sessions by client
    # Live frames' bytes between read and send, over every session (limits.max_live_*).
    live_budget: ByteBudget = field(default_factory=lambda: ByteBudget(64 * 1024 * 1024))
    shared: Shared | None = None  # store.shared: the fleet's state through Redis
    billing: Billing | None = None  # prices, for the ledger's costs
    store: Store | None = None  # the SQLite store (the ledger, for the usage API)
    spending: Spending | None = None  # the process's (Parts'): what clients spent, by period


@dataclass(frozen=True, slots=True)
class Generation:
    """One loaded config and everything built from it: a reload makes a new one and swaps it
    in with one assignment. A request keeps the generation it started on."""

    runtime: Runtime
    layers: Layers
    browser: Browser
    version: int  # 1 at start, one more for each reload that took
    digest: str  # of the file's bytes, to tell which text is running
    loaded_at: float  # Unix time


@dataclass(slots=True)
class Live:
    """What the app serves now. ``generation`` is set once start-up has built it."""

    generation: Generation | None = None
    # Builds the next generation from a config and the one before (set at start-up).
    rebuild: Callable[[Config, Generation | None], Generation] | None = None
    draining: bool = False
    reload_error: list[str] = field(default_factory=list)  # the last failed reload's errors
    reload_error_lines: list[int] = field(default_factory=list)  # and the file's lines they name

    @property
    def runtime(self) -> Runtime:
        assert self.generation is not None, "read before start-up built the runtime"
        return self.generation.runtime


LIVE = web.AppKey("live", Live)
REQUEST_RUNTIME = web.RequestKey("l104_runtime", Runtime)


def runtime_of(request: web.Request) -> Runtime:
    """The runtime of the config this request started on."""
    return request[REQUEST_RUNTIME]
