"""Wrong base URLs: real clients meet a 404 that names the base URL they need."""

from __future__ import annotations

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from openai import AsyncOpenAI, NotFoundError

from tests.conftest import StartProxy, Upstream, base_yaml


async def test_an_openai_client_on_the_wrong_base_url_is_told_the_right_one(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    for base in (f"{proxy.url}/v1", proxy.url, f"{proxy.url}/v1beta"):
        client = AsyncOpenAI(base_url=base, api_key="client-key", max_retries=0)
        with pytest.raises(NotFoundError) as caught:
            await client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "hi"}]
            )
        assert f"base URL is {proxy.url}/v1beta/openai/" in str(caught.value), base
        with pytest.raises(NotFoundError) as caught:
            await client.embeddings.create(model="default", input="hi")
        assert f"{proxy.url}/v1beta/openai/ (it then calls /v1beta/openai/embeddings)" in str(
            caught.value
        )
        await client.close()
    assert upstream.requests() == []


async def test_the_responses_api_is_told_to_use_chat_completions(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    for base in (f"{proxy.url}/v1beta/openai", f"{proxy.url}/v1"):
        client = AsyncOpenAI(base_url=base, api_key="client-key", max_retries=0)
        with pytest.raises(NotFoundError) as caught:
            await client.responses.create(model="default", input="hi")
        message = str(caught.value)
        assert "does not serve the OpenAI Responses API" in message, base
        assert f"base URL {proxy.url}/v1beta/openai/" in message
        assert "OpenAIChatCompletionsModel" in message
        await client.close()
    assert upstream.requests() == []


async def test_a_genai_base_url_that_ends_in_a_version_is_told_to_drop_it(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    for version in ("v1beta", "v1"):
        options = types.HttpOptions(base_url=f"{proxy.url}/{version}", api_version="v1beta")
        client = genai.Client(api_key="client-key", http_options=options)
        with pytest.raises(errors.ClientError) as caught:
            await client.aio.models.generate_content(model="default", contents="hi")
        assert caught.value.code == 404
        message = caught.value.message or ""
        assert f"/{version}/v1beta/" in message
        assert f"the google-genai SDK the base URL {proxy.url} with no version" in message
    assert upstream.requests() == []


async def test_raw_paths_without_a_version_and_unknown_paths(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    headers = {"x-goog-api-key": "client-key"}
    async with aiohttp.ClientSession(headers=headers) as s:
        url = f"{proxy.url}/models/default:generateContent"
        async with s.post(url, json={"contents": []}) as r:
            assert r.status == 404
            error = (await r.json())["error"]
        assert error["status"] == "NOT_FOUND"
        assert f"{proxy.url}/v1beta/models/default:generateContent" in error["message"]
        async with s.post(f"{proxy.url}/openai/chat/completions", json={}) as r:
            assert r.status == 404
            assert f"{proxy.url}/v1beta/openai/" in (await r.json())["error"]["message"]
        async with s.get(f"{proxy.url}/no/such/thing") as r:
            assert r.status == 404
            message = (await r.json())["error"]["message"]
        assert message == (
            "L104 Proxy does not serve GET /no/such/thing: it is no endpoint the proxy knows."
        )
        async with s.get(f"{proxy.url}/v1beta/nothingHere") as r:
            assert r.status == 404
            assert "surface.passthrough" in (await r.json())["error"]["message"]
        async with s.get(f"{proxy.url}/") as r:  # served routes still win
            assert r.status == 200
    assert upstream.requests() == []
