"""A soak: 20,000 mixed requests through the server as a process, with the store on.

Memory after the soak stays within 10 % of memory after a warm-up, no file descriptor leaks, and
SIGTERM then exits promptly. The numbers print with ``-s`` (the promises in docs/operations.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ProxyProcess, Upstream, base_yaml

StartProcess = Callable[..., ProxyProcess]
SOAK = 20_000
WARM = 2_000
CONCURRENCY = 16
LIMIT_S = 120  # the whole soak, at most
KEY = {"x-goog-api-key": "soak-key"}
BODY = b'{"contents": [{"parts": [{"text": "hello"}]}]}'


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def _fds(pid: int, upstream_port: int) -> Counter[str]:
    """The process's descriptors by kind; connections to the upstream are a pool, counted
    apart (the pool's size follows the load, up to the connector's limit)."""
    inodes = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            remote_port = int(cols[2].split(":")[1], 16)
            inodes[cols[9]] = "upstream" if remote_port == upstream_port else "socket"
    kinds: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        inode = target[8:-1] if target.startswith("socket:[") else None
        kinds[inodes.get(inode, "socket") if inode else "file"] += 1
    return kinds


async def _one(session: aiohttp.ClientSession, base: str, i: int) -> int:
    kind = i % 10
    gen = f"{base}/v1beta/models/default"
    if kind in (0, 1, 2):
        async with session.post(f"{gen}:generateContent", data=BODY, headers=KEY) as r:
            await r.read()
    elif kind == 3:
        async with session.post(
            f"{gen}:streamGenerateContent?alt=sse", data=BODY, headers=KEY
        ) as r:
            await r.read()
    elif kind == 4:  # a client that leaves a stream after its first chunk
        async with session.post(
            f"{gen}:streamGenerateContent?alt=sse", data=BODY, headers=KEY
        ) as r:
            await r.content.readline()
            r.close()
            return 499
    elif kind == 5:
        async with session.post(f"{gen}:countTokens", data=BODY, headers=KEY) as r:
            await r.read()
    elif kind == 6:
        async with session.get(f"{base}/v1beta/models", headers=KEY) as r:
            await r.read()
    elif kind == 7:  # a wrong key: 403, as Gemini
        async with session.post(
            f"{gen}:generateContent", data=BODY, headers={"x-goog-api-key": "no"}
        ) as r:
            await r.read()
    elif kind == 8:  # a body that is no JSON
        async with session.post(f"{gen}:generateContent", data=b"{oops", headers=KEY) as r:
            await r.read()
    else:
        async with session.post(
            f"{base}/v1beta/openai/chat/completions",
            json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer soak-key"},
        ) as r:
            await r.read()
    return r.status


async def _load(base: str, count: int, deadline: float) -> Counter[int]:
    statuses: Counter[int] = Counter()
    next_i = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_i
        while next_i < count and time.monotonic() < deadline:
            i, next_i = next_i, next_i + 1
            statuses[await _one(session, base, i)] += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return statuses


# Its own loop is bounded by LIMIT_S; a busy 2-core machine (another worker beside it) may need
# more than the suite's default minute for it.
@pytest.mark.timeout(LIMIT_S + 30)
async def test_a_soak_of_20000_mixed_requests_leaks_neither_memory_nor_files(
    proxy_process: StartProcess, upstream: Upstream, tmp_path: Path
) -> None:
    yaml = base_yaml(
        upstream.url,
        chains='default: ["up:m1", "up:m2"]',
        store=str(tmp_path / "soak.db"),
        extra='clients: [{name: soak, key: "soak-key"}]',
    )
    proxy = proxy_process(yaml)
    pid = proxy.proc.pid
    upstream_port = int(upstream.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + LIMIT_S
    warm = await _load(proxy.url, WARM, deadline)
    await asyncio.sleep(0.5)
    rss_warm, fds_warm = _rss_kib(pid), _fds(pid, upstream_port)
    start = time.monotonic()
    soak = await _load(proxy.url, SOAK, deadline)
    took = time.monotonic() - start
    await asyncio.sleep(0.5)
    rss_after, fds_after = _rss_kib(pid), _fds(pid, upstream_port)
    assert sum(soak.values()) == SOAK, f"the soak did not finish in {LIMIT_S} s: {soak}"
    assert soak == Counter({200: 14_000, 499: 2_000, 403: 2_000, 400: 2_000})
    assert set(warm) == {200, 499, 403, 400}
    growth = rss_after / rss_warm - 1
    leaked = {k: fds_after[k] - fds_warm[k] for k in ("file", "socket")}
    proxy.proc.send_signal(signal.SIGTERM)
    stop_start = time.monotonic()
    code = proxy.proc.wait(15)
    exit_s = time.monotonic() - stop_start
    print(
        f"\nsoak: {SOAK} requests in {took:.1f} s ({SOAK / took:.0f}/s, {CONCURRENCY} conns); "
        f"RSS {rss_warm / 1024:.1f} MiB after warm-up, {rss_after / 1024:.1f} MiB after the "
        f"soak ({growth:+.1%}); fds leaked {leaked}, upstream pool {fds_warm['upstream']} -> "
        f"{fds_after['upstream']}; exit on SIGTERM {exit_s * 1000:.0f} ms"
    )
    assert growth < 0.10
    assert leaked == {"file": 0, "socket": 0}
    assert code == 0
    assert exit_s < 3
