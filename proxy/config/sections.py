"""Each top-level section of the YAML, read into its dataclass; every mistake is recorded with
its line, key and value (see :class:`proxy.reader.Reader`)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path
from typing import Any

from proxy.config.chains import read_quota
from proxy.config.types import (
    Chain,
    Client,
    ClientBudget,
    Listen,
    Member,
    ResponderConf,
    Rotation,
    Tls,
)
from proxy.reader import Reader, show
from proxy.responders import REGISTRY
from proxy.yamlsource import Source, dotted

ROTATION_KINDS = ("timeout", "connect", "empty")


def read_listen(r: Reader) -> Listen:
    out = Listen(
        host=r.text("host", "127.0.0.1"),
        port=r.whole("port", 8081, low=0, high=65535),
        cors_origins=r.texts("cors_origins"),
        admin_key=r.text("admin_key", ""),
        shutdown_grace_s=r.number("shutdown_grace_s", 10.0, high=3600),
        header_timeout_s=r.number("header_timeout_s", 10.0, low=1, high=3600),
        body_timeout_s=r.number("body_timeout_s", 30.0, low=1, high=3600),
        body_deadline_s=r.number("body_deadline_s", 60.0, low=1, high=86_400),
        max_connections=r.whole("max_connections", 0, low=0, high=10_000_000),
        public_url=_public_url(r),
        trusted_proxies=_networks(r),
        tls=_read_tls(r.section("tls")) if r.has("tls") else None,
    )
    r.finish()
    return out


def _public_url(r: Reader) -> str:
    url = r.text("public_url", "").rstrip("/")
    if url and (not url.startswith(("http://", "https://")) or "@" in url):
        r.bad("public_url", url, "must be an http:// or https:// URL with no user part")
        return ""
    return url


def _networks(r: Reader) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``trusted_proxies``, parsed once here (addresses, or networks in CIDR)."""
    out = []
    for i, text in enumerate(r.texts("trusted_proxies")):
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            where = (*r.where("trusted_proxies"), i)
            r.source.error(where, f"key '{dotted(where)}' has value '{text}': not an address")
    return tuple(out)


def _read_tls(r: Reader) -> Tls | None:
    files = {}
    for key in ("cert_file", "key_file"):
        path = r.text(key, required=True)
        if path and not Path(path).is_file():
            r.bad(key, path, "no such file")
        files[key] = path
    r.finish()
    return Tls(**files) if all(files.values()) else None


def read_responders(r: Reader) -> dict[str, ResponderConf]:
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
        quota = read_quota(sub)
        free = sub.flag("free_tier", False) if type_ in REMOTE_TYPES else False
        spec = REGISTRY[type_].parse(sub)
        sub.finish()
        out[name] = ResponderConf(name, type_, spec, quota, free)
    return out


def read_rotation(r: Reader) -> Rotation:
    statuses: set[int] = set()
    kinds: set[str] = set()
    listed = r.raw("on", [429, 503, "timeout", "connect", "empty"]) or []
    if not isinstance(listed, list):
        r.bad("on", listed, "must be a list of HTTP statuses, 'timeout', 'connect', 'empty'")
        listed = []
    for item in listed:
        if item == 400:
            r.bad("on", item, "a 400 is the request's fault: another model would refuse it too")
        elif isinstance(item, int) and not isinstance(item, bool) and 400 <= item <= 599:
            statuses.add(item)
        elif item in ROTATION_KINDS:
            kinds.add(str(item))
        else:
            r.bad(
                "on", item, "each entry must be an HTTP status 400-599, timeout, connect or empty"
            )
    out = Rotation(
        statuses=frozenset(statuses),
        on_timeout="timeout" in kinds,
        on_connect="connect" in kinds,
        on_empty="empty" in kinds,
        cooldown_s=r.number("cooldown_s", 60.0, high=7 * 86_400),
        max_attempts=r.whole("max_attempts", 6, low=1, high=1000),
        disabled_s=r.number("disabled_s", 300.0, low=1, high=7 * 86_400),
        deadline_s=r.number("deadline_s", 150.0, low=0.001, high=86_400),
        timeout_streak=r.whole("timeout_streak", 3, high=1000),
    )
    r.finish()
    return out


def read_clients(source: Source, raw: Any) -> tuple[Client, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        shown = show(source, ("clients",), raw)
        source.error(("clients",), f"key 'clients' has {shown}: must be a list of clients")
        return ()
    out: list[Client] = []
    for i, item in enumerate(raw):
        r = Reader(source, ("clients", i), item)
        client = Client(
            name=r.text("name", required=True),
            key=r.text("key", required=True),
            requests_per_minute=r.whole("requests_per_minute", 0),
            tokens_per_minute=r.whole("tokens_per_minute", 0),
            budget=_budget(r.section("budget")) if r.has("budget") else ClientBudget(),
        )
        r.finish()
        if client.name in {c.name for c in out}:
            r.bad("name", client.name, "another client has this name")
        if client.key and client.key in {c.key for c in out}:
            r.error("key", f"key 'clients[{i}].key' is the same as another client's")
        out.append(client)
    return tuple(out)


def _budget(r: Reader) -> ClientBudget:
    out = ClientBudget(
        usd_per_day=r.number("usd_per_day", 0.0),
        usd_per_month=r.number("usd_per_month", 0.0),
        tokens_per_day=r.whole("tokens_per_day", 0),
    )
    r.finish()
    return out


def read_section(r: Reader, key: str, cls: type[Any], fields: dict[str, Any]) -> Any:
    sub = r.section(key)
    values = {}
    defaults = cls()
    for name, reader in fields.items():
        values[name] = reader(sub, name, getattr(defaults, name))
    sub.finish()
    return cls(**values)


REMOTE_TYPES = ("gemini", "vertex")


def _credentialed(spec: Any) -> bool:
    """A remote responder with a key or a credential to send."""
    return bool(
        spec.api_keys or getattr(spec, "service_account", "") or getattr(spec, "adc", False)
    )


def apply_without_keys(
    responders: dict[str, ResponderConf], chains: dict[str, Chain], source: Source
) -> list[str]:
    """Serve the members of a gemini or vertex responder with no credentials from its
    ``without_keys`` responder."""
    notices: list[str] = []
    for conf in list(responders.values()):
        spec = conf.spec
        if conf.type not in REMOTE_TYPES or _credentialed(spec) or not spec.without_keys:
            continue
        stand_in = responders.get(spec.without_keys)
        if stand_in is None or stand_in.type in REMOTE_TYPES:
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
                chains[chain.name] = replace(chain, members=tuple(dict.fromkeys(members)))
        notices.append(
            f"responder '{conf.name}' has no API key (is GEMINI_API_KEYS or GEMINI_API_KEY "
            f"set?): chains {', '.join(used) or '(none)'} are served by the {stand_in.type} "
            f"responder '{stand_in.name}' instead"
        )
    return notices
