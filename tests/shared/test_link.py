"""Redis going away and coming back, for real: the proxies keep serving, say so once, and
converge again; with ``shared_fail: closed`` they refuse instead."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme

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
