"""Models list and get: chains beside the upstream's own models, paged through the SDK."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import StartProxy, Upstream, base_yaml, free_port

CHAINS = 'default: ["up:m1", "up:m2"]\n  offline: ["local:gemini-local"]'
LOCAL = ["models/default", "models/offline", "models/gemini-local"]  # what CHAINS lists first


async def test_list_pages_through_chains_then_upstream(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains=CHAINS))
    pager = await proxy.client().aio.models.list(config={"page_size": 2})
    names = [m.name async for m in pager]
    assert names == [
        "models/default",
        "models/offline",
        "models/gemini-local",
        *(f"models/gemini-upstream-{i}" for i in range(5)),
    ]
    # The second page fills its room after the last chain with the upstream's first model.
    sizes = [r["query"].get("pageSize") for r in upstream.requests() if r["method"] == "GET"]
    assert sizes == ["1", "2", "2"]


async def test_the_first_page_holds_the_upstreams_models_after_the_chains(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains=CHAINS))
    url = f"{proxy.url}/v1beta/models"
    async with aiohttp.ClientSession() as s, s.get(url, params={"pageSize": "5"}) as r:
        assert r.status == 200
        page = await r.json()
    assert [m["name"] for m in page["models"]] == [
        *LOCAL,
        "models/gemini-upstream-0",
        "models/gemini-upstream-1",
    ]
    rest = await proxy.client().aio.models.list(config={"page_token": page["nextPageToken"]})
    assert [m.name async for m in rest] == [f"models/gemini-upstream-{i}" for i in (2, 3, 4)]


async def test_a_first_page_keeps_the_chains_when_the_upstream_is_gone(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    # A free port nothing listens on: every connect is refused.
    proxy = await start_proxy(base_yaml(f"http://127.0.0.1:{free_port()}", chains=CHAINS))
    status, error = await chains_then_the_next_page(proxy.url)
    assert (status, error["status"]) == (503, "UNAVAILABLE")


async def chains_then_the_next_page(url: str) -> tuple[int, dict[str, Any]]:
    """Read the first page, which must hold the chains alone; then the next page's status and
    error (the upstream is broken in each caller)."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/v1beta/models") as r:
            assert r.status == 200
            page = await r.json()
        assert [m["name"] for m in page["models"]] == LOCAL
        params = {"pageToken": page["nextPageToken"]}
        async with s.get(f"{url}/v1beta/models", params=params) as r:
            return r.status, (await r.json())["error"]


async def test_chain_appears_as_a_model(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains=CHAINS))
    model = await proxy.client().aio.models.get(model="default")
    assert model.name == "models/default"
    assert model.description == "L104 Proxy chain: up:m1 -> up:m2"
    upstream_model = await proxy.client().aio.models.get(model="gemini-upstream-3")
    assert upstream_model.version == "001"


async def test_get_unknown_model_is_the_upstreams_404(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains=CHAINS))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{proxy.url}/v1beta/models/nope-model") as r:
            assert r.status == 404
            assert (await r.json())["error"]["status"] == "NOT_FOUND"
        async with s.get(f"{proxy.url}/v1beta/models", params={"pageToken": "garbage!"}) as r:
            assert r.status == 400
            assert (await r.json())["error"]["status"] == "INVALID_ARGUMENT"


async def test_list_without_an_upstream_shows_local_models(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["local:gemini-local"]'))
    pager = await proxy.client().aio.models.list()
    names = [m.name async for m in pager]
    # The gemini responder `up` is in no chain, yet it is still the upstream that lists.
    assert names[:2] == ["models/default", "models/gemini-local"]
    assert len(names) == 7


async def test_a_models_page_that_is_no_list_keeps_the_chains_then_is_a_502(
    start_proxy: StartProxy,
) -> None:
    async def not_a_page(request: web.Request) -> web.Response:
        return web.json_response(["JSON, but no page of models"])

    app = web.Application()
    app.router.add_get("/{tail:.*}", not_a_page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        proxy = await start_proxy(base_yaml(f"http://127.0.0.1:{port}", chains=CHAINS))
        status, error = await chains_then_the_next_page(proxy.url)
        assert status == 502
        assert "list of models" in error["message"]
    finally:
        await runner.cleanup()
