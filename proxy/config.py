"""The YAML config, parsed once into frozen dataclasses.

:func:`load_config` reads a file and returns a :class:`Config`, or raises :class:`ConfigError`
carrying every problem found as ``FILE:LINE: message``, each naming the key and the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.names import valid_model_name
from proxy.reader import Reader
from proxy.responders import REGISTRY
from proxy.yamlsource import Issue, Source, dotted, load


class ConfigError(Exception):
    """The config has errors; ``lines`` holds each as ``FILE:LINE: message``."""

    def __init__(self, file: str, issues: list[Issue]) -> None:
        self.lines = [f"{file}:{i.line}: {i.message}" for i in sorted(issues, key=lambda i: i.line)]
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8081
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponderConf:
    name: str
    type: str
    spec: Any


@dataclass(frozen=True, slots=True)
class Member:
    """One link of a chain: ``model`` on ``responder``."""

    responder: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.responder}:{self.model}"


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Rotation:
    statuses: frozenset[int] = frozenset({429, 503})
    on_timeout: bool = True
    on_connect: bool = True
    cooldown_s: float = 60.0
    max_attempts: int = 6


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    key: str
    requests_per_minute: int = 0
    tokens_per_minute: int = 0

    def __repr__(self) -> str:  # SECURITY: a client's key never reaches a log line.
        return f"Client(name={self.name!r})"


@dataclass(frozen=True, slots=True)
class Limits:
    max_concurrent: int = 256
    requests_per_second: float = 0.0
    max_body_bytes: int = 10 * 1024 * 1024
    adaptive: bool = True
    queue_timeout_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Tracing:
    exporter: str = "none"
    endpoint: str = "http://127.0.0.1:4318"
    service_name: str = "l104-proxy"
    capture_content: bool = False
    sample_ratio: float = 0.01


@dataclass(frozen=True, slots=True)
class Store:
    """``path: ""`` turns the store off (no ledger, memory or saved state)."""

    path: str = "data/l104.db"
    retention_days: float = 30.0
    shared: str = ""
    memory_turns: int = 20
    memory_tokens: int = 8000
    maintenance_s: float = 300.0


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
    notices: tuple[str, ...] = field(default=())

    @property
    def default_chain(self) -> Chain:
        """The chain named ``default``, else the first one declared."""
        return self.chains.get("default") or next(iter(self.chains.values()))


ROTATION_KINDS = ("timeout", "connect")


def _listen(r: Reader) -> Listen:
    out = Listen(
        host=r.text("host", "127.0.0.1"),
        port=r.whole("port", 8081, low=0, high=65535),
        cors_origins=r.texts("cors_origins"),
    )
    r.finish()
    return out


def _responders(r: Reader) -> dict[str, ResponderConf]:
    out: dict[str, ResponderConf] = {}
    if not r.data:
        r.error(None, "key 'responders' must declare at least one responder")
    for name in r.data:
        sub = r.section(name)
        type_ = sub.text("type", required=True)
        if type_ and type_ not in REGISTRY:
            sub.bad("type", type_, f"must be one of {', '.join(sorted(REGISTRY))}")
            continue
        if not type_:
            continue
        spec = REGISTRY[type_].parse(sub)
        sub.finish()
        out[name] = ResponderConf(name, type_, spec)
    return out


def _member(
    r: Reader, chain: str, i: int, text: Any, responders: Mapping[str, ResponderConf]
) -> Member | None:
    where = dotted((*r.where(chain), i))
    if not isinstance(text, str) or not text:
        r.source.error(
            (*r.where(chain), i),
            f"key '{where}' has value {text!r}: must be 'responder:model' or 'responder'",
        )
        return None
    name, _, model = text.partition(":")
    conf = responders.get(name)
    if conf is None:
        known = ", ".join(responders) or "none"
        r.source.error(
            (*r.where(chain), i),
            f"key '{where}' has value '{text}': no responder '{name}' (known: {known})",
        )
        return None
    if not model:
        if conf.type == "gemini":
            r.source.error(
                (*r.where(chain), i),
                f"key '{where}' has value '{text}': a gemini member needs a model, "
                f"as '{name}:gemini-2.5-flash'",
            )
            return None
        model = name
    if not valid_model_name(model):
        r.source.error(
            (*r.where(chain), i),
            f"key '{where}' has value '{text}': '{model}' is not a valid model name",
        )
        return None
    return Member(name, model)


def _chains(r: Reader, responders: Mapping[str, ResponderConf]) -> dict[str, Chain]:
    out: dict[str, Chain] = {}
    if not r.data:
        r.error(None, "key 'chains' must declare at least one chain")
    for name, items in r.data.items():
        r.seen.add(name)
        if not valid_model_name(name):
            r.bad(name, name, "a chain name must be a valid model name (letters, digits, . _ -)")
            continue
        if not isinstance(items, list) or not items:
            r.bad(name, items, "must be a non-empty list of members")
            continue
        members = [_member(r, name, i, item, responders) for i, item in enumerate(items)]
        good = tuple(m for m in members if m is not None)
        if len(set(good)) != len(good):
            r.error(name, f"key '{dotted(r.where(name))}' names a member twice")
        if good:
            out[name] = Chain(name, good)
    return out


def _rotation(r: Reader) -> Rotation:
    statuses: set[int] = set()
    kinds: set[str] = set()
    for item in r.raw("on", [429, 503, "timeout", "connect"]) or []:
        if isinstance(item, int) and not isinstance(item, bool) and 400 <= item <= 599:
            statuses.add(item)
        elif item in ROTATION_KINDS:
            kinds.add(str(item))
        else:
            r.bad("on", item, "each entry must be an HTTP status 400-599, 'timeout' or 'connect'")
    out = Rotation(
        statuses=frozenset(statuses),
        on_timeout="timeout" in kinds,
        on_connect="connect" in kinds,
        cooldown_s=r.number("cooldown_s", 60.0, high=7 * 86_400),
        max_attempts=r.whole("max_attempts", 6, low=1, high=1000),
    )
    r.finish()
    return out


def _clients(source: Source, raw: Any) -> tuple[Client, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        source.error(("clients",), f"key 'clients' has value {raw!r}: must be a list of clients")
        return ()
    out: list[Client] = []
    for i, item in enumerate(raw):
        r = Reader(source, ("clients", i), item)
        client = Client(
            name=r.text("name", required=True),
            key=r.text("key", required=True),
            requests_per_minute=r.whole("requests_per_minute", 0),
            tokens_per_minute=r.whole("tokens_per_minute", 0),
        )
        r.finish()
        if client.name in {c.name for c in out}:
            r.bad("name", client.name, "another client has this name")
        if client.key and client.key in {c.key for c in out}:
            r.error("key", f"key 'clients[{i}].key' is the same as another client's")
        out.append(client)
    return tuple(out)


def _section(r: Reader, key: str, cls: type[Any], fields: dict[str, Any]) -> Any:
    sub = r.section(key)
    values = {}
    defaults = cls()
    for name, reader in fields.items():
        values[name] = reader(sub, name, getattr(defaults, name))
    sub.finish()
    return cls(**values)


def _apply_without_keys(
    responders: dict[str, ResponderConf], chains: dict[str, Chain], source: Source
) -> list[str]:
    """Serve the members of a keyless gemini responder from its ``without_keys`` responder."""
    notices: list[str] = []
    for conf in list(responders.values()):
        spec = conf.spec
        if conf.type != "gemini" or spec.api_keys or not spec.without_keys:
            continue
        stand_in = responders.get(spec.without_keys)
        if stand_in is None or stand_in.type == "gemini":
            source.error(
                ("responders", conf.name, "without_keys"),
                f"key 'responders.{conf.name}.without_keys' has value "
                f"'{spec.without_keys}': must name a responder that needs no key",
            )
            continue
        used = []
        for chain in list(chains.values()):
            members = tuple(
                Member(stand_in.name, m.model) if m.responder == conf.name else m
                for m in chain.members
            )
            if members != chain.members:
                used.append(chain.name)
                chains[chain.name] = Chain(chain.name, tuple(dict.fromkeys(members)))
        notices.append(
            f"responder '{conf.name}' has no API key (is GEMINI_API_KEY set?): chains "
            f"{', '.join(used) or '(none)'} are served by the {stand_in.type} responder "
            f"'{stand_in.name}' instead"
        )
    return notices


def parse_config(source: Source) -> Config:
    """Build the :class:`Config` of an already loaded source; raise ``ConfigError`` on issues."""
    top = Reader(source, (), source.data)
    listen = _listen(top.section("listen"))
    responders = _responders(top.section("responders"))
    chains = _chains(top.section("chains"), responders)
    rotation = _rotation(top.section("rotation"))
    top.seen.add("clients")
    clients = _clients(
        source, source.data.get("clients") if isinstance(source.data, dict) else None
    )

    def num(r: Reader, k: str, d: Any) -> Any:
        return r.whole(k, d) if isinstance(d, int) and not isinstance(d, bool) else r.number(k, d)

    def text(r: Reader, k: str, d: str) -> str:
        return r.text(k, d)

    def flag(r: Reader, k: str, d: bool) -> bool:
        return r.flag(k, d)

    limits = _section(
        top,
        "limits",
        Limits,
        {
            "max_concurrent": num,
            "requests_per_second": num,
            "max_body_bytes": num,
            "adaptive": flag,
            "queue_timeout_s": num,
        },
    )
    tracing = _section(
        top,
        "tracing",
        Tracing,
        {
            "exporter": lambda r, k, d: r.choice(k, d, ("otlp", "console", "none")),
            "endpoint": text,
            "service_name": text,
            "capture_content": flag,
            "sample_ratio": lambda r, k, d: r.number(k, d, high=1.0),
        },
    )
    store = _section(
        top,
        "store",
        Store,
        {
            "path": text,
            "retention_days": num,
            "shared": text,
            "memory_turns": num,
            "memory_tokens": num,
            "maintenance_s": num,
        },
    )
    top.finish()
    notices = _apply_without_keys(responders, chains, source)
    if source.issues:
        raise ConfigError(source.file, source.issues)
    return Config(
        file=source.file,
        listen=listen,
        responders=MappingProxyType(responders),
        chains=MappingProxyType(chains),
        rotation=rotation,
        clients=clients,
        limits=limits,
        tracing=tracing,
        store=store,
        notices=tuple(notices),
    )


def load_config(file: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Load, interpolate and validate ``file``; raise :class:`ConfigError` listing every issue."""
    source = load(file, os.environ if env is None else env)
    if source.data is None:
        raise ConfigError(source.file, source.issues)
    return parse_config(source)
