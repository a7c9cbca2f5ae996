"""The side-by-side A/B: two real servers loaded at once, each one's CPU a request read."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request

from tests.conftest import ROOT, free_port


def _serve() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "bench/upstream.py", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1beta/models/m1:generateContent"
    for _ in range(100):
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the upstream did not start")


def run_module(module: str, *args: str, timeout: float = 60) -> str:
    """``python -m module args`` from the project's root; its output (it must exit 0)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    ).stdout


def test_two_servers_are_measured_in_the_same_rounds() -> None:
    servers = [_serve(), _serve()]
    try:
        out = run_module(
            "bench.ab",
            *(f"{proc.pid}={url}" for proc, url in servers),
            *("--rounds", "2", "--seconds", "1", "--conns", "4"),
        )
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()
    rounds = re.findall(r"round \d: A ([\d.]+) µs  B ([\d.]+) µs", out)
    assert len(rounds) == 2
    assert all(float(a) > 0 and float(b) > 0 for a, b in rounds)
    assert re.search(r"median: A [\d.]+ µs  B [\d.]+ µs  B - A [-+][\d.]+ µs", out)
