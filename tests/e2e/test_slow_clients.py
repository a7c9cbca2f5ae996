"""Slow and greedy clients against the server as a process: the limits of ``listen`` hold, and
``/health`` stays reachable."""

from __future__ import annotations

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
