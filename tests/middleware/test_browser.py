"""CORS on every surface a page may call, only for ``listen.cors_origins``."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import StartProxy, Upstream, base_yaml

ALLOWED = "http://app.example"


def cors_yaml(upstream: Upstream) -> str:
    return base_yaml(upstream.url).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        f"listen: {{host: 127.0.0.1, port: 0, cors_origins: ['{ALLOWED}']}}",
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/default:streamGenerateContent?alt=sse",
        "/v1/models/default:generateContent",
        "/v1alpha/models",
        "/api/v6/stream",
    ],
)
async def test_preflight_allows_what_the_sdks_send(
    start_proxy: StartProxy, upstream: Upstream, path: str
) -> None:
    proxy = await start_proxy(cors_yaml(upstream))
    asked = "content-type, x-goog-api-key, x-goog-api-client, x-stainless-os"
    async with (
        aiohttp.ClientSession() as s,
        s.options(
            proxy.url + path,
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": asked,
            },
        ) as r,
    ):
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        allowed = {h.strip() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"x-goog-api-key", "x-goog-api-client", "content-type", "authorization"} <= allowed
        assert "x-stainless-os" in allowed
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert upstream.requests() == []


async def test_answers_expose_the_proxy_headers(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(cors_yaml(upstream))
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            proxy.url + "/v1beta/models/default:generateContent",
            json={"contents": []},
            headers={"Origin": ALLOWED},
        ) as r,
    ):
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"x-l104-model", "x-l104-attempts", "retry-after"} <= exposed


async def test_other_origins_get_nothing_and_nothing_goes_upstream(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(cors_yaml(upstream))
    url = proxy.url + "/v1beta/models/default:generateContent"
    evil = {"Origin": "http://evil.example"}
    async with aiohttp.ClientSession() as s:
        async with s.options(url, headers={**evil, "Access-Control-Request-Method": "POST"}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
        # A "simple" request a browser would send without a preflight.
        async with s.post(url, data="{}", headers={**evil, "content-type": "text/plain"}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
            assert (await r.json())["error"]["status"] == "PERMISSION_DENIED"
        async with s.post(url, json={"contents": []}) as r:  # no Origin: not a browser
            assert r.status == 200
    assert len(upstream.requests()) == 1
