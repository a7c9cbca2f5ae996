"""A short smoke run of the benchmark harness, so it cannot rot. No thresholds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_bench_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    for name in ("direct", "nginx", "proxy"):
        assert data["small_32"][name]["rps"] > 0
        assert data["small_32"][name]["non_2xx"] == 0
    assert data["rotation_32"]["non_2xx"] == 0
    assert data["open_streams"]["dropped"] == 0
    assert data["proxy_log_errors"] == 0
    assert data["ledger"]["rows"] == data["ledger"]["requests"] > 0
    assert "| target | measured | holds |" in result.stdout
