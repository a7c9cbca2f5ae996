"""The link to Redis: commands, the state channel, and whether Redis can be reached.

Redis down is a state, not an error: every call through :meth:`Link.call` returns None then,
and the caller decides on local state. The link says so once when Redis goes and once when it
comes back, reconnects on its own (backing off to 5 s), and on reconnect runs its ``on_up``
hooks (which write local state back and read the fleet's).

"Up" has one owner, :meth:`Link.run`, and only real round trips move it: the subscription
ending, or a PING failing. A command that fails only tells the owner to PING: after a restart
a pooled connection that went stale fails once, and must not take the link down while Redis
answers (a replica once stayed "unreachable" for good that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.config.types import redact_url

log = logging.getLogger("l104.shared")
CHANNEL = b"l104:state"
ALIVE = "l104:alive"  # replica -> until when its heartbeat counts it alive (ms)
# The first lines of every script that keeps time: Redis's clock, one for all hosts.
LUA_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# What a lost connection raises: redis-py's errors, the socket's, and uvloop's RuntimeError
# ("unable to perform operation on <TCPTransport closed=True>") when a pooled connection's
# transport closed under a reconnect (seen while Redis restarted under load).
LOST = (RedisError, OSError, RuntimeError)
HEARTBEAT_S = 5.0  # a PING this often while nothing else says the link is alive
# Bounds on every wait of the link: a command (its socket timeout is 1 s, but a pooled
# connection can wait longer for the pool), and a whole reconnect with its hooks. Without them
# one replica of eight once never rejoined after a Redis restart under load, logging nothing:
# a wait with no end. A bound turns any such wait into a lost link, and the loop tries again.
CALL_S = 3.0
ATTEMPT_S = 5.0
T = TypeVar("T")
Handler = Callable[[dict[str, Any]], None]


class Link:
    def __init__(self, url: str, *, fail_closed: bool = False) -> None:
        self.url = url
        self.fail_closed = fail_closed
        self.replica = uuid.uuid4().hex[:12]  # this process, so it ignores its own messages
        self.redis: Redis = Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=None
        )
        self.up = False
        self.since = time.time()
        self.error = "not connected yet"
        self.handlers: dict[str, Handler] = {}
        self.on_up: list[Callable[[], Awaitable[None]]] = []
        self._pending: set[asyncio.Task[Any]] = set()
        self._connected = asyncio.Event()
        self._suspect = asyncio.Event()  # a command failed: the owner checks with a PING

    def describe(self) -> dict[str, Any]:
        """For ``/health``: where, whether reachable, since when."""
        out: dict[str, Any] = {
            "url": redact_url(self.url),
            "state": "connected" if self.up else "unreachable",
            "since": self.since,
        }
        if not self.up:
            out["error"] = self.error
            out["serving_on"] = (
                "nothing (shared_fail: closed)" if self.fail_closed else "local state"
            )
        return out

    def _down(self, exc: BaseException) -> None:
        """Only :meth:`run` calls this: a round trip of its own failed."""
        self.error = f"{type(exc).__name__}: {exc}"[:300]
        if self.up:
            self.up, self.since = False, time.time()
            self._connected.clear()
            how = "refusing requests" if self.fail_closed else "serving on local state"
            log.warning("shared state: Redis unreachable (%s); %s", self.error, how)

    async def call(self, fn: Callable[[Redis], Awaitable[T]]) -> T | None:
        """``fn(redis)``, or None when Redis cannot be reached (said once)."""
        if not self.up:
            return None
        try:
            async with asyncio.timeout(CALL_S):
                return await fn(self.redis)
        except LOST as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            self._suspect.set()
            return None

    def spawn(self, fn: Callable[[Redis], Awaitable[Any]]) -> None:
        """:meth:`call` without waiting (batched writes); :meth:`settle` waits for them."""
        if not self.up:
            return
        task = asyncio.get_running_loop().create_task(self.call(fn))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Wait for the writes spawned so far (a cooldown other replicas must see before this
        request goes on)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def message(self, kind: str, **data: Any) -> bytes:
        return orjson.dumps({"k": kind, "r": self.replica, **data})

    async def run(self) -> None:
        """Keep the channel subscribed, reconnecting with backoff; never returns. The one
        place that sets :attr:`up`."""
        backoff = 0.2
        while True:
            # Connections pooled before are from an older server, or the same one before a
            # restart: none of them is trusted again.
            await _quietly(self.redis.connection_pool.disconnect())
            pubsub = self.redis.pubsub()
            listener: asyncio.Task[None] | None = None
            try:
                async with asyncio.timeout(ATTEMPT_S):
                    await pubsub.subscribe(CHANNEL)
                    await self.redis.ping()
                    came_back = not self.up and self.error != "not connected yet"
                    self.up, self.since, backoff = True, time.time(), 0.2
                    for hook in self.on_up:
                        await hook()
                if came_back:
                    log.warning("shared state: Redis reachable again; local state written back")
                self._connected.set()
                listener = asyncio.get_running_loop().create_task(self._listen(pubsub))
                await self._watch(listener)
            except LOST as exc:
                self._down(exc)
            finally:
                if listener is not None:
                    listener.cancel()
                    with contextlib.suppress(asyncio.CancelledError):  # the listener's own
                        await _quietly(listener)
                await _quietly(pubsub.aclose())  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(5.0, backoff * 2)

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                self._dispatch(message["data"])
        raise ConnectionError("the subscription ended")

    async def _watch(self, listener: asyncio.Task[None]) -> None:
        """While subscribed: return (by raising) when the subscription breaks, or when a PING
        fails after a command failed, or on the heartbeat (a link that hangs sends nothing)."""
        while True:
            self._suspect.clear()
            suspect = asyncio.ensure_future(self._suspect.wait())
            try:
                done, _ = await asyncio.wait(
                    {listener, suspect}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                suspect.cancel()
            if listener in done:
                listener.result()  # raises what broke it
            # A command failed (or it is time): Redis is up while it answers a PING.
            async with asyncio.timeout(CALL_S):
                await self.redis.ping()

    async def connected(self, within_s: float) -> bool:
        """Wait up to ``within_s`` for the first connection (at start-up)."""
        try:
            async with asyncio.timeout(within_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def _dispatch(self, raw: bytes) -> None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict) or data.get("r") == self.replica:
            return
        handler = self.handlers.get(str(data.get("k")))
        if handler is not None:
            try:
                handler(data)
            except (KeyError, TypeError, ValueError) as exc:
                log.debug("shared state: a message was not understood (%s): %r", exc, data)

    async def close(self) -> None:
        await self.settle()
        await self.redis.aclose()


async def _quietly(step: Awaitable[Any]) -> None:
    """A clean-up step of the link: given :data:`CALL_S`, and whatever it raises of a lost
    connection let go: the link is being made again anyway."""
    with contextlib.suppress(*LOST):
        async with asyncio.timeout(CALL_S):
            await step
