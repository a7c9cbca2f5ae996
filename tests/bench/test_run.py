"""A short smoke run of the benchmark harness, so it cannot rot. No thresholds."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from bench.run import in_rounds
from tests.bench import smoke


@pytest.mark.timeout(240)  # about 70 processes, a second of wrk a scenario, 10 counted runs
def test_bench_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    stdout, data = smoke("bench.run", out)
    for name in ("direct", "nginx", "bare aiohttp", "proxy", "proxy, shared state"):
        assert data["small_32"][name]["rps"] > 0
        assert data["small_32"][name]["non_2xx"] == 0
    assert data["rotation_32"]["non_2xx"] == 0
    assert data["open_streams"]["dropped"] == 0
    local = data["open_streams_local"]  # held by one process, its fake responder answering
    assert local["completed"] == local["streams"] == 50
    assert local["peak_rss_mb"] > 0
    assert data["proxy_log_errors"] == 0
    assert data["ledger"]["rows"] == data["ledger"]["requests"] > 0
    assert "| target | measured | holds |" in stdout
    for name in ("nginx", "bare aiohttp", "proxy"):  # to a TLS upstream
        assert data["tls"][name]["rps"] > 0
        assert data["tls"][name]["non_2xx"] == 0
    budget = data["layer_budget"]
    assert budget[0]["name"] == "bare aiohttp (the floor)"
    assert all(row["cpu_us_per_request"] > 0 for row in budget)
    assert "| layers | µs CPU / request | added | RPS |" in stdout
    in_process = dict(data["layers_in_process"])
    for layer in ("Telemetry", "Ledger", "ClientAuth", "ClientRateLimit", "GlobalAdmission"):
        # Every layer ran; a cheap one can read a little under the handler alone at 200 requests.
        assert -20 < in_process[layer] < 1000, layer
    ops = data["opcodes"]  # the work counted: the proxy's layers come on top of aiohttp's
    assert 1000 < ops["bare"] < ops["proxy"]
    assert any(where.startswith("proxy/") and p > 0 for where, _, p in ops["largest"])
    assert "bytecodes a request (bench.opcodes)" in stdout
    steps = dict(ops["steps"])  # the layer budget counted: the floor, then every step
    assert steps["bare aiohttp (the floor)"] == ops["bare"]
    assert ops["bare"] < steps["handler (rotation, responder, usage)"] < ops["proxy"]
    assert list(steps)[-1].startswith("+ telemetry")
    assert list(steps.values())[-1] == ops["proxy"]
    assert "| layers | bytecodes / request | added | over the floor |" in stdout


def test_in_rounds_takes_the_targets_in_turn_and_the_median_of_each() -> None:
    order: list[str] = []
    values = {"a": iter([5.0, 1.0, 3.0]), "b": iter([10.0, 30.0, 20.0])}

    def run(name: str) -> dict[str, float]:
        order.append(name)
        return {"p50_ms": next(values[name]), "rps": 1.0}

    out = in_rounds(3, {name: partial(run, name) for name in ("a", "b")})
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert out == {"a": {"p50_ms": 3.0, "rps": 1.0}, "b": {"p50_ms": 20.0, "rps": 1.0}}
