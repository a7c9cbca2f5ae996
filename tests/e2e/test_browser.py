"""Real headless Chromium (Debian's), driven by Playwright: the status page, and pages on other
origins that call the Gemini surface with ``fetch`` and with ``@google/genai``'s browser build."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import (
    NODE_DIR,
    ROOT,
    ProxyProcess,
    Upstream,
    base_yaml,
    free_port,
    http,
    wait_ready,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    yield context.new_page()
    context.close()


def test_status_page_streams_and_shows_cooling(
    page: Page, proxy_process: Callable[..., ProxyProcess], upstream: Upstream, tmp_path: Path
) -> None:
    proxy = proxy_process(
        base_yaml(upstream.url, keys=("only-key",), store=str(tmp_path / "l104.db"))
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(proxy.url)
    expect(page).to_have_title("L104 Proxy")
    expect(page.locator('tr[data-model="m1"] td.state')).to_have_text("ready")
    expect(page.locator("#live")).to_have_text("live")

    # A raw EventSource on /api/v6/stream, as any page would use it.
    events = page.evaluate("""() => new Promise((resolve) => {
        const got = [];
        const es = new EventSource("/api/v6/stream?signal=hello");
        es.addEventListener("chunk", (e) => got.push(["chunk", JSON.parse(e.data).text]));
        es.addEventListener("done", (e) => { got.push(["done", JSON.parse(e.data).model]);
                                             es.close(); resolve(got); });
        es.addEventListener("error", () => { es.close(); resolve(got); });
    })""")
    assert events == [
        ["chunk", "part0 from m1. "],
        ["chunk", "part1 from m1. "],
        ["chunk", "part2 from m1. "],
        ["done", "m1"],
    ]

    # The prompt box streams its answer; then m1 runs out of quota and the page shows it.
    upstream.script("m1", {"status": 429, "delay": "120s"})
    page.fill("#signal", "What is L104?")
    page.fill("#session", "browser-1")
    page.click("#send")
    expect(page.locator("#answer-meta")).to_contain_text("answered by m2")
    expect(page.locator("#answer")).to_have_text("part0 from m2. part1 from m2. part2 from m2. ")
    expect(page.locator('tr[data-model="m1"] td.state')).to_have_text("cooling", timeout=10_000)
    expect(page.locator('tr[data-model="m1"] td.cooldown')).to_contain_text("s")
    expect(page.locator("#model_rotations")).to_have_text("1", timeout=5_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
    assert errors == []


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two page origins on 127.0.0.1 (the first is the one the proxy lists), both serving a
    page that loads ``@google/genai`` bundled by esbuild, as a web app ships it."""
    root = tmp_path_factory.mktemp("pages")
    subprocess.run(
        [
            str(NODE_DIR / "node_modules" / ".bin" / "esbuild"),
            "browser_entry.mjs",
            "--bundle",
            "--format=iife",
            "--platform=browser",
            f"--outfile={root / 'genai.js'}",
            "--log-level=warning",
        ],
        cwd=NODE_DIR,
        check=True,
        timeout=60,
    )
    (root / "index.html").write_text(
        '<!doctype html><title>app</title><script src="genai.js"></script>'
    )
    servers, origins = [], []
    for _ in range(2):
        port = free_port()
        servers.append(
            subprocess.Popen(
                [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                cwd=root,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        origins.append(f"http://127.0.0.1:{port}")
        wait_ready(origins[-1] + "/index.html", servers[-1])
    yield origins[0], origins[1]
    for server in servers:
        server.terminate()
        server.wait(5)


FETCH_STREAM = """async ([url, key]) => {
    const r = await fetch(url + "/v1beta/models/default:streamGenerateContent?alt=sse", {
        method: "POST",
        headers: {"content-type": "application/json", "x-goog-api-key": key,
                  "x-goog-api-client": "page-test/1"},
        body: JSON.stringify({contents: [{role: "user", parts: [{text: "hi"}]}]}),
    });
    const reader = r.body.getReader();
    const chunks = [];
    for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        chunks.push(new TextDecoder().decode(value));
    }
    return {status: r.status, model: r.headers.get("x-l104-model"),
            attempts: r.headers.get("x-l104-attempts"), body: chunks.join("")};
}"""

GENAI_STREAM = """async ([url, key]) => {
    const ai = new GoogleGenAI({apiKey: key, httpOptions: {baseUrl: url, apiVersion: "v1beta"}});
    const stream = await ai.models.generateContentStream({model: "default", contents: "hi"});
    const texts = [];
    for await (const chunk of stream) texts.push(chunk.text);
    return texts;
}"""

CATCH = """async ([url, key]) => {
    try {
        await (%s)([url, key]);
        return "answered";
    } catch (e) {
        return "refused: " + e.name;
    }
}"""


def test_pages_on_a_listed_origin_stream_from_the_gemini_surface(
    page: Page,
    pages: tuple[str, str],
    proxy_process: Callable[..., ProxyProcess],
    upstream: Upstream,
) -> None:
    allowed, other = pages
    clients = "clients: [{name: web, key: page-key}]"
    proxy = proxy_process(
        base_yaml(upstream.url, extra=clients).replace(
            "listen: {host: 127.0.0.1, port: 0}",
            f"listen: {{host: 127.0.0.1, port: 0, cors_origins: ['{allowed}']}}",
        )
    )
    page.goto(allowed + "/index.html")
    got = page.evaluate(FETCH_STREAM, [proxy.url, "page-key"])
    assert (got["status"], got["model"], got["attempts"]) == (200, "m1", "1")
    assert got["body"].count("data: {") == 3
    texts = page.evaluate(GENAI_STREAM, [proxy.url, "page-key"])
    assert texts == ["part0 from m1. ", "part1 from m1. ", "part2 from m1. "]
    sent = upstream.requests("m1")
    assert len(sent) == 2
    assert sent[1]["headers"]["x-goog-api-client"].startswith("google-genai-sdk/")

    upstream.reset()
    page.goto(other + "/index.html")
    assert page.evaluate(CATCH % FETCH_STREAM, [proxy.url, "page-key"]) == "refused: TypeError"
    assert page.evaluate(CATCH % GENAI_STREAM, [proxy.url, "page-key"]).startswith("refused")
    assert upstream.requests() == []


def test_the_status_page_behind_an_admin_key(
    page: Page, proxy_process: Callable[..., ProxyProcess], upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        "listen: {host: 127.0.0.1, port: 0, admin_key: page-admin-key-1}",
    )
    proxy = proxy_process(yaml)
    assert page.goto(proxy.url).status == 401  # type: ignore[union-attr]
    page.goto(proxy.url + "/?admin_key=page-admin-key-1")
    assert page.url == proxy.url + "/"  # the key left the address bar
    expect(page).to_have_title("L104 Proxy")
    expect(page.locator("#live")).to_have_text("live")  # EventSource, carried by the cookie
    expect(page.locator('tr[data-model="m1"] td.state')).to_have_text("ready")
    assert "page-admin-key-1" not in proxy.log.read_text()


def by_series(chart: dict[str, list[Any]]) -> dict[str, float]:
    """A chart's total by series label."""
    return dict(zip(chart["series"], chart["totals"], strict=True))


def test_the_charts_hold_what_the_usage_api_says(
    page: Page,
    proxy_process: Callable[..., ProxyProcess],
    upstream: Upstream,
    tmp_path: Path,
) -> None:
    extra = """
clients: [{name: alice, key: alice-key, budget: {usd_per_day: 1.0}}, {name: bob, key: bob-key}]
pricing: {m1: {input: 1.0, output: 10.0}, m2: {input: 2.0, output: 20.0}}
"""
    proxy = proxy_process(
        base_yaml(upstream.url, keys=("only-key",), store=str(tmp_path / "l104.db"), extra=extra)
    )
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    url = f"{proxy.url}/v1beta/models/default:generateContent"
    for _ in range(3):
        assert http("POST", url, body, {"x-goog-api-key": "alice-key"})[0] == 200
    upstream.script("m1", {"status": 429, "delay": "120s"})  # then m1 cools: m2 answers
    for _ in range(2):
        assert http("POST", url, body, {"x-goog-api-key": "alice-key"})[0] == 200
    assert http("POST", url, body, {"x-goog-api-key": "bob-key"})[0] == 200
    time.sleep(0.5)  # the ledger's writer lingers up to 250 ms
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(proxy.url)
    page.fill("#key", "alice-key")
    page.dispatch_event("#key", "change")
    expect(page.locator('#budgets tr[data-client="alice"] td').nth(3)).to_have_text("1")
    page.wait_for_function("() => window.l104Charts['chart-cost'] !== undefined")
    charts = page.evaluate(
        """() => Object.fromEntries(Object.entries(window.l104Charts).map(
            ([id, c]) => [id, {series: c.series, totals: c.data.slice(1).map(
                (s) => s.reduce((a, b) => a + b, 0))}]))"""
    )
    status, _, raw = http(
        "GET", f"{proxy.url}/api/v6/usage?by=model", None, {"x-goog-api-key": "alice-key"}
    )
    assert status == 200
    api = {r["model"]: r for r in json.loads(raw)["rows"]}
    requests = by_series(charts["chart-requests"])
    assert requests["m1 requests"] == api["m1"]["requests"] == 3
    assert requests["m2 requests"] == api["m2"]["requests"] == 2
    rotations = by_series(charts["chart-rotations"])
    # The request that met m1's 429 moved on to m2: one rotation, on m2's row.
    assert rotations == {"m1 rotations": 0, "m2 rotations": 1}
    assert api["m2"]["rotations"] == 1
    cost = by_series(charts["chart-cost"])
    status, _, raw = http(
        "GET", f"{proxy.url}/api/v6/usage?by=client", None, {"x-goog-api-key": "alice-key"}
    )
    alice = json.loads(raw)["rows"][0]
    assert list(cost) == ["alice USD"]  # alice's own only: bob's are not hers
    assert cost["alice USD"] == pytest.approx(alice["cost_usd"])
    # 3 x (8 x $1 + 3 x $10)/M + 2 x (8 x $2 + 3 x $20)/M
    assert alice["cost_usd"] == pytest.approx(3 * 0.000038 + 2 * 0.000076)
    # The same money through the ledger and Prometheus as through the API and the chart.
    with sqlite3.connect(tmp_path / "l104.db") as conn:
        ledger = conn.execute("SELECT SUM(cost_usd) FROM ledger WHERE client = 'alice'").fetchone()
    assert ledger[0] == pytest.approx(alice["cost_usd"])
    _, _, prom = http("GET", f"{proxy.url}/metrics/prometheus")
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in prom.decode().splitlines()
        if line.startswith("l104_cost_usd_total{") and 'client="alice"' in line
    )
    assert counted == pytest.approx(alice["cost_usd"])
    shot = tmp_path / "usage-charts.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nthe charts: {shot}")
    assert errors == []
