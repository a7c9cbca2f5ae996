"""Where the proxy may listen: an open proxy (no client keys) only on a loopback address."""

from __future__ import annotations

import ipaddress

from proxy.config import Config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BindRefused(Exception):
    """An open proxy (no clients configured) may only listen on a loopback address."""


def check_bind(config: Config, host: str) -> None:
    if not config.clients and not is_loopback(host):
        raise BindRefused(
            f"refusing to listen on {host}: no clients are configured in {config.file}, so the "
            "proxy is open to anyone who reaches it. Add a 'clients:' list with keys, or listen "
            "on 127.0.0.1."
        )
