"""A 200 MB upload through the proxy as a process: the bytes stream through, RSS stays flat."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ProxyProcess, Upstream, base_yaml

SIZE = 200 * 1024 * 1024


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_200_mb_upload_streams_through_with_flat_rss(
    proxy_process: Callable[..., ProxyProcess], upstream: Upstream, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        block = os.urandom(1024 * 1024)
        for _ in range(SIZE // len(block)):
            out.write(block)
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    proxy = proxy_process(base_yaml(upstream.url))
    client = proxy.client()
    client.models.generate_content(model="default", contents="warm up")
    before = memory_kb(proxy.proc.pid, "VmRSS")
    file = client.files.upload(file=big, config={"mime_type": "application/octet-stream"})
    peak = memory_kb(proxy.proc.pid, "VmHWM")
    assert file.size_bytes == SIZE
    assert file.sha256_hash is not None
    # The fake upstream hashed what reached it: every byte, in order.
    assert base64.b64decode(file.sha256_hash).decode() == digest
    pieces = [r for r in upstream.requests() if r["action"] == "files.piece"]
    assert len(pieces) == 25  # the SDK's 8 MB pieces, each to the same upload
    assert pieces[-1]["command"] == "upload, finalize"
    grown_mb = (peak - before) / 1024
    print(f"proxy RSS {before / 1024:.0f} MB before, peak {peak / 1024:.0f} MB")
    assert grown_mb < 48, f"RSS grew {grown_mb:.0f} MB while 200 MB passed"
