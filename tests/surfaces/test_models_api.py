"""Models list and get: chains beside the upstream's own models, paged through the SDK."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartProxy, Upstream, base_yaml

CHAINS = 'default: ["up:m1", "up:m2"]\n  offline: ["local:gemini-local"]'


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
    sizes = [r["query"].get("pageSize") for r in upstream.requests() if r["method"] == "GET"]
    assert sizes == ["2", "2", "2"]


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
