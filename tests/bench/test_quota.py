"""A short smoke run of ``make bench-quota``, so it cannot rot. No targets: timing belongs to
the benchmark, not to ``make test``."""

from __future__ import annotations

from pathlib import Path

from bench.quota_upstream import Quota, best_possible
from tests.bench import smoke


def test_best_possible_follows_rolling_windows() -> None:
    quotas = {"m1": Quota(2), "m2": Quota(1, rpd=1)}
    # Three fit at 0 s (2 + 1); the fourth waits for m1's window; m2's day is spent.
    lanes = [("a", "m1"), ("a", "m2")]
    assert best_possible([0, 0, 0, 0, 30, 60.5, 60.5, 60.5], quotas, lanes) == 5


def test_bench_quota_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "quota.json"
    _, data = smoke("bench.quota", out)
    assert set(data) == {
        f"{name}, {kind}"
        for name in ("steady", "bursts", "per_day", "vertex")
        for kind in ("learned", "declared")
    }
    for run in data.values():
        assert run["requests"] > 0
        assert 0 < run["successes"] <= run["requests"]
    assert data["steady, declared"]["upstream_429"] == 0
    # Two requests a minute on each member: all six served only if Vertex took its two.
    vertex = data["vertex, learned"]
    assert vertex["best"] == 6
    assert vertex["successes"] == 6
