"""Client connections: how long a client may take to send a request, and how many may be open.

aiohttp has no header-read timeout: a client that trickles a request's head a byte at a time
holds its connection until the keep-alive timer (75 s), and enough of them exhaust the process's
file descriptors, so that ``/health`` itself cannot get in. This guard adds, as nginx does:

- ``header_timeout_s``: from a request's first byte to its complete head;
- ``body_timeout_s``: the longest pause between two pieces of a request body the proxy is
  waiting for;
- ``body_deadline_s``: the longest a whole body may take, from the request's head (a body
  sent a byte every few seconds never pauses long, and would hold an admission slot for ever);
  an upload gets more, by its size (``UPLOAD_FLOOR_BPS``);
- ``max_connections``: at the cap, idle keep-alive connections are closed to make room (oldest
  first, as nginx drains its keep-alive pool); with none idle, the new connection is closed.

One timer a second checks every connection, so the hot path pays no clock call: data received
stamps the current tick. Each limit is logged once when it starts being hit, and again when the
episode ends, with the count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy.responders.base import Hold

log = logging.getLogger("l104")
TICK_S = 1.0
EVICT_AT_ONCE = 32


# An upload's body may take body_deadline_s plus its size at this rate (a 2 GB file: 2.3 h).
UPLOAD_FLOOR_BPS = 256 * 1024


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int  # 0: no cap
    body_deadline_s: float = 60.0
    max_upload_bytes: int = 2 * 1024**3  # an upload of no stated size is given this much time

    def upload_ticks(self, content_length: str | None) -> int:
        """Ticks an upload's whole body may take: the deadline, plus its size at the floor."""
        size = int(content_length) if content_length and content_length.isdigit() else 0
        size = min(size or self.max_upload_bytes, self.max_upload_bytes)
        return int((self.body_deadline_s + size / UPLOAD_FLOOR_BPS) / TICK_S)


class Episodes:
    """Counts what a limit closed, and says so once when it starts and once when it ends."""

    def __init__(self) -> None:
        self.total: dict[str, int] = {}
        self._open: dict[str, int] = {}
        self._seen: set[str] = set()

    def hit(self, limit: str, what: str) -> None:
        self.total[limit] = self.total.get(limit, 0) + 1
        if limit not in self._open:
            log.warning("client limit %s hit: %s (logged once until it passes)", limit, what)
            self._open[limit] = 0
        self._open[limit] += 1
        self._seen.add(limit)

    @property
    def open(self) -> bool:
        return bool(self._open)

    def tick(self, *, final: bool = False) -> None:
        """Close the episodes with no hit since the last tick (all of them when ``final``)."""
        for limit in [name for name in self._open if final or name not in self._seen]:
            log.warning("client limit %s: %d connections closed", limit, self._open.pop(limit))
        self._seen.clear()


class Connection(RequestHandler):
    """aiohttp's protocol, stamping when data arrives (by tick, not by clock)."""

    __slots__ = ("body_until", "busy", "guard", "head_since", "hold", "last_data")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = manager
        self.busy = False
        self.head_since: int | None = None  # tick of a new request's first byte
        self.last_data = 0
        self.body_until = 0  # the tick by which the request's body must have arrived
        self.hold = Hold()  # one a connection: once its client left, it serves no more

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.hold.holding:
            # aiohttp would cancel the handler now, which cuts the unary call upstream and
            # closes its pooled connection. The call is let finish instead; the handler stops
            # when it returns (a Hold is far cheaper than a shielding task per call).
            self.hold.left = True
            self._task_handler = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        tick = self.last_data = self.guard.tick
        if not self.busy and self.head_since is None:
            self.head_since = tick
        RequestHandler.data_received(self, data)  # without super(): every read pays it


