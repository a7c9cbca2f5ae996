"""Runs the app: checks that the bind is safe, says what it serves, and shuts down cleanly."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys

from aiohttp import web

from proxy.app import create_app
from proxy.config import Config

log = logging.getLogger("l104")


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


def _loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional speed-up, absent on some platforms

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def serve(config: Config, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; ``/ready`` answers 503 while draining."""
    check_bind(config, host)
    for notice in config.notices:
        log.warning("%s", notice)
    chains = "; ".join(
        f"{c.name}: {' -> '.join(m.label for m in c.members)}" for c in config.chains.values()
    )
    log.info("L104 Proxy on http://%s:%d (%s)", host, port, chains)
    web.run_app(
        create_app(config),
        host=host,
        port=port,
        loop=_loop(),
        access_log=None,
        print=None,
        handler_cancellation=True,
        shutdown_timeout=10.0,
    )
    sys.stdout.flush()
