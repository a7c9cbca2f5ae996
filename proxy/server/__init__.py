"""Runs the app: checks that the bind is safe, says what it serves, and shuts down cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import signal
import ssl
import subprocess
import sys
from typing import Any

from aiohttp import web

from proxy.accesslog import AccessLogger, quiet_bad_requests
from proxy.app import create_app
from proxy.config import Config, Listen
from proxy.middleware.errors import error_response
from proxy.server.bind import BindRefused as BindRefused
from proxy.server.bind import check_bind
from proxy.server.connections import ConnectionLimits, GuardedRunner, GuardedServer
from proxy.server.reload import Reloader
from proxy.state import LIVE

log = logging.getLogger("l104")


class TlsRefused(Exception):
    """``listen.tls`` names a certificate or key that cannot be loaded."""


def _loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional speed-up, absent on some platforms

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def announce(config: Config, host: str, port: int, workers: int) -> None:
    """Refuse an unsafe bind, then say once what is served and from where."""
    check_bind(config, host)
    for notice in config.notices:
        log.warning("%s", notice)
    chains = "; ".join(
        f"{c.name}: {' -> '.join(m.label for m in c.members)}" for c in config.chains.values()
    )
    many = f", {workers} workers" if workers > 1 else ""
    if workers > 1 and not config.store.shared:
        log.warning(
            "%d workers without store.shared: each keeps its own cooldowns, paces, limits and "
            "counters (a client's limit becomes %d times its limit). Set store.shared to a "
            "Redis URL to share them.",
            workers,
            workers,
        )
    scheme = config.listen.scheme
    log.info("L104 Proxy on %s://%s:%d (%s%s)", scheme, host, port, chains, many)


GC_THRESHOLDS = (3_000, 10, 10)


async def _settle_gc(app: web.Application) -> None:
    # Everything built at start-up lives as long as the process: move it out of the collector's
    # way. The young generation is collected at 3,000 objects, not Python's 700: measured side
    # by side under load (bench.ab), 700 cost 13 µs a request more than 2,000 to 5,000, and
    # 20,000 (what this was) 29 µs more than 3,000: a young generation that big no longer fits
    # the CPU's caches while it is walked.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context from ``listen.tls`` (HTTPS and WSS on the same port)."""
    tls = config.listen.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsRefused(
            f"cannot use listen.tls ({tls.cert_file}, {tls.key_file}) from {config.file}: {exc}"
        ) from None
    return context


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one: every client and upstream
    connection is a file, and a default soft limit of 1,024 is reached long before the CPU is.
    Returns the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return soft, hard


def _refuse_draining(request: web.BaseRequest) -> web.StreamResponse:
    response = error_response(
        request.path, 503, "The proxy is shutting down; retry on another replica.", 1.0
    )
    response.force_close()
    return response


async def _serve(
    app: web.Application, config: Config, host: str, port: int, watch: bool, **site: Any
) -> None:
    listen = config.listen
    reloader = Reloader(app[LIVE], config.file, host)
    tasks: set[asyncio.Task[Any]] = set()

    def reload() -> None:
        task = asyncio.create_task(reloader.reload("SIGHUP"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    runner = GuardedRunner(
        app,
        ConnectionLimits(
            listen.header_timeout_s,
            listen.body_timeout_s,
            max_connections(listen),
            body_deadline_s=listen.body_deadline_s,
            max_upload_bytes=config.limits.max_upload_bytes,
        ),
        access_log=logging.getLogger("l104.access"),
        access_log_class=AccessLogger,
        handler_cancellation=True,
        shutdown_timeout=listen.shutdown_grace_s,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # From here a SIGTERM stops the server cleanly, even one that comes while it starts.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runner.setup()
        if not stop.is_set():
            await web.TCPSite(runner, host, port, backlog=1024, **site).start()
        loop.add_signal_handler(signal.SIGHUP, reload)
        if watch:
            tasks.add(asyncio.create_task(reloader.watch(), name="l104:watch"))
        await stop.wait()
        for task in tasks:
            task.cancel()
        log.info("stopping: requests in flight have %.0f s to finish", listen.shutdown_grace_s)
        server = runner.server
        if isinstance(server, GuardedServer):
            server.draining = _refuse_draining
    finally:
        await runner.cleanup()


def max_connections(listen: Listen) -> int:
    """``listen.max_connections``, or by default what the open-file limit leaves: each client
    connection may need an upstream one too, and the store, logs and Redis need a few."""
    if listen.max_connections:
        return listen.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, (soft - 128) // 2)


def serve(
    config: Config,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    watch: bool = False,
    only: frozenset[str] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. On the signal the listener closes, ``/ready`` and any new
    request answer 503, and requests in flight have ``listen.shutdown_grace_s`` to finish."""
    raise_fd_limit()
    context = tls_context(config)
    quiet_bad_requests()
    app = create_app(config, only=only)
    app.on_startup.append(_settle_gc)
    loop = _loop()
    try:
        loop.run_until_complete(
            _serve(
                app, config, host, port, watch, reuse_port=reuse_port or None, ssl_context=context
            )
        )
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    sys.stdout.flush()


def supervise(argv: list[str], workers: int) -> int:
    """Run ``workers`` copies of this server on one port (SO_REUSEPORT); the kernel spreads the
    connections. Each worker keeps its own state (cooldowns, counters) until state is shared.
    SIGTERM/SIGINT are passed on; the exit code is the worst of the workers'."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "proxy", *argv, "--reuse-port"],
            env={**os.environ, "L104_WORKER": str(i)},  # its own journal of the store
        )
        for i in range(workers)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)  # each worker reloads its own config
    codes = [child.wait() for child in children]
    # A worker stopped by the signal passed on, before it could handle it (it was still
    # starting), did as it was asked.
    codes = [0 if code in (-signal.SIGTERM, -signal.SIGINT) else code for code in codes]
    return max(codes, key=abs)
