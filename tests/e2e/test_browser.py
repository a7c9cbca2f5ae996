"""The status page in real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ROOT, ProxyProcess, Upstream, base_yaml

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
