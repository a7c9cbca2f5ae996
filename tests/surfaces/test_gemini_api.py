"""The Gemini surface: versions, actions, names, what is never forwarded, and errors."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os

import aiohttp
import pytest
from aiohttp import web
from google.genai import errors
from yarl import URL

from tests.conftest import UPSTREAM_KEYS, StartProxy, Upstream, base_yaml, free_port


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
        assert request["headers"]["x-goog-api-key"] in UPSTREAM_KEYS
        assert "authorization" not in request["headers"]
        assert "key" not in request["query"]
    assert upstream.requests("m1")[0]["headers"]["x-goog-api-client"].startswith("google-genai")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1beta/models/m1:frobnicate"),
        ("POST", "/v1beta/models/m1"),
        ("POST", "/v1beta/corpora/x:query"),
        ("GET", "/v1beta/no/such/thing"),
        ("POST", "/v2/models/m1:generateContent"),
        ("GET", "/v1beta/models/m1:generateContent"),
        ("DELETE", "/v1beta/models/m1"),
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


async def test_sdk_errors_carry_gemini_fields(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["local:gemini-x"]'))
    with pytest.raises(errors.ClientError) as info:
        await proxy.client().aio.models.generate_content(model="bad!name", contents="x")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "bad!name" in (info.value.message or "")


@pytest.mark.parametrize(
    ("method", "path", "what"),
    [
        ("POST", "/v1beta/batches", "POST /v1beta/batches"),
        ("GET", "/v1/corpora/c1/documents", "GET /v1/corpora/c1/documents"),
        (
            "GET",
            "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateMusic",
            "Live",
        ),
    ],
)
async def test_unserved_gemini_endpoints_say_so(
    start_proxy: StartProxy, upstream: Upstream, method: str, path: str, what: str
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    async with aiohttp.ClientSession() as s, s.request(method, proxy.url + path, json={}) as r:
        assert r.status == 404
        error = (await r.json())["error"]
    assert error["status"] == "NOT_FOUND"
    assert error["message"].startswith("L104 Proxy does not serve ")
    assert what in error["message"]
    assert upstream.requests() == []


async def test_body_model_fields_name_the_member_tried(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """The fake refuses a body whose model differs from the URL's, as Gemini does."""
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "30s"})
    client = proxy.client()
    embedded = await client.aio.models.embed_content(model="default", contents=["a", "b"])
    assert len(embedded.embeddings or []) == 2
    batch = upstream.requests("m2")[0]
    assert batch["action"] == "batchEmbedContents"
    assert [r["model"] for r in json.loads(batch["body"])["requests"]] == ["models/m2"] * 2
    inline = {"request": {"model": "models/default", "contents": [{"parts": [{"text": "a"}]}]}}
    bodies = {
        "embedContent": {"model": "models/default", "content": {"parts": [{"text": "a"}]}},
        "countTokens": {
            "generateContentRequest": {"model": "models/default", "contents": [{"parts": []}]}
        },
        "batchGenerateContent": {
            "batch": {
                "model": "models/default",
                "inputConfig": {"requests": {"requests": [inline]}},
            }
        },
    }
    async with aiohttp.ClientSession() as s:
        for action, body in bodies.items():
            async with s.post(f"{proxy.url}/v1beta/models/default:{action}", json=body) as r:
                assert r.status == 200, await r.text()
                assert r.headers["x-l104-model"] == "m2"
    sent = {r["action"]: json.loads(r["body"]) for r in upstream.requests("m2")}
    assert sent["embedContent"]["model"] == "models/m2"
    assert sent["countTokens"]["generateContentRequest"]["model"] == "models/m2"
    assert sent["countTokens"]["generateContentRequest"]["contents"] == [{"parts": []}]
    batch_sent = sent["batchGenerateContent"]["batch"]
    assert batch_sent["model"] == "models/m2"
    assert batch_sent["inputConfig"]["requests"]["requests"][0]["request"]["model"] == "models/m2"


async def test_generate_content_body_passes_byte_for_byte(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    raw = rb'{"contents": [{"parts": [{"text": "h\u00e9"}]}],   "model": "keep"}'
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{proxy.url}/v1beta/models/default:generateContent", data=raw) as r,
    ):
        assert r.status == 200
    assert upstream.requests("m1")[0]["body"].encode() == raw


