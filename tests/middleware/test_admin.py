"""``listen.admin_key`` closes the proxy's own pages; probes stay open."""

from __future__ import annotations

import aiohttp
import pytest

from proxy.accesslog import redact
from proxy.middleware.admin import FAILURE_WINDOW_S, FAILURES, SESSION_S, AdminGate
from tests.conftest import StartProxy, Upstream, base_yaml

ADMIN = "admin-secret-key-1"


def admin_yaml(upstream: Upstream) -> str:
    return base_yaml(upstream.url).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        f"listen: {{host: 127.0.0.1, port: 0, admin_key: {ADMIN}}}",
    )


@pytest.mark.parametrize("path", ["/", "/metrics", "/metrics/prometheus", "/api/v6/status"])
async def test_admin_pages_need_the_key(
    start_proxy: StartProxy, upstream: Upstream, path: str
) -> None:
    proxy = await start_proxy(admin_yaml(upstream))
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + path) as r:
            assert r.status == 401
            assert (await r.json())["error"]["status"] == "UNAUTHENTICATED"
        async with s.get(proxy.url + path, headers={"x-l104-admin-key": "wrong"}) as r:
            assert r.status == 401
        async with s.get(proxy.url + path, headers={"x-l104-admin-key": ADMIN}) as r:
            assert r.status == 200
        async with s.get(proxy.url + path, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            assert r.status == 200
        for probe in ("/health", "/ready"):
            async with s.get(proxy.url + probe) as r:
                assert r.status == 200


async def test_a_browser_takes_the_key_once_and_keeps_a_cookie(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(admin_yaml(upstream))
    # unsafe=True: aiohttp's jar otherwise keeps no cookie for an IP host (browsers do).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.get(f"{proxy.url}/?admin_key={ADMIN}", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/"  # the key leaves the URL at once
            cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert ADMIN not in cookie  # a digest, never the key
        async with s.get(f"{proxy.url}/") as r:  # the jar sends the cookie back
            assert r.status == 200
        async with s.get(f"{proxy.url}/api/v6/events") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
        async with s.get(f"{proxy.url}/?admin_key=wrong", allow_redirects=False) as r:
            assert r.status == 401


async def test_without_an_admin_key_the_pages_stay_open(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/metrics") as r:
        assert r.status == 200


def test_the_admin_key_is_redacted_from_the_access_log() -> None:
    assert redact(f"x=1&admin_key={ADMIN}") == "x=1&admin_key=[redacted]"
    assert redact("key=k&admin_key=a") == "key=[redacted]&admin_key=[redacted]"


async def test_admin_key_guesses_are_slowed_per_peer(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(admin_yaml(upstream))
    statuses = []
    async with aiohttp.ClientSession() as s:
        for i in range(300):
            headers = {"x-l104-admin-key": f"guess-{i}"}
            async with s.get(f"{proxy.url}/metrics", headers=headers) as r:
                statuses.append(r.status)
        assert statuses.count(401) == FAILURES
        assert statuses.count(429) == 300 - FAILURES
        # Locked out: the right key too, and through /health's admin view.
        async with s.get(f"{proxy.url}/metrics", headers={"x-l104-admin-key": ADMIN}) as r:
            assert r.status == 429
            assert int(r.headers["Retry-After"]) > 0
        proxy.clock.advance(FAILURE_WINDOW_S + 1)
        async with s.get(f"{proxy.url}/metrics", headers={"x-l104-admin-key": ADMIN}) as r:
            assert r.status == 200


def test_a_session_cookie_is_signed_and_expires() -> None:
    now = [1_000_000.0]
    gate = AdminGate(ADMIN, wall=lambda: now[0])
    first, second = gate.new_session(), gate.new_session()
    assert first != second  # not a fixed digest of the key
    assert ADMIN not in first
    assert gate._valid_session(first)
    expiry, nonce, signature = first.split(".")
    assert not gate._valid_session(f"{int(expiry) + 10**6}.{nonce}.{signature}")  # tampered
    assert not AdminGate("another-admin-key")._valid_session(first)  # a new key ends it
    now[0] += SESSION_S + 1
    assert not gate._valid_session(first)


async def test_the_cookie_is_secure_behind_tls_and_has_an_age(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = admin_yaml(upstream).replace(
        f"admin_key: {ADMIN}", f'admin_key: {ADMIN}, public_url: "https://l104.example"'
    )
    proxy = await start_proxy(yaml)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{proxy.url}/?admin_key={ADMIN}", allow_redirects=False) as r,
    ):
        cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie
    assert f"Max-Age={SESSION_S}" in cookie
