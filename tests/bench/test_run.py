"""A short smoke run of the benchmark harness, so it cannot rot. No thresholds."""

from __future__ import annotations

from pathlib import Path

from tests.bench import smoke


def test_bench_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    stdout, data = smoke("bench.run", out)
    for name in ("direct", "nginx", "proxy"):
        assert data["small_32"][name]["rps"] > 0
        assert data["small_32"][name]["non_2xx"] == 0
    assert data["rotation_32"]["non_2xx"] == 0
    assert data["open_streams"]["dropped"] == 0
    assert data["proxy_log_errors"] == 0
    assert data["ledger"]["rows"] == data["ledger"]["requests"] > 0
    assert "| target | measured | holds |" in stdout
