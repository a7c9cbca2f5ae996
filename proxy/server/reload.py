"""Hot reload: on SIGHUP, or with ``serve --watch`` when the config file changes.

The new file is loaded and validated in full first; an invalid one keeps the running config and
logs every error as ``FILE:LINE: message``. A valid one becomes a new generation, swapped in
with one assignment: requests in flight finish on the generation they started on, and what the
proxy learned (cooldowns, paces, counters, windows) carries over for members that still exist.
A few settings are read only at start (the listening socket, TLS, the store, tracing, the body
limit): a change to them is logged as waiting for a restart, and the rest is applied.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from proxy.config import Config, ConfigError, load_config
from proxy.server.bind import BindRefused, check_bind
from proxy.state import Live

log = logging.getLogger("l104")
WATCH_S = 1.0


def read_at_start(old: Config, new: Config) -> Iterator[str]:
    """The settings that differ between ``old`` and ``new`` and take a restart to apply."""
    pairs = {
        "listen.host": (old.listen.host, new.listen.host),
        "listen.port": (old.listen.port, new.listen.port),
        "listen.tls": (old.listen.tls, new.listen.tls),
        "listen.header_timeout_s": (old.listen.header_timeout_s, new.listen.header_timeout_s),
        "listen.body_timeout_s": (old.listen.body_timeout_s, new.listen.body_timeout_s),
        "listen.body_deadline_s": (old.listen.body_deadline_s, new.listen.body_deadline_s),
        "listen.max_connections": (old.listen.max_connections, new.listen.max_connections),
        "listen.shutdown_grace_s": (old.listen.shutdown_grace_s, new.listen.shutdown_grace_s),
        "limits.max_body_bytes": (old.limits.max_body_bytes, new.limits.max_body_bytes),
        "store": (old.store, new.store),
        "tracing": (old.tracing, new.tracing),
    }
    return (key for key, (a, b) in pairs.items() if a != b)


class Reloader:
    """Reloads ``path`` into ``live``; one reload at a time. ``host`` is the address served,
    so a reload cannot open the proxy to the network (no clients on a non-loopback bind)."""

    def __init__(self, live: Live, path: str, host: str) -> None:
        self.live = live
        self.path = path
        self.host = host
        self._lock = asyncio.Lock()

    async def reload(self, why: str) -> bool:
        """Load, check and swap in the config; False (and the running one kept) if it is bad."""
        async with self._lock:
            live = self.live
            assert live.generation is not None
            assert live.rebuild is not None
            old = live.generation.runtime.config
            try:
                config = load_config(self.path)
                check_bind(config, self.host)
            except ConfigError as exc:
                return self._refuse(exc.lines, exc.line_numbers)
            except BindRefused as exc:
                return self._refuse([f"{self.path}: {exc}"], [])
            for key in read_at_start(old, config):
                log.warning("reload: %s changed in %s; it takes effect at restart", key, self.path)
            live.generation = live.rebuild(config, live.generation)
            live.reload_error, live.reload_error_lines = [], []
            for notice in config.notices:
                log.warning("%s", notice)
            log.info(
                "config reloaded (%s): version %d, %s",
                why,
                live.generation.version,
                live.generation.digest,
            )
            return True

    def _refuse(self, lines: list[str], numbers: list[int]) -> bool:
        log.error("reload refused; the running config stays (%d errors):", len(lines))
        for line in lines:
            log.error("%s", line)
        self.live.reload_error, self.live.reload_error_lines = lines, numbers
        return False

    async def watch(self) -> None:
        """Reload whenever the file's identity or contents change (editors often replace the
        file rather than write into it). Polls: no extra dependency, and cheap at 1 s."""
        last = _stamp(self.path)
        while True:
            await asyncio.sleep(WATCH_S)
            now = _stamp(self.path)
            if now != last and now is not None:
                last = now
                await self.reload("the file changed")


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(Path(path))
    except OSError:
        return None  # mid-replace: look again on the next tick
    return st.st_ino, st.st_mtime_ns, st.st_size
