"""A Live session once a member accepted it: frames both ways, unchanged and in order, until
either side closes; then the other closes with that code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiohttp
from aiohttp import WSMsgType, web

from proxy.exchange import Exchange
from proxy.resources.live_budget import ByteBudget

CLOSE_WAIT_S = 2.0


def close_reason(text: str) -> bytes:
    return text.encode()[:123]  # a close frame's reason is at most 123 bytes


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    exchange: Exchange | None,
    budget: ByteBudget,
) -> tuple[int, str]:
    """Frames from ``source`` to ``sink`` as they come; returns the close code and reason.
    Each frame counts in ``budget`` from its read to its send."""
    try:
        while True:
            msg = await source.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                size = len(msg.data)
                await budget.take(size)
                try:
                    if msg.type == WSMsgType.TEXT:
                        await sink.send_str(msg.data)
                    else:
                        await sink.send_bytes(msg.data)
                finally:
                    await budget.give(size)
            elif msg.type == WSMsgType.CLOSE:
                return int(msg.data), str(msg.extra or "")
            elif msg.type == WSMsgType.ERROR and source.close_code == 1009:
                return 1009, "a frame is larger than the proxy allows"
            else:  # CLOSING, CLOSED, ERROR: the connection ended without a close frame
                return source.close_code or 1006, ""
            if exchange is not None:
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                exchange.sniff_usage(data)
    except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
        return 1011, f"relay failed: {type(exc).__name__}"


async def _relay(
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    exchange: Exchange,
    budget: ByteBudget,
    scrub: Callable[[str], str],
) -> None:
    up = asyncio.create_task(_pump(client, upstream, None, budget))
    down = asyncio.create_task(_pump(upstream, client, exchange, budget))
    try:
        await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when the handler is cancelled (the client's connection dropped): the upstream
        # socket is closed with the client's code, not left open.
        await _close_both(client, upstream, up, down, scrub)


def _ended(task: asyncio.Task[tuple[int, str]]) -> tuple[int, str] | None:
    if not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()


async def _close_both(
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    up: asyncio.Task[tuple[int, str]],
    down: asyncio.Task[tuple[int, str]],
    scrub: Callable[[str], str],
) -> None:
    """Whichever side closed, close the other with its code and reason; the other pump then
    sees its side closing and ends by itself."""
    from_client, from_upstream = _ended(up), _ended(down)
    if from_upstream is not None and from_client is None:
        code, reason = from_upstream
        with contextlib.suppress(Exception):  # SECURITY: a key the upstream reflects stays here
            await client.close(code=code, message=close_reason(scrub(reason)))
    else:
        code, reason = from_client or (1001, "the client went away")
        with contextlib.suppress(Exception):
            await upstream.close(code=code, message=close_reason(reason))
    for task in (up, down):
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
    with contextlib.suppress(Exception):
        await upstream.close()


async def session(
    client: web.WebSocketResponse,
    upstream: aiohttp.ClientWebSocketResponse,
    exchange: Exchange,
    budget: ByteBudget,
    scrub: Callable[[str], str] = str,
) -> None:
    """Relay until either side closes. A client whose connection drops ends its session the
    normal way: aiohttp cancels the handler then, and the session still winds down (the
    upstream socket is closed with the client's code) instead of counting as an error."""
    relay = asyncio.create_task(_relay(client, upstream, exchange, budget, scrub))
    try:
        await asyncio.shield(relay)
    except asyncio.CancelledError:
        await relay
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
