"""What the running app holds, on typed ``web.AppKey``s: no module-level mutable state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from proxy.config import Config
from proxy.events import Bus
from proxy.metrics import Counters
from proxy.resources.owners import Owners
from proxy.resources.uploads import Uploads
from proxy.responders import Responder
from proxy.routing.chain import Resolver
from proxy.routing.cooldown import Cooldowns
from proxy.routing.keys import KeyPicker
from proxy.routing.pacing import Pacer
from proxy.routing.rotation import Rotator
from proxy.store.memory import Memory
from proxy.store.writer import Writer
from proxy.telemetry.attempts import Observer
from proxy.telemetry.prom import Prom


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
    draining: bool = False


CONFIG = web.AppKey("config", Config)
RUNTIME = web.AppKey("runtime", Runtime)
