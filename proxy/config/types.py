"""The config as frozen dataclasses: what the rest of the proxy reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from proxy.billing.prices import Price
from proxy.yamlsource import Issue


class ConfigError(Exception):
    """The config has errors; ``lines`` holds each as ``FILE:LINE: message``."""

    def __init__(self, file: str, issues: list[Issue]) -> None:
        ordered = sorted(issues, key=lambda i: i.line)
        self.lines = [f"{file}:{i.line}: {i.message}" for i in ordered]
        self.line_numbers = [i.line for i in ordered]
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True, slots=True)
class Tls:
    """``listen.tls``: serve HTTPS (and WSS) from the same port."""

    cert_file: str
    key_file: str


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8081
    cors_origins: tuple[str, ...] = ()
    tls: Tls | None = None
    admin_key: str = ""  # closes the status page and /metrics*; empty: open
    shutdown_grace_s: float = 10.0  # on SIGTERM, how long requests in flight may finish
    header_timeout_s: float = 10.0  # from a request's first byte to its complete head
    body_timeout_s: float = 30.0  # the longest pause inside a request body
    # The longest a whole request body may take (uploads get more, by their size).
    body_deadline_s: float = 60.0
    max_connections: int = 0  # open client connections; 0: what the open-file limit allows
    # The proxy's address as clients reach it (behind a TLS terminator): upload URLs use it.
    public_url: str = ""
    # Peers whose X-Forwarded-Proto/-Host are believed (addresses or networks, CIDR).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()

    def __repr__(self) -> str:  # SECURITY: the admin key never reaches a log line.
        return (
            f"Listen(host={self.host!r}, port={self.port}, cors_origins={self.cors_origins!r}, "
            f"tls={self.tls!r}, admin_key={'set' if self.admin_key else 'unset'}, "
            f"shutdown_grace_s={self.shutdown_grace_s}, header_timeout_s={self.header_timeout_s}, "
            f"body_timeout_s={self.body_timeout_s}, body_deadline_s={self.body_deadline_s}, "
            f"max_connections={self.max_connections}, public_url={self.public_url!r}, "
            f"trusted_proxies={self.trusted_proxies!r})"
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True, slots=True)
class Quota:
    """A declared quota of one (project, model): requests and tokens a minute, requests a day.
    0 means not declared. Every project of a responder gets it (a tier is per project)."""

    rpm: int = 0
    tpm: int = 0
    rpd: int = 0

    def over(self, default: Quota) -> Quota:
        """This quota, with what it leaves undeclared taken from ``default``."""
        return Quota(self.rpm or default.rpm, self.tpm or default.tpm, self.rpd or default.rpd)


NO_QUOTA = Quota()


@dataclass(frozen=True, slots=True)
class ResponderConf:
    name: str
    type: str
    spec: Any
    quota: Quota = NO_QUOTA  # the default for its models
    free_tier: bool = False  # its rows cost 0 (what they would have cost is kept too)


@dataclass(frozen=True, slots=True)
class Member:
    """One link of a chain: ``model`` on ``responder``."""

    responder: str
    model: str
    # False: a model without function calling, skipped by a request that uses tools.
    tools: bool = field(default=True, compare=False)

    @property
    def label(self) -> str:
        return f"{self.responder}:{self.model}"


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    members: tuple[Member, ...]
    # Other model names this chain answers for: exact names, or globs ("gemini-*-flash*").
    aliases: tuple[str, ...] = ()
    # The steps of one function-calling turn stay on the member that began it (until a 429).
    sticky_turn: bool = False


@dataclass(frozen=True, slots=True)
class Rotation:
    statuses: frozenset[int] = frozenset({429, 503})
    on_timeout: bool = True
    on_connect: bool = True
    on_empty: bool = True  # an empty 200 is a failed attempt (no cooldown)
    cooldown_s: float = 60.0
    max_attempts: int = 6
    disabled_s: float = 300.0  # how long a key the upstream calls invalid is left out
    deadline_s: float = 150.0  # for the whole request: every attempt together
    timeout_streak: int = 3  # timeouts in a row before a member is set aside (0: never)


@dataclass(frozen=True, slots=True)
class ClientBudget:
    """``budget:``: what a client may spend (0: no limit), per day and month in
    ``budgets.timezone``."""

    usd_per_day: float = 0.0
    usd_per_month: float = 0.0
    tokens_per_day: int = 0

    @property
    def any(self) -> bool:
        return bool(self.usd_per_day or self.usd_per_month or self.tokens_per_day)


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    key: str
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    budget: ClientBudget = ClientBudget()

    def __repr__(self) -> str:  # SECURITY: a client's key never reaches a log line.
        return f"Client(name={self.name!r})"


@dataclass(frozen=True, slots=True)
class Limits:
    max_concurrent: int = 256
    # One client's share of max_concurrent; -1: a quarter of it (0: no cap of its own).
    max_concurrent_per_client: int = -1
    requests_per_second: float = 0.0
    # Above Gemini's own 20 MB request limit: the proxy never refuses what Gemini takes.
    max_body_bytes: int = 24 * 1024 * 1024
    adaptive: bool = True
    queue_timeout_s: float = 1.0
    # Uploads stream through and have their own limit: Gemini's 2 GB a file.
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024
    max_live_sessions: int = 16  # per client; 0: no cap
    max_response_bytes: int = 64 * 1024 * 1024  # a unary answer larger than this is a 502
    # A Live frame larger than this closes its session with 1009 (audio chunks are a few KB).
    max_live_frame_bytes: int = 4 * 1024 * 1024
    # Live frames read but not yet sent on, over every session: past it, reading waits.
    max_live_bytes_in_flight: int = 64 * 1024 * 1024

    @property
    def per_client_slots(self) -> int:
        """Slots one client may hold (0: no cap of its own)."""
        if self.max_concurrent_per_client >= 0:
            return self.max_concurrent_per_client
        return max(1, self.max_concurrent // 4) if self.max_concurrent else 0


@dataclass(frozen=True, slots=True)
class Tracing:
    exporter: str = "none"
    endpoint: str = "http://127.0.0.1:4318"
    service_name: str = "l104-proxy"
    capture_content: bool = False
    sample_ratio: float = 0.01


@dataclass(frozen=True, slots=True)
class Surface:
    """``passthrough``: path prefixes under ``/{v}/`` (``tunings``, ``corpora/``) that go
    upstream as they are, on keys taken in turn; any other path the proxy does not serve is a
    404 that names it."""

    passthrough: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Store:
    """``path: ""`` turns the store off (no ledger, memory or saved state)."""

    path: str = "data/l104.db"
    retention_days: float = 30.0
    shared: str = ""  # redis://… : state shared by every worker and host
    shared_fail: str = "open"  # Redis unreachable: serve on local state; "closed": answer 503
    memory_turns: int = 20
    memory_tokens: int = 8000
    maintenance_s: float = 300.0
    on_corrupt: str = "move_aside"  # or "refuse": exit 2 rather than start fresh

    def __repr__(self) -> str:  # SECURITY: a Redis password never reaches a log line.
        return (
            f"Store(path={self.path!r}, shared={redact_url(self.shared)!r}, "
            f"shared_fail={self.shared_fail!r})"
        )


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``, and a
    ``password=`` in the query (``unix:///run/redis.sock?password=secret``) -> ``password=***``."""
    url = _QUERY_PASSWORD.sub(r"\1password=***", url)
    scheme, sep, rest = url.partition("://")
    auth, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = auth.split(":", 1)[0] if ":" in auth else ""
    return f"{scheme}://{user}:***@{host}"


_QUERY_PASSWORD = re.compile(r"([?&])password=[^&#]*")


@dataclass(frozen=True, slots=True)
class Config:
    file: str
    listen: Listen
    responders: Mapping[str, ResponderConf]
    chains: Mapping[str, Chain]
    rotation: Rotation = Rotation()
    clients: tuple[Client, ...] = ()
    limits: Limits = Limits()
    tracing: Tracing = Tracing()
    store: Store = Store()
    surface: Surface = Surface()
    pricing: Mapping[str, Price] = field(default_factory=dict)  # over the shipped table
    budgets_timezone: str = "UTC"  # where the clients' budget days and months begin
    notices: tuple[str, ...] = field(default=())
    # Declared quotas per (responder, model): a member's own over its responder's default.
    quotas: Mapping[tuple[str, str], Quota] = field(default_factory=dict)

    @property
    def default_chain(self) -> Chain:
        """The chain named ``default``, else the first one declared."""
        return self.chains.get("default") or next(iter(self.chains.values()))
