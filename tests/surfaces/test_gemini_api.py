"""The Gemini surface: versions, actions, names, what is never forwarded, and errors."""

from __future__ import annotations

import aiohttp
import pytest
from google.genai import errors
from yarl import URL

from tests.conftest import StartProxy, Upstream, base_yaml


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha"])
async def test_every_api_version_is_served(
    start_proxy: StartProxy, upstream: Upstream, version: str
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    client = proxy.client(version=version)
    response = await client.aio.models.generate_content(model="default", contents="hi")
    assert response.text == "Hello from m1."
    count = await client.aio.models.count_tokens(model="default", contents="hi")
    assert count.total_tokens == 8
    embedded = await client.aio.models.embed_content(model="default", contents=["a", "b"])
    assert [e.values for e in embedded.embeddings or []] == [[0.5, 0.25], [0.5, 0.25]]
    paths = [r["path"] for r in upstream.requests("m1")]
    assert paths == [
        f"/{version}/models/m1:generateContent",
        f"/{version}/models/m1:countTokens",
        f"/{version}/models/m1:batchEmbedContents",
    ]


async def test_embed_content_action_is_served(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/default:embedContent",
            json={"content": {"parts": [{"text": "a"}]}},
        ) as r,
    ):
        assert r.status == 200
        assert await r.json() == {"embedding": {"values": [0.5, 0.25]}}


async def test_client_key_is_never_forwarded_and_the_upstream_key_only_as_header(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    await proxy.client(key="client-secret-1").aio.models.generate_content(model="m1", contents="x")
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/m1:generateContent?key=client-secret-2",
            headers={"Authorization": "Bearer client-secret-3"},
            json={"contents": []},
        ) as r,
    ):
        assert r.status == 200
    for request in upstream.requests("m1"):
        flat = repr(request)
        assert "client-secret" not in flat
        assert request["headers"]["x-goog-api-key"] == "key-a-upstream"
        assert "authorization" not in request["headers"]
        assert "key" not in request["query"]
    assert upstream.requests("m1")[0]["headers"]["x-goog-api-client"].startswith("google-genai")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1beta/files"),
        ("POST", "/upload/v1beta/files"),
        ("GET", "/v1beta/cachedContents"),
        ("POST", "/v1beta/models/m1:predict"),
        ("POST", "/v1beta/models/m1"),
        ("POST", "/v1beta/tunedModels/x:generateContent"),
        ("POST", "/v2/models/m1:generateContent"),
        ("GET", "/v1beta/models/m1:generateContent"),
        ("DELETE", "/v1beta/models/m1"),
        ("GET", "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"),
    ],
)
async def test_anything_else_is_404_in_gemini_shape_and_never_forwarded(
    start_proxy: StartProxy, upstream: Upstream, method: str, path: str
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    async with aiohttp.ClientSession() as s, s.request(method, proxy.url + path, json={}) as r:
        assert r.status == 404
        assert r.headers["Content-Type"].startswith("application/json")
        body = await r.json()
    assert body["error"]["code"] == 404
    assert body["error"]["status"] == "NOT_FOUND"
    assert upstream.requests() == []


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1beta/models/a..b:generateContent",
        "/v1beta/models/..%2Fm1:generateContent",
        "/v1beta/models/m1%2F..%2Fx:generateContent",
        "/v1beta/models/m1%2fx:generateContent",
        "/v1beta/models/m1%5Cx:generateContent",
        "/v1beta/models/m1%00:generateContent",
        "/v1beta/models/m1%0Ax:generateContent",
        "/v1beta/models/m1%3Ax:generateContent",
        "/v1beta/models/%2E%2E:generateContent",
        "/v1beta/models/m1%20x:generateContent",
        "/v1beta/models/-m1:generateContent",
    ],
)
async def test_bad_model_names_answer_400_or_404(
    start_proxy: StartProxy, upstream: Upstream, raw_path: str
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    url = URL(proxy.url + raw_path, encoded=True)
    async with aiohttp.ClientSession() as s, s.post(url, json={"contents": []}) as r:
        assert r.status in (400, 404), raw_path
        body = await r.json()
        assert body["error"]["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert upstream.requests() == []


async def test_body_over_the_limit_is_413(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra="limits: {max_body_bytes: 1000}"))
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/default:generateContent",
            data=b"{" + b" " * 5000 + b"}",
            headers={"content-type": "application/json"},
        ) as r,
    ):
        assert r.status == 413
        body = await r.json()
    assert body["error"]["code"] == 413
    assert upstream.requests() == []


async def test_malformed_json_to_a_local_responder_is_400(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["local:gemini-x"]'))
    for body in (b"{not json", b"[1, 2]", b'{"contents": 5}'):
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{proxy.url}/v1beta/models/default:generateContent",
                data=body,
                headers={"content-type": "application/json"},
            ) as r,
        ):
            assert r.status == 400
            error = (await r.json())["error"]
            assert error["status"] == "INVALID_ARGUMENT"
            assert "Invalid" in error["message"]


async def test_sdk_errors_carry_gemini_fields(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["local:gemini-x"]'))
    with pytest.raises(errors.ClientError) as info:
        await proxy.client().aio.models.generate_content(model="bad!name", contents="x")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "bad!name" in (info.value.message or "")
