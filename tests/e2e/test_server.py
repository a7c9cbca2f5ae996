"""The whole server as a process, driven by the sync SDK as a user would."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from google import genai
from google.genai import errors

from tests.conftest import ROOT, ProxyProcess, Upstream, base_yaml, http, key_shaped, run_cli

StartProcess = Callable[..., ProxyProcess]


def test_default_config_serves_the_sdk_offline(proxy_process: StartProcess, tmp_path: Path) -> None:
    store = tmp_path / "l104.db"
    proxy = proxy_process(config=ROOT / "config" / "proxy.yaml", env={"L104_STORE": str(store)})
    client = proxy.client(version="v1")  # the SDK's own default version
    response = client.models.generate_content(model="gemini-2.5-flash-lite", contents="hi")
    assert (
        response.text == "This is L104 Proxy's fake responder answering as gemini-2.5-flash-lite."
    )
    chunks = list(client.models.generate_content_stream(model="default", contents="hi"))
    assert len(chunks) == 3
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    notices = [line for line in log.splitlines() if "GEMINI_API_KEY" in line]
    assert len(notices) == 1
    assert "served by the fake responder 'offline'" in notices[0]


def test_sync_sdk_rotates_and_streams(proxy_process: StartProcess, upstream: Upstream) -> None:
    proxy = proxy_process(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "30s"})
    client = proxy.client()
    response = client.models.generate_content(model="default", contents="hi")
    assert response.text == "Hello from m2."
    headers = {k.lower(): v for k, v in (response.sdk_http_response.headers or {}).items()}  # type: ignore[union-attr]
    assert (headers["x-l104-model"], headers["x-l104-attempts"]) == ("m2", "2")
    texts = [c.text for c in client.models.generate_content_stream(model="default", contents="x")]
    assert texts == ["part0 from m2. ", "part1 from m2. ", "part2 from m2. "]
    assert len(upstream.requests("m1")) == 1  # cooling: skipped with no round trip
    upstream.script("m2", {"status": 429, "delay": "5s"})
    upstream.script("m3", {"status": 429, "delay": "50s"})
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="default", contents="hi")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_base_url_from_the_environment(
    proxy_process: StartProcess, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = proxy_process(base_yaml(upstream.url))
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", proxy.url)
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    client = genai.Client(api_key="client-key")
    assert client.models.generate_content(model="default", contents="hi").text == "Hello from m1."
    assert upstream.requests("m1")[0]["path"] == "/v1/models/m1:generateContent"


def test_keys_never_reach_the_log(proxy_process: StartProcess, upstream: Upstream) -> None:
    secret = key_shaped("z")
    proxy = proxy_process(base_yaml(upstream.url, keys=(secret,)), args=("--log-level", "DEBUG"))
    upstream.script("m1", {"status": 429})
    upstream.script("m2", {"status": 400, "echo_key": True})
    client = proxy.client(key="client-key-secret")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="default", contents="hi")
    assert secret not in str(info.value)
    assert "[redacted]" in str(info.value)
    http("GET", f"{proxy.url}/v1beta/models/default:generateContent?key=client-key-secret")
    proxy.stop()
    log = proxy.log.read_text()
    assert secret not in log
    assert "client-key-secret" not in log
    # The access log (on at DEBUG) shows the request with its ?key= redacted.
    assert "GET /v1beta/models/default:generateContent?key=[redacted] 404" in log


def test_open_proxy_refuses_a_non_loopback_bind(tmp_path: Path, upstream: Upstream) -> None:
    config = tmp_path / "open.yaml"
    config.write_text(base_yaml(upstream.url))
    result = run_cli("serve", "--config", str(config), "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0: no clients are configured" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_stops_cleanly(proxy_process: StartProcess, upstream: Upstream) -> None:
    proxy = proxy_process(base_yaml(upstream.url))
    assert http("GET", f"{proxy.url}/ready")[0] == 200
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.log.read_text()


def test_an_unopenable_store_is_a_clear_error(tmp_path: Path, upstream: Upstream) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder should be")
    config = tmp_path / "store.yaml"
    config.write_text(base_yaml(upstream.url, store=str(blocker / "l104.db")))
    result = run_cli("serve", "--config", str(config), "--port", "0")
    assert result.returncode == 2
    assert f"cannot open the store at {blocker / 'l104.db'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_store_is_refused_with_exit_2_and_no_hang(
    tmp_path: Path, upstream: Upstream
) -> None:
    store = tmp_path / "l104.db"
    store.write_bytes(b"this is not a database " * 300)
    config = tmp_path / "store.yaml"
    config.write_text(
        base_yaml(upstream.url, store=str(store)).replace(
            f'store: {{path: "{store}"}}', f'store: {{path: "{store}", on_corrupt: refuse}}'
        )
    )
    result = run_cli("serve", "--config", str(config), "--port", "0")  # 30 s limit: no hang
    assert result.returncode == 2
    assert f"the store at {store} is corrupt" in result.stderr
    assert "Traceback" not in result.stderr
    assert store.read_bytes().startswith(b"this is not a database")  # left as it was


def test_a_corrupt_store_is_moved_aside_and_a_fresh_one_serves(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    store = tmp_path / "l104.db"
    store.write_bytes(b"this is not a database " * 300)
    proxy = proxy_process(base_yaml(upstream.url, store=str(store)))
    assert http("GET", f"{proxy.url}/ready")[0] == 200
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("l104.db.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a database")
    assert "was corrupt" in proxy.log.read_text()
    assert proxy.stop() == 0


SECRET = b"client-secret-0123456789"
BAD_REQUESTS = [
    b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",  # a bad HTTP version
    # A key in the raw request line, behind separators the old redaction missed.
    b"GET /v1beta/models?a=1;key=" + SECRET + b" HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /v1beta/models?a=1+key=" + SECRET + b" HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /v1beta/models?%6Bey=" + SECRET + b" HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # an over-long URL
    b"GET /health HTTP/1.1\r\nHost x\r\n\r\n",  # a header without a colon
    b"POST /v1/models/m:generateContent HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
]


def send_raw(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(data)
        return conn.recv(200)


@pytest.mark.parametrize("level", ["info", "debug"])
def test_malformed_requests_are_one_debug_line_not_a_traceback(
    proxy_process: StartProcess, upstream: Upstream, level: str
) -> None:
    proxy = proxy_process(base_yaml(upstream.url), args=("--log-level", level))
    for data in BAD_REQUESTS:
        assert send_raw(proxy.url, data).startswith(b"HTTP/1.")
    assert http("GET", f"{proxy.url}/ready")[0] == 200  # still serving
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "Traceback" not in log
    assert " ERROR " not in log
    refused = [line for line in log.splitlines() if "malformed request refused" in line]
    assert len(refused) == (len(BAD_REQUESTS) if level == "debug" else 0)
    assert SECRET.decode() not in log


def test_sigterm_lets_a_stream_in_flight_finish_within_the_grace(
    proxy_process: StartProcess, upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        "listen: {host: 127.0.0.1, port: 0, shutdown_grace_s: 5}",
    )
    proxy = proxy_process(yaml)
    upstream.script("m1", {"chunks": 3, "gate": True})
    url = f"{proxy.url}/v1beta/models/default:streamGenerateContent?alt=sse"
    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}]}).encode()
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the test built
        url, data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        first = resp.readline()
        assert first.startswith(b"data: ")
        proxy.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # draining: new connections are refused, the stream in flight goes on
        upstream.release()
        rest = resp.read()
    assert rest.count(b"data: ") == 2  # the two chunks after the gate arrived
    assert proxy.proc.wait(10) == 0


def test_the_open_file_limit_is_raised_to_the_hard_one(
    proxy_process: StartProcess, upstream: Upstream
) -> None:
    proxy = proxy_process(base_yaml(upstream.url), prefix=("prlimit", "--nofile=256:4096"))
    limits = Path(f"/proc/{proxy.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"]  # soft raised from 256 to the hard limit


def test_workers_without_shared_state_are_warned_of(
    proxy_process: StartProcess, upstream: Upstream
) -> None:
    proxy = proxy_process(base_yaml(upstream.url), args=("--workers", "2"))
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert log.count("2 workers without store.shared") == 1
