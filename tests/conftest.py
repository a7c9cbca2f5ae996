"""Shared fixtures: the fake upstream process, proxies in-process and as processes, SDK clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import types
from opentelemetry.sdk.trace import TracerProvider

from proxy.app import create_app
from proxy.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def key_shaped(tag: str) -> str:
    """A string shaped like a Google API key, built at run time so none sits in the tree."""
    body = (tag * 35)[:35]
    return "AI" + "za" + body


def http(
    method: str,
    url: str,
    data: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """A plain blocking HTTP call that never raises for a status."""
    body = json.dumps(data).encode() if data is not None else None
    # Only ever a loopback http:// URL built by the tests.
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def run_cli(
    *args: str, env: dict[str, str] | None = None, script: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m proxy ARGS`` (or the console ``script``) to the end, from the project root."""
    cmd = [script] if script else [sys.executable, "-m", "proxy"]
    return subprocess.run(
        [*cmd, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=30, check=False
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            status, _, _ = http("GET", url, timeout=1)
            # Only a 200: any other server that took the port answers its own 404.
            if status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up")


@dataclass
class Upstream:
    """Handle on the fake Gemini upstream process."""

    url: str

    def _control(self, what: str, data: Any = None) -> Any:
        status, _, body = http(
            "POST" if data is not None or what in ("reset", "release") else "GET",
            f"{self.url}/_{what}",
            data,
        )
        assert status == 200, body
        return json.loads(body)

    def script(self, model: str, *steps: dict[str, Any]) -> None:
        self._control("script", {"model": model, "steps": list(steps)})

    def bad_keys(self, keys: dict[str, int]) -> None:
        """Make keys invalid (400) or suspended (403) for every call."""
        self._control("keys", keys)

    def quota(self, model: str, per_minute: int, delay: str = "60s") -> None:
        self._control("quota", {"model": model, "per_minute": per_minute, "delay": delay})

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        reqs: list[dict[str, Any]] = self._control("requests")
        return [r for r in reqs if model is None or r["model"] == model]

    def state(self) -> dict[str, int]:
        out: dict[str, int] = self._control("state")
        return out

    def release(self) -> None:
        self._control("release")

    def reset(self) -> None:
        self._control("reset")


@pytest.fixture(scope="session")
def upstream_process() -> Iterator[Upstream]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port)],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/_state", proc)
        yield Upstream(url)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def upstream(upstream_process: Upstream) -> Upstream:
    upstream_process.reset()
    return upstream_process


UPSTREAM_KEYS = ("key-a-upstream", "key-b-upstream")


def base_yaml(
    upstream_url: str,
    *,
    chains: str = 'default: ["up:m1", "up:m2", "up:m3"]',
    keys: tuple[str, ...] = UPSTREAM_KEYS,
    rotation: str = "",
    extra: str = "",
    timeout_s: float = 3,
    store: str = "",
) -> str:
    """A config with a gemini responder ``up`` on the fake upstream and a fake ``local``.
    ``store`` is the SQLite path; empty (the default here) turns the store off."""
    key_list = ", ".join(json.dumps(k) for k in keys)
    return f"""
listen: {{host: 127.0.0.1, port: 0}}
responders:
  up: {{type: gemini, base_url: "{upstream_url}", api_keys: [{key_list}], timeout_s: {timeout_s},
        connect_timeout_s: 1}}
  local: {{type: fake, chunks: 3}}
  busy: {{type: template, text: "All busy for {{model}}, retry in {{retry_after}}s: {{prompt}}"}}
  mirror: {{type: echo}}
chains:
  {chains}
rotation: {{on: [429, 503, timeout, connect, empty], cooldown_s: 60, max_attempts: 6{rotation}}}
store: {{path: "{store}"}}
{extra}
"""