class GuardedServer(web.Server):
    """aiohttp's low-level server with :class:`ConnectionLimits` on its client connections."""

    def __init__(
        self,
        handler: Callable[..., Any],
        *,
        limits: ConnectionLimits,
        episodes: Episodes,
        request_factory: Callable[..., web.BaseRequest],
        **kwargs: Any,
    ) -> None:
        super().__init__(self._handle, request_factory=self._make, **kwargs)
        self.limits = limits
        self._body_ticks = int(limits.body_deadline_s / TICK_S)  # a request's whole body
        self.episodes = episodes
        self.tick = 0
        self._inner = handler
        self._factory = request_factory
        self._ticker: asyncio.TimerHandle | None = None
        self._open: dict[Connection, web.BaseRequest | None] = {}
        # Set on SIGTERM: what a request that arrives while the server drains is answered.
        self.draining: Callable[[web.BaseRequest], web.StreamResponse] | None = None

    def __call__(self) -> RequestHandler:
        return Connection(self, loop=self._loop, **self._kwargs)

    def _make(self, message: Any, payload: Any, protocol: Any, *rest: Any) -> web.BaseRequest:
        request = self._factory(message, payload, protocol, *rest)
        if isinstance(protocol, Connection):
            protocol.busy, protocol.head_since = True, None
            path: str = message.path
            protocol.body_until = self.tick + (
                self.limits.upload_ticks(message.headers.get("Content-Length"))
                if path.startswith("/upload/")
                else self._body_ticks
            )
            self._open[protocol] = request
        return request

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.draining is not None:
            request.protocol.close()  # no keep-alive after this answer
            return self.draining(request)
        try:
            response: web.StreamResponse = await self._inner(request)
            return response
        finally:
            protocol = request.protocol
            if isinstance(protocol, Connection):
                protocol.busy = False
                if protocol in self._open:  # not if the client left meanwhile
                    self._open[protocol] = None

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if not isinstance(handler, Connection):
            return
        handler.head_since = self.tick  # a new connection owes its first request's head
        self._open[handler] = None
        if self._ticker is None:
            self._ticker = self._loop.call_later(TICK_S, self._on_tick)
        cap = self.limits.max_connections
        if cap and len(self._open) > cap and not self._evict_idle(len(self._open) - cap):
            self.episodes.hit("max_connections", f"{cap} client connections open")
            handler.force_close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        if isinstance(handler, Connection):
            self._open.pop(handler, None)

    def _evict_idle(self, needed: int) -> bool:
        """Close up to a few idle keep-alive connections, oldest first; True if any was."""
        idle = [c for c, r in self._open.items() if r is None and c.head_since is None]
        for conn in idle[: max(needed, EVICT_AT_ONCE)]:
            self._drop(conn)  # idle: nothing is in flight on it
        if idle:
            self.episodes.hit("max_connections", "idle keep-alive connections closed")
        return bool(idle)

    def _on_tick(self) -> None:
        self.tick += 1
        head_ticks = self.limits.header_timeout_s / TICK_S
        body_ticks = self.limits.body_timeout_s / TICK_S
        for conn, request in list(self._open.items()):
            if conn.head_since is not None and request is None:
                if self.tick - conn.head_since > head_ticks:
                    self.episodes.hit("header_timeout_s", "a request head arrived too slowly")
                    self._drop(conn)
            elif (
                request is not None
                and not request.content.is_eof()
                # Waiting on the client's body, not on our own back-pressure.
                and not conn._reading_paused
            ):
                if self.tick - conn.last_data > body_ticks:
                    self.episodes.hit("body_timeout_s", "a request body stalled")
                    self._drop(conn)
                elif self.tick > conn.body_until:
                    self.episodes.hit("body_deadline_s", "a request body took too long")
                    self._drop(conn)
        self.episodes.tick()
        busy = self._open or self.episodes.open
        self._ticker = self._loop.call_later(TICK_S, self._on_tick) if busy else None

    def _drop(self, conn: Connection) -> None:
        self._open.pop(conn, None)
        conn.force_close()

    def pre_shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.episodes.tick(final=True)
        super().pre_shutdown()


class GuardedRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose server is a :class:`GuardedServer`."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits
        self.episodes = Episodes()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        # Same handler, request factory and protocol options as aiohttp's own server.
        return GuardedServer(
            plain.request_handler,
            limits=self.limits,
            episodes=self.episodes,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
