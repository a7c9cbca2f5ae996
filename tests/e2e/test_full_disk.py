"""A full disk under the store, for real: a small tmpfs the test mounts (root only; CI is root).
Requests are still served, the failing writes are said once and counted, writes come back when
there is room again, and SIGTERM with the disk still full exits on time, code 0."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ProxyProcess, Upstream, base_yaml, http

StartProcess = Callable[..., ProxyProcess]
BODY = {"contents": [{"parts": [{"text": "x" * 2000}]}]}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk``."""
    filler = disk / "filler"
    try:
        with filler.open("wb") as out:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
    except OSError:
        pass  # full (perhaps already before the file could be made)
    return filler


def _generate(proxy: ProxyProcess, n: int) -> list[int]:
    url = f"{proxy.url}/v1beta/models/default:generateContent"
    return [http("POST", url, BODY)[0] for _ in range(n)]


def _metrics(proxy: ProxyProcess) -> dict[str, object]:
    out: dict[str, object] = json.loads(http("GET", f"{proxy.url}/metrics")[2])
    return out


def test_a_full_disk_is_survived_said_once_and_recovered(
    proxy_process: StartProcess, upstream: Upstream, small_disk: Path
) -> None:
    store = small_disk / "l104.db"
    proxy = proxy_process(base_yaml(upstream.url, store=str(store)))
    assert _generate(proxy, 5) == [200] * 5
    filler = _fill(small_disk)
    time.sleep(0.3)  # the five rows' batch is out before the disk filled, or counted dropped
    dropped_before = _metrics(proxy)["ledger_dropped"]
    assert _generate(proxy, 60) == [200] * 60  # a full disk never costs a request
    time.sleep(0.5)
    dropped = _metrics(proxy)["ledger_dropped"]
    assert isinstance(dropped, int)
    assert isinstance(dropped_before, int)
    assert dropped >= dropped_before + 50
    # Room again: the writer says so once and rows land.
    filler.unlink()
    assert _generate(proxy, 5) == [200] * 5
    deadline = time.monotonic() + 5
    while "store writes work again" not in proxy.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Full again, then SIGTERM: the last saves fail, the store still closes, and exit is prompt.
    _fill(small_disk)
    assert _generate(proxy, 20) == [200] * 20
    start = time.monotonic()
    assert proxy.stop() == 0
    assert time.monotonic() - start < 5
    log = proxy.log.read_text()
    assert "Traceback" not in log
    failing = [line for line in log.splitlines() if "store writes fail" in line]
    assert len(failing) == 2  # once for each time the disk filled, not once a batch