def config_from(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    return load_config(path, env or {})


def one_responder_yaml(name: str, kind: str, options: str) -> str:
    """A config whose default chain is one member on the responder ``name`` of type ``kind``
    (``options``: the rest of its flow mapping)."""
    return f"""
listen: {{host: 127.0.0.1, port: 0}}
responders:
  {name}: {{type: {kind}, {options}}}
chains:
  default: ["{name}:gemini-2.5-flash"]
"""


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Proxy:
    url: str
    app: web.Application
    clock: FakeClock = field(default_factory=FakeClock)
    # The SDK closes its session when a Client is collected: keep each one for the test.
    clients: dict[tuple[str, str], genai.Client] = field(default_factory=dict)

    def client(self, version: str = "v1beta", key: str = "client-key") -> genai.Client:
        if (version, key) not in self.clients:
            options = types.HttpOptions(base_url=self.url, api_version=version)
            self.clients[(version, key)] = genai.Client(api_key=key, http_options=options)
        return self.clients[(version, key)]


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def start_proxy(tmp_path: Path) -> AsyncIterator[StartProxy]:
    """Start the proxy in this event loop on 127.0.0.1 from YAML text."""
    servers: list[TestServer] = []
    proxies: list[Proxy] = []

    async def start(
        text: str,
        env: dict[str, str] | None = None,
        provider: TracerProvider | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> Proxy:
        """``now``: a made wall clock (days that pass without waiting for them)."""
        config = config_from(tmp_path, text, env)
        clock = FakeClock()
        app = (
            create_app(config, clock=clock, provider=provider, now=now)
            if now is not None
            else create_app(config, clock=clock, provider=provider)
        )
        server = TestServer(app, host="127.0.0.1", port=free_port())
        await server.start_server()
        servers.append(server)
        proxies.append(Proxy(str(server.make_url("")).rstrip("/"), app, clock))
        return proxies[-1]

    yield start
    for server in servers:
        await server.close()
    for proxy in proxies:
        for client in proxy.clients.values():
            await client.aio.aclose()


@dataclass
class ProxyProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, version: str = "v1beta", key: str = "client-key") -> genai.Client:
        return genai.Client(
            api_key=key, http_options=types.HttpOptions(base_url=self.url, api_version=version)
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _serves(url: str, config: Path) -> bool:
    """Whether the server answering at ``url`` is the proxy serving ``config``."""
    try:
        _, _, body = http("GET", f"{url}/health", timeout=2)
        found = json.loads(body).get("config", {}).get("file")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(found == str(config))


@pytest.fixture
def proxy_process(tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    """Start ``python -m proxy serve`` as a process; stopped at the end of the test."""
    started: list[ProxyProcess] = []

    def start(
        text: str | None = None,
        *,
        config: Path | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        scheme: str = "http",
        prefix: tuple[str, ...] = (),
    ) -> ProxyProcess:
        if config is None:
            config = tmp_path / f"proxy-{len(started)}.yaml"
            config.write_text(text or "")
        log = tmp_path / f"proxy-{len(started)}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "L104_"))}
        full_env.update(env or {})
        for _ in range(3):
            port = free_port()
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [
                        *prefix,
                        sys.executable,
                        "-m",
                        "proxy",
                        "serve",
                        "--config",
                        str(config),
                        "--port",
                        str(port),
                        *args,
                    ],
                    cwd=ROOT,
                    env=full_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            handle = ProxyProcess(f"{scheme}://127.0.0.1:{port}", proc, log)
            wait_ready(f"{handle.url}/ready", proc)
            if scheme != "http" or _serves(handle.url, config):
                break
            # Another test's server took the free port first (anything under 500 looks ready):
            # this one could not bind. Another port.
            handle.stop()
        started.append(handle)
        return handle

    yield start
    for handle in started:
        died = handle.proc.poll()
        if died is not None and died != 0:  # it ended before the test stopped it: say how
            tail = handle.log.read_text(errors="replace")[-3000:]
            print(f"proxy {handle.url} exited {died} during the test; its log ends:\n{tail}")
        handle.stop()


async def ledger_rows(db: Path, columns: str, count: int = 1) -> list[tuple[Any, ...]]:
    """The ledger's ``columns`` (in row order) once it holds ``count`` rows: the writer lingers
    up to 250 ms to batch them. Waits at most 5 s, then returns what is there."""
    rows: list[tuple[Any, ...]] = []
    for _ in range(100):
        with sqlite3.connect(db) as conn:
            rows = conn.execute(f"SELECT {columns} FROM ledger ORDER BY id").fetchall()  # noqa: S608
        if len(rows) >= count:
            break
        await asyncio.sleep(0.05)
    return rows


NODE_DIR = ROOT / "tests" / "node"


async def run_node(script: str, *args: str, limit_s: float = 30) -> Any:
    """Run ``tests/node/SCRIPT`` with node (without blocking the loop the proxy serves on);
    its last stdout line is JSON, returned parsed."""
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / script),
        *args,
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    finally:
        if proc.returncode is None:  # timed out: never leave it running
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def read_sse(resp: Any) -> list[tuple[str, Any]]:
    """The (event, parsed data) pairs of an SSE response, comments skipped."""
    text = (await resp.read()).decode()
    events: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


@dataclass
class RedisServer:
    """Debian's redis-server on a free loopback port, started by the tests (no persistence)."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def command(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, check=True
        )
        return out.stdout.decode().strip()


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_process: RedisServer) -> RedisServer:
    """The session's Redis, emptied (and started again if a test stopped it)."""
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    redis_process.command("FLUSHALL")
    return redis_process
