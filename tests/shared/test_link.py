"""Redis going away and coming back, for real: the proxies keep serving, say so once, and
converge again; with ``shared_fail: closed`` they refuse instead."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from proxy.shared import link as link_module
from proxy.shared.link import Link
from tests.conftest import ProxyProcess, RedisServer, Upstream, base_yaml, free_port, http

StartProcess = Callable[..., ProxyProcess]
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}


def _yaml(upstream: Upstream, redis: RedisServer, fail: str = "open") -> str:
    return base_yaml(upstream.url, keys=("only-key",)).replace(
        'store: {path: ""}', f'store: {{path: "", shared: "{redis.url}", shared_fail: {fail}}}'
    )


def _generate(proxy: ProxyProcess) -> tuple[int, str]:
    status, headers, _ = http("POST", f"{proxy.url}/v1beta/models/default:generateContent", BODY)
    return status, headers.get("x-l104-model", "")


def _health(proxy: ProxyProcess) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(http("GET", f"{proxy.url}/health")[2])
    return out


def _wait(check: Callable[[], bool], limit_s: float = 10) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


def test_redis_killed_midway_then_back(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    yaml = _yaml(upstream, redis_server)
    a, b = proxy_process(yaml), proxy_process(yaml)
    redis_server.stop()
    # Serving on local state: every request is answered, and /health says why it is degraded.
    for proxy in (a, b):
        assert _generate(proxy) == (200, "m1")
    _wait(lambda: _health(a)["shared"]["state"] == "unreachable")
    assert _health(a)["status"] == "degraded"
    # While Redis is away, a learns m1 is exhausted; b cannot know yet.
    upstream.script("m1", {"status": 429, "quota": "minute", "delay": "40s"})
    assert _generate(a) == (200, "m2")
    redis_server.start()  # empty: all it learns comes from the replicas
    # a writes its cooldown back on reconnect, and b obeys it.
    _wait(lambda: _health(b)["shared"]["state"] == "connected")
    _wait(lambda: _health(b)["models"]["m1"]["state"] == "cooling")
    sent = len(upstream.requests("m1"))
    assert _generate(b) == (200, "m2")
    assert len(upstream.requests("m1")) == sent
    assert a.stop() == 0
    log = a.log.read_text()
    assert log.count("Redis unreachable") == 1
    assert log.count("Redis reachable again") == 1
    assert "Traceback" not in log


def test_shared_fail_closed_refuses_while_redis_is_away(
    proxy_process: StartProcess, upstream: Upstream, redis_server: RedisServer
) -> None:
    proxy = proxy_process(_yaml(upstream, redis_server, fail="closed"))
    assert _generate(proxy) == (200, "m1")
    redis_server.stop()
    _wait(lambda: _generate(proxy)[0] == 503)
    status, headers, body = http("POST", f"{proxy.url}/v1beta/models/default:generateContent", BODY)
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert json.loads(body)["error"]["status"] == "UNAVAILABLE"
    assert http("GET", f"{proxy.url}/health")[0] == 200  # its own pages stay open
    redis_server.start()
    _wait(lambda: _generate(proxy)[0] == 200)


def test_rediss_with_a_password_from_the_environment(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    """TLS to Redis with a CA the test makes, and ``requirepass``: the password comes from
    ``${VAR}`` and never shows in ``/health`` or the log."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    port = free_port()
    password = "redis-pass-" + "x" * 12
    server = subprocess.Popen(
        [
            *("redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(tmp_path / "cert.pem")),
            *("--tls-key-file", str(tmp_path / "key.pem")),
            *("--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no"),
            *("--requirepass", password, "--save", "", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"rediss://:${{REDIS_PASSWORD}}@127.0.0.1:{port}/0?ssl_ca_certs={tmp_path}/ca.pem"
        yaml = base_yaml(upstream.url, keys=("only-key",)).replace(
            'store: {path: ""}', f'store: {{path: "", shared: "{url}"}}'
        )
        env = {"REDIS_PASSWORD": password}
        a, b = proxy_process(yaml, env=env), proxy_process(yaml, env=env)
        _wait(lambda: _health(b)["shared"]["state"] == "connected")
        shown = _health(b)["shared"]["url"]
        assert shown.startswith("rediss://:***@127.0.0.1:")
        upstream.script("m1", {"status": 429, "quota": "minute", "delay": "40s"})
        assert _generate(a) == (200, "m2")
        _wait(lambda: _health(b)["models"]["m1"]["state"] == "cooling")
        for proxy in (a, b):
            assert proxy.stop() == 0
            assert password not in proxy.log.read_text()
    finally:
        server.kill()
        server.wait(5)


def _alive_replicas(redis: RedisServer) -> int:
    """Replicas whose heartbeat reached Redis in the last few seconds (each pushes one a second
    while its link is up: a replica that thinks Redis is away pushes none)."""
    now_ms = int(time.time() * 1000)
    raw = redis.command("HVALS", "l104:alive").split()
    return sum(1 for until in raw if int(until) - 15_000 > now_ms - 3_000)


def _rejoin_report(proxy: ProxyProcess, redis: RedisServer, workers: int) -> str:
    """What a failed rejoin looked like: how many replicas beat, and what the log says of the
    link and of crashed tasks."""
    log = proxy.log.read_text(errors="replace").splitlines()
    said = [line for line in log if "reachable again" in line or "crashed" in line]
    errors = [line for line in log if "Traceback" in line or "ERROR" in line]
    return (
        f"{_alive_replicas(redis)} of {workers} replicas beat 10 s after Redis came back; "
        f"{len(said)} log lines of rejoins and crashes, the last: {said[-12:]}; "
        f"errors: {errors[-8:]}"
    )


def _answered(sent: list[int], more: int) -> None:
    """Wait (10 s at most) until the load has had ``more`` answers."""
    start = len(sent)
    _wait(lambda: len(sent) >= start + more)


def _load(url: str, stop: threading.Event, sent: list[int]) -> None:
    """One client sending requests as fast as it is answered, until ``stop`` (bounded by the
    caller's own time limit)."""
    while not stop.is_set():
        with contextlib.suppress(OSError):
            status, _, _ = http(
                "POST",
                f"{url}/v1beta/models/default:generateContent",
                BODY,
                headers={"x-goog-api-key": "load-key"},
                timeout=5,
            )
            sent.append(status)


def test_every_worker_rejoins_redis_after_restarts_under_load(
    proxy_process: StartProcess, redis_server: RedisServer
) -> None:
    """Redis killed and started again under load, several times in a row: every one of 8
    workers reports Redis reachable and shares limits again within 10 s of Redis answering.
    ``L104_REDIS_RESTARTS`` and ``L104_REDIS_WORKERS`` make the by-hand run longer (the suite
    does 3 restarts of 8 workers)."""
    restarts = int(os.environ.get("L104_REDIS_RESTARTS", "3"))
    workers = int(os.environ.get("L104_REDIS_WORKERS", "8"))
    yaml = f"""
responders:
  local: {{type: fake, chunks: 1}}
chains:
  default: [local]
clients:
  - {{name: load, key: load-key, requests_per_minute: 1000000}}
  - {{name: probe, key: probe-key, requests_per_minute: 20}}
store: {{path: "", shared: "{redis_server.url}", shared_fail: closed}}
"""
    proxy = proxy_process(yaml, args=("--workers", str(workers)))
    _wait(lambda: _alive_replicas(redis_server) == workers, limit_s=30)
    rejoin_s: list[float] = []
    for _ in range(restarts):
        stop, sent = threading.Event(), list[int]()
        load = [threading.Thread(target=_load, args=(proxy.url, stop, sent)) for _ in range(16)]
        for thread in load:
            thread.start()
        try:
            _answered(sent, 200)
            redis_server.stop()
            time.sleep(1.5)  # every replica notices and refuses (shared_fail: closed)
            _answered(sent, 50)
            redis_server.start()
            back = time.monotonic()
            try:
                _wait(lambda: _alive_replicas(redis_server) == workers, limit_s=10)
            except AssertionError:
                raise AssertionError(_rejoin_report(proxy, redis_server, workers)) from None
            rejoin_s.append(time.monotonic() - back)
            # Serving again on every worker: the last 200 answers all 200s.
            _answered(sent, 300)
            assert set(sent[-200:]) == {200}, sorted(set(sent[-200:]))
        finally:
            stop.set()
            for thread in load:
                thread.join(10)
        # Every worker says so on /health (each new connection lands on some worker).
        states = {_health(proxy)["shared"]["state"] for _ in range(40)}
        assert states == {"connected"}
    # Limits are the fleet's again: 20 a minute for the probe client over all 8 workers (a
    # worker on local state would let 20 more through on its own).
    answers = [
        http(
            "POST",
            f"{proxy.url}/v1beta/models/default:generateContent",
            BODY,
            headers={"x-goog-api-key": "probe-key"},
        )[0]
        for _ in range(40)
    ]
    assert answers.count(200) == 20, answers
    assert answers.count(429) == 20
    print(f"rejoin after each Redis restart (s): {[round(s, 2) for s in rejoin_s]}")
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.log.read_text()


async def test_a_call_on_a_stale_connection_does_not_take_the_link_down(
    redis_server: RedisServer,
) -> None:
    """Redis drops the pooled connections (as a restart does) while the subscription stays:
    the call that meets a stale one returns None, a PING of the link's own says Redis answers,
    and the link stays up. Before, it was marked down and nothing marked it up again."""
    link = Link(redis_server.url)
    running = asyncio.get_running_loop().create_task(link.run())
    try:
        assert await link.connected(5)
        for _ in range(8):  # several pooled connections, as under load
            await asyncio.gather(*(link.call(lambda r: r.incr("n")) for _ in range(8)))
        assert int(redis_server.command("GET", "n")) == 64
        redis_server.command("CLIENT", "KILL", "TYPE", "normal")  # the pubsub one survives
        results = [await link.call(lambda r: r.incr("n")) for _ in range(12)]
        assert None in results  # a stale connection failed, once at least
        deadline = time.monotonic() + 3
        while (value := await link.call(lambda r: r.incr("n"))) is None:
            assert time.monotonic() < deadline, "the link never answered again"
            await asyncio.sleep(0.05)
        assert link.up
        assert value > 64
        assert link.describe()["state"] == "connected"
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await link.close()


async def test_a_call_that_never_ends_is_a_lost_call(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait with no end (a pooled connection that never comes, say) must not hold a caller,
    nor the heartbeat and the reconnect that wait on calls: it is a lost call within CALL_S, and
    the link is checked with a PING."""
    monkeypatch.setattr(link_module, "CALL_S", 0.2)
    link = Link(redis_server.url)
    runner = asyncio.get_running_loop().create_task(link.run())
    try:
        assert await link.connected(5)

        async def never(redis: Any) -> int:
            await asyncio.Event().wait()
            return 1

        started = time.monotonic()
        assert await link.call(never) is None
        assert time.monotonic() - started < 1.0
        assert "TimeoutError" in link.error
        link.spawn(never)
        await asyncio.wait_for(link.settle(), 1.0)  # spawned calls end too
        assert link.up  # the PING that followed found Redis answering
        assert await link.call(lambda r: r.ping()) is True
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await link.close()
