"""Slow and greedy clients against the server as a process: the limits of ``listen`` hold, and
``/health`` stays reachable."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

from tests.conftest import ProxyProcess, Upstream, base_yaml, http

StartProcess = Callable[..., ProxyProcess]


def _listen(upstream: Upstream, extra: str) -> str:
    return base_yaml(upstream.url).replace(
        "listen: {host: 127.0.0.1, port: 0}", f"listen: {{host: 127.0.0.1, port: 0, {extra}}}"
    )


def _address(proxy: ProxyProcess) -> tuple[str, int]:
    host, port = proxy.url.removeprefix("http://").split(":")
    return host, int(port)


def test_slowloris_is_cut_at_the_header_timeout_and_logged_once(
    proxy_process: StartProcess, upstream: Upstream
) -> None:
    proxy = proxy_process(_listen(upstream, "header_timeout_s: 1"))
    lorises = []
    for _ in range(5):
        conn = socket.create_connection(_address(proxy), timeout=5)
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n")
        lorises.append(conn)
    start = time.monotonic()
    cut = 0
    for _ in range(40):  # a header byte every 0.1 s from each, 4 s at most
        for conn in lorises:
            try:
                conn.sendall(b"X")
            except OSError:
                continue
        time.sleep(0.1)
        if all(conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"" for conn in lorises):
            cut = len(lorises)
            break
    held = time.monotonic() - start
    assert cut == 5
    assert held < 3.5  # 1 s, checked once a second: never the 75 s of keep-alive
    assert http("GET", f"{proxy.url}/health")[0] == 200
    for conn in lorises:
        conn.close()
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert log.count("client limit header_timeout_s hit") == 1
    assert "client limit header_timeout_s: 5 connections closed" in log


def test_more_idle_connections_than_files_leave_health_reachable(
    proxy_process: StartProcess, upstream: Upstream
) -> None:
    # 256 files: the default cap is (256 - 128) / 2 = 64 client connections.
    proxy = proxy_process(base_yaml(upstream.url), prefix=("prlimit", "--nofile=256:256"))
    conns = []
    for _ in range(300):  # each sends a request, then idles on keep-alive
        conn = socket.create_connection(_address(proxy), timeout=5)
        conn.sendall(b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n")
        assert conn.recv(12).startswith(b"HTTP/1.1 200")
        conns.append(conn)
    assert http("GET", f"{proxy.url}/health")[0] == 200
    for conn in conns:
        conn.close()
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert log.count("client limit max_connections hit") == 1
    assert "Traceback" not in log


def _cut(conn: socket.socket) -> bool:
    """Whether the proxy closed ``conn`` (whatever it said first)."""
    try:
        while data := conn.recv(65536, socket.MSG_DONTWAIT):
            assert not data.startswith(b"HTTP/1.1 200")
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_slow_bodies_hold_one_clients_share_of_slots_until_the_body_deadline(
    proxy_process: StartProcess, upstream: Upstream
) -> None:
    """One client's bodies, a byte a second (never a pause long enough for body_timeout_s):
    they take that client's share of the slots and no more, so another client is served at
    once; past body_deadline_s they are cut. Before, they held every slot for as long as they
    kept trickling."""
    yaml = _listen(upstream, "body_timeout_s: 3, body_deadline_s: 3") + (
        "limits: {max_concurrent: 8, max_concurrent_per_client: 2, queue_timeout_s: 0.2}\n"
        "clients:\n  - {name: slow, key: slow-key}\n  - {name: good, key: good-key}\n"
    )
    proxy = proxy_process(yaml)
    body = b'{"contents": [{"parts": [{"text": "hi"}]}]}'
    head = (
        b"POST /v1beta/models/default:generateContent HTTP/1.1\r\nHost: a\r\n"
        b"x-goog-api-key: slow-key\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    slow = []
    for _ in range(8):
        conn = socket.create_connection(_address(proxy), timeout=5)
        conn.sendall(head + body[:1])
        slow.append(conn)
    time.sleep(0.5)
    # The slow client's 3rd to 8th requests were refused at once: it holds 2 slots.
    refused = sum(1 for c in slow[2:] if c.recv(12, socket.MSG_PEEK) == b"HTTP/1.1 429")
    assert refused == 6
    good = {"x-goog-api-key": "good-key"}
    url = f"{proxy.url}/v1beta/models/default:generateContent"
    start = time.monotonic()
    status, _, _ = http("POST", url, {"contents": [{"parts": [{"text": "x"}]}]}, headers=good)
    assert status == 200
    assert time.monotonic() - start < 2
    # The two holding a slot keep trickling, a byte a second, and are cut at the deadline.
    cut_at = None
    start = time.monotonic()
    for i in range(1, 8):
        time.sleep(1)
        for conn in slow[:2]:
            with contextlib.suppress(OSError):
                conn.sendall(body[i : i + 1])
        if all(_cut(c) for c in slow[:2]):
            cut_at = time.monotonic() - start
            break
    assert cut_at is not None
    assert cut_at < 6  # 3 s from the head, checked once a second
    for conn in slow:
        conn.close()
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "client limit body_deadline_s hit" in log
