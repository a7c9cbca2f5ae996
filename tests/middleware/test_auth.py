"""Client keys: header, ?key= and Bearer; 401 without, 403 with a wrong one."""

from __future__ import annotations

import aiohttp
import pytest
from google.genai import errors

from tests.conftest import StartProxy, Upstream, base_yaml

CLIENTS = """clients:
  - {name: alice, key: "alice-key-1"}
  - {name: bob, key: "${BOB_KEY}"}
"""
URL = "/v1beta/models/default:generateContent"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"x-goog-api-key": "alice-key-1"}, {}),
        ({}, {"key": "alice-key-1"}),
        ({"Authorization": "Bearer alice-key-1"}, {}),
        ({"Authorization": "bearer bob-key-2"}, {}),
    ],
)
async def test_each_way_of_presenting_a_key(
    start_proxy: StartProxy, upstream: Upstream, headers: dict[str, str], query: dict[str, str]
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS), {"BOB_KEY": "bob-key-2"})
    async with (
        aiohttp.ClientSession() as s,
        s.post(proxy.url + URL, headers=headers, params=query, json={"contents": []}) as r,
    ):
        assert r.status == 200
    sent = upstream.requests("m1")[0]
    assert sent["headers"]["x-goog-api-key"] == "key-a-upstream"
    assert "alice-key-1" not in repr(sent)
    assert "bob-key-2" not in repr(sent)


async def test_missing_and_wrong_keys(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS), {"BOB_KEY": "bob-key-2"})
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.url + URL, json={"contents": []}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["status"] == "UNAUTHENTICATED"
        async with s.get(f"{proxy.url}/health") as r:
            assert r.status == 200  # the proxy's own pages stay open
    with pytest.raises(errors.ClientError) as info:
        await proxy.client(key="wrong-key").aio.models.generate_content(
            model="default", contents="x"
        )
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")
    good = await proxy.client(key="alice-key-1").aio.models.generate_content(
        model="default", contents="x"
    )
    assert good.text == "Hello from m1."
    assert len(upstream.requests()) == 1


async def test_a_missing_client_key_variable_is_a_config_error(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    from proxy.config import ConfigError

    with pytest.raises(ConfigError) as info:
        await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    assert "environment variable BOB_KEY is not set" in str(info.value)
