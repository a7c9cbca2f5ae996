"""Hot reload with the server as a process: SIGHUP and ``--watch`` swap the config in, an
invalid file changes nothing, and what the proxy learned carries over."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.config import load_config
from proxy.server.reload import read_at_start
from tests.conftest import ProxyProcess, Upstream, base_yaml, http

StartProcess = Callable[..., ProxyProcess]
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}
CLIENT = 'clients: [{name: app, key: "client-key-1", requests_per_minute: RPM}]'


def _yaml(upstream: Upstream, chain: str, rpm: int = 100, extra: str = "") -> str:
    return base_yaml(
        upstream.url,
        chains=f"default: {chain}",
        keys=("only-key",),  # one project: a 429 cools the model, not just a key
        extra=CLIENT.replace("RPM", str(rpm)) + "\n" + extra,
    )


def _generate(proxy: ProxyProcess, key: str = "client-key-1") -> tuple[int, dict[str, str]]:
    status, headers, _ = http(
        "POST",
        f"{proxy.url}/v1beta/models/default:generateContent",
        BODY,
        {"x-goog-api-key": key},
    )
    return status, headers


def _health(proxy: ProxyProcess) -> dict[str, Any]:
    _, _, body = http("GET", f"{proxy.url}/health")
    out: dict[str, Any] = json.loads(body)
    return out


def _wait_version(proxy: ProxyProcess, version: int, limit_s: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        health = _health(proxy)
        if health["config"]["version"] == version:
            return health
        time.sleep(0.05)
    raise AssertionError(f"config version {version} never showed: {health['config']}")


def _reload(proxy: ProxyProcess, config: Path, text: str, version: int) -> dict[str, Any]:
    config.write_text(text)
    proxy.proc.send_signal(signal.SIGHUP)
    return _wait_version(proxy, version)


def test_sighup_swaps_the_config_and_carries_what_was_learned(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    config = tmp_path / "reload.yaml"
    config.write_text(_yaml(upstream, '["up:m1", "up:m2"]', rpm=3))
    proxy = proxy_process(config=config)
    first = _health(proxy)["config"]
    assert first["version"] == 1
    assert first["file"] == str(config)
    # m1 is exhausted for 40 s: the request goes on to m2, and m1 cools.
    upstream.script("m1", {"status": 429, "quota": "minute", "delay": "40s"})
    status, headers = _generate(proxy)
    assert (status, headers["x-l104-model"]) == (200, "m2")
    # The new file drops m2 for m3 and adds a second client.
    text = _yaml(upstream, '["up:m1", "up:m3"]', rpm=3).replace(
        "requests_per_minute: 3}]",
        'requests_per_minute: 3}, {name: other, key: "client-key-2"}]',
    )
    health = _reload(proxy, config, text, 2)
    assert health["config"]["digest"] != first["digest"]
    assert health["config"]["loaded_at"] >= first["loaded_at"]
    models = health["models"]
    assert models["m1"]["state"] == "cooling"  # the cooldown carried over
    assert 30 < models["m1"]["cooldown_s"] <= 40
    assert "m2" not in models
    assert "m3" in models
    status, headers = _generate(proxy, key="client-key-2")  # the new client is known
    assert (status, headers["x-l104-model"]) == (200, "m3")
    assert upstream.requests("m1") == [upstream.requests("m1")[0]]  # m1 was not asked again
    # The client's window carried over: 2 of its 3 a minute are used (one before the reload).
    assert _generate(proxy)[0] == 200
    assert _generate(proxy)[0] == 200
    status, headers = _generate(proxy)
    assert status == 429
    assert int(headers["Retry-After"]) > 50
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "config reloaded (SIGHUP): version 2" in log


def test_an_invalid_file_keeps_the_running_config_and_says_where(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    config = tmp_path / "reload.yaml"
    good = _yaml(upstream, '["up:m1"]')
    config.write_text(good)
    proxy = proxy_process(config=config)
    config.write_text(
        good.replace('["up:m1"]', '["nobody:m1"]').replace("cooldown_s: 60", "cooldown_s: -1")
    )
    proxy.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reload_error" not in (health := _health(proxy))["config"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Open to anyone: the count and the lines; the text is the admin's (none is set here).
    error = health["config"]["reload_error"]
    assert error["count"] == 2
    WRONG = ('["up:m1"]', "cooldown_s: 60")
    assert error["lines"] == sorted({good[: good.index(t)].count("\n") + 1 for t in WRONG})
    assert "messages" not in error
    assert health["config"]["version"] == 1
    assert _generate(proxy)[0] == 200  # still serving on the old config
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert "Traceback" not in log
    assert log.count("reload refused") == 1
    assert f"{config}:" in log
    assert "no responder 'nobody'" in log


def test_a_stream_in_flight_finishes_on_the_config_it_started_with(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    config = tmp_path / "reload.yaml"
    config.write_text(_yaml(upstream, '["up:m1"]'))
    proxy = proxy_process(config=config, args=("--watch",))
    upstream.script("m1", {"chunks": 3, "gate": True})
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the test built
        f"{proxy.url}/v1beta/models/default:streamGenerateContent?alt=sse",
        data=json.dumps(BODY).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": "client-key-1"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        assert resp.readline().startswith(b"data: ")
        # --watch: the file changes (m1 and the responder gone), no signal sent.
        config.write_text(_yaml(upstream, '["local"]'))
        health = _wait_version(proxy, 2, limit_s=5)
        assert list(health["models"]) == ["local"]
        upstream.release()
        rest = resp.read()
    assert rest.count(b"data: ") == 2  # the old generation's responder finished the stream
    status, headers = _generate(proxy)
    assert (status, headers["x-l104-model"]) == (200, "local")
    assert proxy.stop() == 0
    assert "config reloaded (the file changed): version 2" in proxy.log.read_text()


def test_settings_read_at_start_are_named(tmp_path: Path, upstream: Upstream) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(base_yaml(upstream.url))
    b.write_text(
        base_yaml(upstream.url, chains='default: ["up:m2"]')
        .replace("port: 0", "port: 9")
        .replace('store: {path: ""}', 'store: {path: "x.db"}')
    )
    assert list(read_at_start(load_config(a), load_config(b))) == ["listen.port", "store"]


def test_a_reload_takes_the_keys_of_the_variable_and_the_file_again(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# mounted\nfile-key-1\n")
    config = tmp_path / "reload.yaml"
    text = base_yaml(upstream.url, chains='default: ["up:m1"]').replace(
        'api_keys: ["key-a-upstream", "key-b-upstream"]',
        f'api_keys: "${{POOL_KEYS}}", api_keys_file: "{keys_file}"',
    )
    config.write_text(text)
    proxy = proxy_process(config=config, env={"POOL_KEYS": "env-key-1, env-key-2"})

    def keys_used(n: int) -> set[str]:
        upstream.reset()
        for _ in range(n):
            status, _, _ = http(
                "POST", f"{proxy.url}/v1beta/models/default:generateContent", BODY, {}
            )
            assert status == 200
        return {r["headers"]["x-goog-api-key"] for r in upstream.requests("m1")}

    assert keys_used(6) == {"env-key-1", "env-key-2", "file-key-1"}
    keys_file.write_text("file-key-2\nfile-key-3  # the spare\n")
    config.write_text(text + "\n# reloaded\n")
    proxy.proc.send_signal(signal.SIGHUP)
    assert len(_wait_version(proxy, 2)["models"]["m1"]["keys"]) == 4
    assert keys_used(8) == {"env-key-1", "env-key-2", "file-key-2", "file-key-3"}
    assert proxy.stop() == 0
    log = proxy.log.read_text()
    assert not any(k in log for k in ("env-key-1", "file-key-1", "file-key-3"))
