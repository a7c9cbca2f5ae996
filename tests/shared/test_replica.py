"""Cooldowns, probes and paces across replicas: three proxy processes on one real Redis."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ProxyProcess, RedisServer, Upstream, base_yaml, http

StartProcess = Callable[..., ProxyProcess]
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}


def shared_yaml(upstream: Upstream, redis: RedisServer, cooldown_s: int = 60) -> str:
    return (
        base_yaml(upstream.url, keys=("only-key",))
        .replace('store: {path: ""}', f'store: {{path: "", shared: "{redis.url}"}}')
        .replace("cooldown_s: 60", f"cooldown_s: {cooldown_s}")
    )


def generate(proxy: ProxyProcess) -> tuple[int, str]:
    status, headers, _ = http("POST", f"{proxy.url}/v1beta/models/default:generateContent", BODY)
    return status, headers.get("x-l104-model", "")


def test_a_429_seen_by_one_replica_is_obeyed_by_all(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = shared_yaml(upstream, redis_server)
    proxies = [proxy_process(yaml) for _ in range(3)]
    upstream.script("m1", {"status": 429, "quota": "minute", "delay": "30s"})
    assert generate(proxies[0]) == (200, "m2")
    assert len(upstream.requests("m1")) == 1
    for proxy in proxies:  # none of them asks m1 again while it cools
        for _ in range(3):
            assert generate(proxy) == (200, "m2")
    assert len(upstream.requests("m1")) == 1
    for proxy in proxies[1:]:
        health = json.loads(http("GET", f"{proxy.url}/health")[2])
        assert health["models"]["m1"]["state"] == "cooling"
        assert 25 < health["models"]["m1"]["cooldown_s"] <= 30
        assert health["shared"]["state"] == "connected"
    # A replica that starts later reads the fleet's cooldowns before it serves.
    late = proxy_process(yaml)
    assert generate(late) == (200, "m2")
    assert len(upstream.requests("m1")) == 1


def test_the_fleet_sends_one_probe_when_a_cooldown_ends(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = shared_yaml(upstream, redis_server, cooldown_s=1)
    proxies = [proxy_process(yaml) for _ in range(3)]
    # A 429 without RetryInfo: the cooldown is cooldown_s (1 s), the quota unknown.
    upstream.script("m1", {"status": 429, "delay": None, "value": ""}, {"hang": 1.5})
    assert generate(proxies[0]) == (200, "m2")
    time.sleep(1.2)
    # The probe takes 1.5 s to answer; meanwhile the other replicas must not send their own.
    results: list[tuple[int, str]] = []
    probe = threading.Thread(target=lambda: results.append(generate(proxies[0])))
    probe.start()
    deadline = time.monotonic() + 5
    while len(upstream.requests("m1")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for proxy in proxies[1:]:
        assert generate(proxy) == (200, "m2")
    assert len(upstream.requests("m1")) == 2  # the first 429 and the one probe
    probe.join(10)
    assert results == [(200, "m1")]
    time.sleep(0.2)
    for proxy in proxies[1:]:  # the probe's answer opened m1 everywhere
        assert generate(proxy) == (200, "m1")


def test_replicas_share_state_through_a_unix_socket_with_a_password(
    proxy_process: StartProcess, upstream: Upstream
) -> None:
    password = "unix-socket-redis-password"  # noqa: S105
    # A short folder: a socket's path is limited to about 100 bytes.
    folder = Path(tempfile.mkdtemp(prefix="l104-redis-", dir="/tmp"))
    sock = folder / "redis.sock"
    socket_only = ("--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700")
    no_disk = ("--save", "", "--appendonly", "no", "--dir", str(folder))
    redis = subprocess.Popen(
        ["redis-server", *socket_only, "--requirepass", password, *no_disk],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "redis-server did not make its socket"
            time.sleep(0.05)
        url = f"unix://{sock}?db=0&password={password}"
        yaml = base_yaml(upstream.url, keys=("only-key",)).replace(
            'store: {path: ""}', f'store: {{path: "", shared: "{url}"}}'
        )
        proxies = [proxy_process(yaml) for _ in range(2)]
        upstream.script("m1", {"status": 429, "quota": "minute", "delay": "30s"})
        assert generate(proxies[0]) == (200, "m2")
        assert generate(proxies[1]) == (200, "m2")  # the cooldown came through the socket
        assert len(upstream.requests("m1")) == 1
        health = json.loads(http("GET", f"{proxies[1].url}/health")[2])
        assert health["shared"]["state"] == "connected"
        assert health["shared"]["url"] == f"unix://{sock}?db=0&password=***"
        for proxy in proxies:
            assert proxy.stop() == 0
            assert password not in proxy.log.read_text()
    finally:
        redis.kill()
        redis.wait(5)
        shutil.rmtree(folder, ignore_errors=True)
