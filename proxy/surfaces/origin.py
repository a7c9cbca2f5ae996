"""The proxy's own address as the client reaches it, for the URLs the proxy hands out (a
resumable upload's): ``listen.public_url`` when set; else the scheme and host the request came
with, where ``X-Forwarded-Proto``/``X-Forwarded-Host`` count only from ``listen.trusted_proxies``
(a TLS terminator in front); never the upstream's."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from proxy.config import Listen


def trusted(listen: Listen, peer: str | None) -> bool:
    """Whether ``peer`` is one of ``listen.trusted_proxies``."""
    if not listen.trusted_proxies or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in listen.trusted_proxies)


def public_base(request: web.Request, listen: Listen) -> str:
    """``scheme://host[:port]`` of the proxy as this request's client reaches it."""
    if listen.public_url:
        return listen.public_url
    scheme, host = listen.scheme, request.host
    if trusted(listen, request.remote):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        if forwarded:
            host = forwarded
    return f"{scheme}://{host}"
