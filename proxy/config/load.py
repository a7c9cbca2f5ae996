"""Loading a config file: YAML with lines, ``${VAR}`` interpolation, then every section."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxy.config.chains import read_chains
from proxy.config.pricing import read_pricing
from proxy.config.secrets import hide_secrets
from proxy.config.sections import (
    apply_without_keys,
    read_clients,
    read_listen,
    read_responders,
    read_rotation,
    read_section,
)
from proxy.config.types import (
    NO_QUOTA,
    Config,
    ConfigError,
    Limits,
    Quota,
    Store,
    Surface,
    Tracing,
)
from proxy.reader import Reader
from proxy.yamlsource import Issue, Source, load


def _prefixes(r: Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """``surface.passthrough``: path prefixes under a version, written without it."""
    out = []
    for text in r.texts(key, default):
        prefix = text.strip().lstrip("/")
        if not prefix or prefix.split("/", 1)[0] in ("v1", "v1beta", "v1alpha") or ".." in prefix:
            r.bad(key, text, "must be a path prefix under the version, such as 'tunings'")
            continue
        out.append(prefix)
    return tuple(out)


def _timezone(r: Reader) -> str:
    """``budgets.timezone``: an IANA name (``Europe/Paris``); budgets' days begin there."""
    name = r.text("timezone", "UTC")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        r.bad("timezone", name, "must be an IANA time zone such as UTC or Europe/Paris")
        name = "UTC"
    r.finish()
    return name


def parse_config(source: Source) -> Config:
    """Build the :class:`Config` of an already loaded source; raise ``ConfigError`` on issues."""
    hide_secrets(source)
    top = Reader(source, (), source.data)
    listen = read_listen(top.section("listen"))
    responders = read_responders(top.section("responders"))
    declared: dict[tuple[str, str], Quota] = {}
    chains = read_chains(top.section("chains"), responders, declared)
    rotation = read_rotation(top.section("rotation"))
    top.seen.add("clients")
    clients = read_clients(
        source, source.data.get("clients") if isinstance(source.data, dict) else None
    )

    def num(r: Reader, k: str, d: Any) -> Any:
        return r.whole(k, d) if isinstance(d, int) and not isinstance(d, bool) else r.number(k, d)

    def text(r: Reader, k: str, d: str) -> str:
        return r.text(k, d)

    def flag(r: Reader, k: str, d: bool) -> bool:
        return r.flag(k, d)

    limits = read_section(
        top,
        "limits",
        Limits,
        {
            "max_concurrent": num,
            "max_concurrent_per_client": lambda r, k, d: r.whole(k, d, low=-1, high=10_000_000),
            "requests_per_second": num,
            "max_body_bytes": num,
            "adaptive": flag,
            "queue_timeout_s": num,
            "max_upload_bytes": num,
            "max_live_sessions": num,
            "max_response_bytes": num,
            "max_live_frame_bytes": lambda r, k, d: r.whole(k, d, low=1024, high=2**31),
            "max_live_bytes_in_flight": lambda r, k, d: r.whole(k, d, low=1024, high=2**40),
        },
    )
    tracing = read_section(
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

    def shared_url(r: Reader, key: str, default: str) -> str:
        url = r.text(key, default)
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            r.bad(key, url, "must be a redis://, rediss:// or unix:// URL")
            return ""
        return url

    store = read_section(
        top,
        "store",
        Store,
        {
            "path": text,
            "retention_days": num,
            "shared": shared_url,
            "shared_fail": lambda r, k, d: r.choice(k, d, ("open", "closed")),
            "memory_turns": num,
            "memory_tokens": num,
            "maintenance_s": num,
            "on_corrupt": lambda r, k, d: r.choice(k, d, ("move_aside", "refuse")),
        },
    )
    surface = read_section(top, "surface", Surface, {"passthrough": _prefixes})
    pricing = read_pricing(top.section("pricing")) if top.has("pricing") else {}
    budgets_timezone = _timezone(top.section("budgets")) if top.has("budgets") else "UTC"
    top.finish()
    notices = apply_without_keys(responders, chains, source)
    if source.issues:
        raise ConfigError(source.file, source.issues)
    quotas = {
        (m.responder, m.model): declared.get((m.responder, m.model), NO_QUOTA).over(
            responders[m.responder].quota
        )
        for chain in chains.values()
        for m in chain.members
    }
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
        surface=surface,
        pricing=MappingProxyType(pricing),
        budgets_timezone=budgets_timezone,
        notices=tuple(notices),
        quotas=MappingProxyType({k: q for k, q in quotas.items() if q != NO_QUOTA}),
    )


def load_config(file: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Load, interpolate and validate ``file``; raise :class:`ConfigError` listing every issue."""
    source = load(file, os.environ if env is None else env)
    if source.data is None:
        if not source.issues:  # a document that builds to nothing, such as a bare tag "!"
            source.issues.append(Issue(1, "the file must be a mapping of the config's sections"))
        raise ConfigError(source.file, source.issues)
    return parse_config(source)
