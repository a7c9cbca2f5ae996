"""The Grafana dashboard shipped in ``deploy/grafana/`` queries only metrics the proxy exposes."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import aiohttp
from google.genai import errors

from tests.conftest import ROOT, StartProxy, Upstream, base_yaml

DASHBOARD = ROOT / "deploy" / "grafana" / "l104-proxy.json"
EXTRA = """
clients:
  - {name: alice, key: alice-key, budget: {usd_per_day: 1.0}}
  - {name: tight, key: tight-key, requests_per_minute: 1}
pricing: {m1: {input: 1.0, output: 10.0}, m2: {input: 2.0, output: 20.0}}
"""


def queried() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\bl104_[a-z0-9_]+", e)}


async def test_every_metric_the_dashboard_queries_exists(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=EXTRA, store=str(tmp_path / "s.db")))
    upstream.script("m1", {"status": 429, "delay": "30s"}, {"status": 429, "delay": "30s"})
    client = proxy.client(key="alice-key").aio
    await client.models.generate_content(model="default", contents="hi")  # 429s, a rotation
    await client.models.generate_content(model="m1", contents="hi")
    tight = proxy.client(key="tight-key").aio
    await tight.models.generate_content(model="m2", contents="hi")
    with contextlib.suppress(errors.ClientError):  # its second of the minute: refused
        await tight.models.generate_content(model="m2", contents="hi")
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/metrics/prometheus") as r:
        text = await r.text()
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    names = queried()
    assert len(names) >= 8
    missing = sorted(n for n in names if n not in samples)
    assert not missing, f"queried by the dashboard, not exposed: {missing}"
