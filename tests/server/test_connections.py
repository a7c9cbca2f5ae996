"""The connection guard with aiohttp's real server on a loopback port: a slow head, a stalled
body, the connection cap, and what a request gets while the server drains."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.app import create_app
from proxy.server import _refuse_draining
from proxy.server.connections import ConnectionLimits, GuardedRunner, GuardedServer
from tests.conftest import Upstream, base_yaml, config_from, free_port

Serve = Callable[[ConnectionLimits], Awaitable[tuple[int, GuardedServer]]]


def guard(
    header_timeout_s: float = 10, body_timeout_s: float = 30, max_connections: int = 0
) -> ConnectionLimits:
    return ConnectionLimits(header_timeout_s, body_timeout_s, max_connections)


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read() or b"ok")


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[GuardedRunner] = []

    async def start(limits: ConnectionLimits) -> tuple[int, GuardedServer]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", _echo)
        runner = GuardedRunner(app, limits, handler_cancellation=True, shutdown_timeout=1)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        assert isinstance(runner.server, GuardedServer)
        return port, runner.server

    yield start
    while OPENED:
        writer = OPENED.pop()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    for runner in runners:
        await runner.cleanup()


OPENED: list[asyncio.StreamWriter] = []


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    OPENED.append(writer)
    return reader, writer


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before it closed the connection; fails if it stays open."""
    return await asyncio.wait_for(reader.read(), seconds)


async def _get(port: int) -> bytes:
    reader, writer = await _connect(port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_a_trickled_head_is_cut_at_the_header_timeout(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    port, server = await serve(guard(header_timeout_s=1))
    reader, writer = await _connect(port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n")

    async def trickle() -> None:
        for _ in range(40):  # a byte every 0.2 s: slowloris, 8 s at most
            await asyncio.sleep(0.2)
            if writer.is_closing():
                return
            writer.write(b"X")

    trickling = asyncio.create_task(trickle())
    with caplog.at_level(logging.WARNING, "l104"):
        assert await _closed_within(reader, 4) == b""  # cut, with nothing answered
        trickling.cancel()
        assert server.episodes.total == {"header_timeout_s": 1}
        assert (await _get(port)).startswith(b"HTTP/1.1 200")  # others are served
    hits = [r for r in caplog.records if "header_timeout_s hit" in r.getMessage()]
    assert len(hits) == 1


async def test_a_keep_alive_connection_may_idle_past_the_header_timeout(serve: Serve) -> None:
    port, _ = await serve(guard(header_timeout_s=1))
    reader, writer = await _connect(port)
    for _ in range(2):
        writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(2.5)  # idle between requests: the keep-alive timer's, not ours
    writer.close()


async def test_a_stalled_body_is_cut_at_the_body_timeout(serve: Serve) -> None:
    port, server = await serve(guard(body_timeout_s=1))
    reader, writer = await _connect(port)
    writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
    assert await _closed_within(reader, 4) == b""
    assert server.episodes.total == {"body_timeout_s": 1}
    # A body that keeps coming, slowly but inside the limit, is read whole.
    reader, writer = await _connect(port)
    writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nConnection: close\r\n\r\n")
    for piece in (b"ab", b"cd", b"ef"):
        await asyncio.sleep(0.6)
        writer.write(piece)
    assert (await _closed_within(reader, 5)).endswith(b"\r\n\r\nabcdef")


async def test_at_the_cap_idle_connections_make_room_and_busy_ones_do_not(serve: Serve) -> None:
    port, server = await serve(guard(max_connections=3))
    idle = []
    for _ in range(3):
        reader, writer = await _connect(port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"ok"), 5)
        idle.append(reader)
    # A fourth is served: the oldest idle keep-alive connection was closed for it.
    assert (await _get(port)).startswith(b"HTTP/1.1 200")
    assert await _closed_within(idle[0], 2) == b""
    assert server.episodes.total["max_connections"] >= 1
    # Three connections each in the middle of a request head: none is idle, so a new one is cut.
    busy = []
    for _ in range(3):
        reader, writer = await _connect(port)
        writer.write(b"GET /x HTTP/1.1\r\n")
        busy.append(writer)
    await asyncio.sleep(0.2)
    reader, writer = await _connect(port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert await _closed_within(reader, 2) == b""
    for w in busy:
        w.close()


async def test_while_draining_a_request_gets_503_and_the_connection_closes(serve: Serve) -> None:
    port, server = await serve(guard())
    server.draining = _refuse_draining
    reader, writer = await _connect(port)
    writer.write(b"GET /v1beta/models HTTP/1.1\r\nHost: a\r\n\r\n")
    answer = await _closed_within(reader, 5)
    assert answer.startswith(b"HTTP/1.1 503")
    assert b"Connection: close" in answer
    assert b"Retry-After: 1" in answer
    assert answer.endswith(b'"status":"UNAVAILABLE"}}')


async def test_a_client_that_leaves_a_unary_call_lets_it_finish_on_a_pooled_connection(
    tmp_path: Path, upstream: Upstream
) -> None:
    # The proxy itself on the guarded server: its connections hold a unary call when the
    # client leaves, instead of cutting it (and closing the upstream connection).
    app = create_app(config_from(tmp_path, base_yaml(upstream.url, keys=("only-key",))))
    runner = GuardedRunner(app, guard(), handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/v1beta/models/m1:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    try:
        upstream.script("m1", {"hang": 0.4})
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=0.1))
            await asyncio.sleep(0.6)  # the upstream answered meanwhile, and was read to the end
            async with session.post(url, json=body) as again:
                assert again.status == 200
            async with session.get(f"http://127.0.0.1:{port}/metrics/prometheus") as metrics:
                text = await metrics.text()
        first, second = upstream.requests("m1")
        assert first["peer_port"] == second["peer_port"]  # the same connection, back in the pool
        # The request that lost its client still ends as one that did (not as a 200).
        assert 'l104_requests_total{route="/v1beta/models/{target}",status="499"} 1.0' in text
    finally:
        await runner.cleanup()
