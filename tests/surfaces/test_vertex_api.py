"""Vertex AI clients in front: ``genai.Client(vertexai=True, …)`` pointed at the proxy, with static
credentials (the client key as a bearer token) and in express mode, served by any member."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from tests.conftest import StartProxy, Upstream
from tests.responders.test_vertex import service_account
from tests.surfaces.test_vertex_members import MODEL, vertex_calls, vertex_yaml

CLIENTS = "clients: [{name: enterprise, key: client-key}]"


def vertex_client(url: str, token: str = "client-key") -> genai.Client:  # noqa: S107
    return genai.Client(
        vertexai=True,
        project="their-project",
        location="europe-west4",
        credentials=Credentials(token=token),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=url),
    )


async def test_a_vertex_client_generates_streams_counts_and_embeds(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    chains = (
        f'default: ["vx:{MODEL}", "up:m1"]\n  back: ["up:m1", "vx:{MODEL}"]\n  embed: ["up:e1"]'
    )
    proxy = await start_proxy(vertex_yaml(upstream, sa, chains) + CLIENTS)
    client = vertex_client(proxy.url).aio
    answer = await client.models.generate_content(model="default", contents="hi")
    assert answer.text == f"Hello from {MODEL}."
    chunks = [
        c.text
        async for c in await client.models.generate_content_stream(model="default", contents="hi")
    ]
    assert "".join(t or "" for t in chunks) == "".join(f"part{i} from {MODEL}. " for i in range(3))
    count = await client.models.count_tokens(model="default", contents="hi")
    assert count.total_tokens == 8
    vectors = await client.models.embed_content(model="embed", contents=["a", "b"])
    assert [e.values for e in vectors.embeddings or []] == [[0.5, 0.25], [0.5, 0.25]]

    # Vertex's 429 (no wait given): the Gemini API's m1 answers the Vertex client.
    upstream.script(MODEL, {"status": 429})
    moved = await client.models.generate_content(model="default", contents="hi")
    assert moved.text == "Hello from m1."
    sent = [r for r in upstream.requests() if not r.get("vertex") and r["model"] == "m1"]
    assert sent[-1]["path"] == "/v1beta/models/m1:generateContent"
    quota = {"status": 429, "delay": "30s"}
    upstream.script("m1", quota, quota)
    proxy.clock.advance(61)  # Vertex's cooldown is over
    back = await client.models.generate_content(model="back", contents="hi")
    assert back.text == f"Hello from {MODEL}."  # and back, from the Gemini API to Vertex
    # Their project and location in the path decide nothing: the chain does.
    assert {r["project"] for r in vertex_calls(upstream)} == {"l104-project"}

    stranger = vertex_client(proxy.url, token="not-a-client").aio  # noqa: S106
    with pytest.raises(errors.ClientError) as refused:
        await stranger.models.generate_content(model="default", contents="hi")
    assert refused.value.code == 403
    await client.aclose()
    await stranger.aclose()


async def test_express_mode_and_the_paths_not_served(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    proxy = await start_proxy(vertex_yaml(upstream, sa, 'default: ["up:m1"]') + CLIENTS)
    express = genai.Client(
        vertexai=True, api_key="client-key", http_options=types.HttpOptions(base_url=proxy.url)
    )
    answer = await express.aio.models.generate_content(model="default", contents="hi")
    assert answer.text == "Hello from m1."
    async with aiohttp.ClientSession() as s:
        url = f"{proxy.url}/v1beta1/projects/p/locations/l/publishers/google/models/m1:rawPredict"
        async with s.post(url, json={}, headers={"x-goog-api-key": "client-key"}) as r:
            assert r.status == 404
            assert "Method not found: models/m1:rawPredict" in (await r.json())["error"]["message"]
        url = f"{proxy.url}/v1beta1/projects/p/locations/l/datasets"
        async with s.get(url, headers={"x-goog-api-key": "client-key"}) as r:
            assert r.status == 404
    await express.aio.aclose()