async def test_query_parameters_pass_on_but_never_the_key(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    raw = "%24alt=json%3Benum-encoding%3Dint&key=client-secret&%6Bey=client-secret-2&x=1"
    url = URL(f"{proxy.url}/v1beta/models/default:generateContent?{raw}", encoded=True)
    async with aiohttp.ClientSession() as s, s.post(url, json={"contents": []}) as r:
        assert r.status == 200
    request = upstream.requests("m1")[0]
    assert request["query"] == {"$alt": "json;enum-encoding=int", "x": "1"}
    assert "client-secret" not in request["raw_query"]


async def test_query_of_a_stream_keeps_alt(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    url = f"{proxy.url}/v1beta/models/default:streamGenerateContent?alt=sse&key=k&trace=1"
    async with aiohttp.ClientSession() as s, s.post(url, json={"contents": []}) as r:
        assert r.status == 200
        assert (await r.read()).startswith(b"data: ")
    assert upstream.requests("m1")[0]["query"] == {"alt": "sse", "trace": "1"}


@pytest.mark.parametrize("chain", ['default: ["up:m1"]', 'default: ["local:gemini-x"]'])
@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"{}}", b'{"contents": 5}'])
async def test_malformed_json_is_400_and_never_sent_upstream(
    start_proxy: StartProxy, upstream: Upstream, body: bytes, chain: str
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains=chain))
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
    assert error["message"].startswith("Invalid")
    assert upstream.requests() == []


async def test_exhausted_chain_carries_retry_info_and_quota_failure(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    for model, delay in (("m1", "40s"), ("m2", "25s"), ("m3", "90s")):
        upstream.script(model, {"status": 429, "delay": delay})
    with pytest.raises(errors.ClientError) as info:
        await proxy.client().aio.models.generate_content(model="default", contents="x")
    assert info.value.code == 429
    details = info.value.details["error"]["details"]
    by_type = {d["@type"].rsplit(".", 1)[-1]: d for d in details}
    assert by_type["RetryInfo"] == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "25s",
    }
    violations = by_type["QuotaFailure"]["violations"]
    assert [v["quotaDimensions"]["model"] for v in violations] == ["m1", "m2", "m3"]
    assert [v["subject"] for v in violations] == ["models/m1", "models/m2", "models/m3"]


async def test_a_12_mb_inline_image_passes_with_the_defaults(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    image = base64.b64encode(os.urandom(9 * 1024 * 1024)).decode()  # 12 MiB as base64
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": image}}]}]}
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/default:generateContent",
            data=io.BytesIO(json.dumps(body).encode()),
            headers={"content-type": "application/json"},
        ) as r,
    ):
        assert r.status == 200
    assert len(upstream.requests("m1")[0]["body"]) > 12 * 1024 * 1024


async def test_a_declared_length_over_the_limit_is_413_at_once(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra="limits: {max_body_bytes: 1000}"))
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1beta/models/default:generateContent HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"
    )
    await writer.drain()
    async with asyncio.timeout(2):  # no body will come: the answer must not wait for one
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413")
        rest = await reader.read()  # and the connection closes, not drained
    assert b"PAYLOAD_TOO_LARGE" in rest or b"413" in rest
    writer.close()
    assert upstream.requests() == []


async def test_nothing_a_client_sends_can_steer_the_upstream_host(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """No SSRF: the upstream host comes only from the config. A canary server stands where a
    steered request would land; it must hear nothing."""
    heard: list[str] = []

    async def canary(request: web.Request) -> web.Response:
        heard.append(request.path)
        return web.Response(text="canary")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", canary)
    runner = web.AppRunner(app)
    await runner.setup()
    canary_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", canary_port).start()
    evil = f"127.0.0.1:{canary_port}"
    proxy = await start_proxy(base_yaml(upstream.url))
    host, port = proxy.url.removeprefix("http://").split(":")
    raw_requests = [
        f"POST http://{evil}/v1beta/models/m1:generateContent HTTP/1.1\r\nHost: {evil}\r\n",
        f"POST /v1beta/models/m1:generateContent HTTP/1.1\r\nHost: {evil}\r\n"
        f"X-Forwarded-Host: {evil}\r\nForwarded: host={evil}\r\n",
        f"POST /v1beta/models/@{evil}:generateContent HTTP/1.1\r\nHost: x\r\n",
        f"POST /v1beta/models/m1:generateContent?base_url=http://{evil}&url=http://{evil}"
        " HTTP/1.1\r\nHost: x\r\n",
        f"GET /v1beta/models?pageToken=http://{evil} HTTP/1.1\r\nHost: x\r\n",
        f"POST //{evil}/v1beta/models/m1:generateContent HTTP/1.1\r\nHost: x\r\n",
    ]
    body = json.dumps({"contents": [], "url": f"http://{evil}", "base_url": f"http://{evil}"})
    for head in raw_requests:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            (
                head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n" + body
            ).encode()
        )
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 ")
        assert b"canary" not in answer
    await runner.cleanup()
    assert heard == []
    assert {r["path"].split("/")[1] for r in upstream.requests()} <= {"v1beta"}
