"""The bytecode count: the floor and the proxy counted over the same requests, by function."""

from __future__ import annotations

import re
from pathlib import Path

from bench.opcodes import steps_table
from tests.bench.test_ab import _serve, run_module
from tests.conftest import free_port


def test_the_floor_and_the_proxy_are_counted_by_function(tmp_path: Path) -> None:
    upstream, url = _serve()
    base = url.split("/v1beta/")[0]
    config = tmp_path / "proxy.yaml"
    config.write_text(
        f"listen: {{host: 127.0.0.1, port: {free_port()}}}\n"
        f'responders:\n  up: {{type: gemini, base_url: "{base}", api_keys: ["k-upstream"]}}\n'
        'chains:\n  default: ["up:m1"]\n'
        'clients:\n  - {name: bench, key: "k-client"}\n'
        f'store: {{path: "{tmp_path / "s.db"}"}}\n'
    )
    try:
        out = run_module(
            *("bench.opcodes", "compare", "--config", str(config), "--upstream", base),
            *("--requests", "40", "--top", "15"),
            timeout=120,
        )
    finally:
        upstream.kill()
        upstream.wait()
    totals = re.search(r"bare aiohttp (\d+), proxy (\d+)", out)
    assert totals is not None, out
    bare, proxy = int(totals.group(1)), int(totals.group(2))
    # Both served every request through aiohttp; the proxy's own layers come on top.
    assert 1000 < bare < proxy
    rows = re.findall(r"^\| (\S+) \| ([\d.]+) \| ([\d.]+) \| ([-+][\d.]+) \|$", out, re.M)
    assert len(rows) == 15
    assert any(where.startswith("proxy/") and float(p) > 0 for where, _, p, _ in rows)
    assert any(where.startswith("bench/bare.py") and float(b) > 0 for where, b, _, _ in rows)


def test_the_counted_layer_budget_shows_each_step_against_the_one_before_and_the_floor() -> None:
    rows = [("bare aiohttp (the floor)", 6000.0), ("handler", 7500.0), ("+ auth", 7620.4)]
    lines = steps_table(rows).splitlines()
    assert lines[0] == "| layers | bytecodes / request | added | over the floor |"
    assert lines[2] == "| bare aiohttp (the floor) | 6000 |  | 1.00 x |"
    assert lines[3] == "| handler | 7500 | +1500 | 1.25 x |"
    assert lines[4] == "| + auth | 7620 | +120 | 1.27 x |"
