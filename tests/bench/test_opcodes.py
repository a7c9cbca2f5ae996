"""The bytecode count: the floor and the proxy counted over the same requests, by function."""

from __future__ import annotations

import re
from pathlib import Path

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
