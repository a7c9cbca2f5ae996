"""Vertex AI members behind the chains, driven by the Gemini SDK through the proxy: rotation both
ways, the back-off of a 429 with no wait, /health, what never goes to Vertex (files,
interactions), embeddings, and no credential anywhere a client can read."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from google.genai import types

from tests.conftest import Proxy, StartProxy, Upstream, base_yaml
from tests.responders.test_vertex import service_account

MODEL = "gemini-2.5-flash"


def vertex_yaml(upstream: Upstream, sa: Path, chains: str) -> str:
    vertex = (
        f"  vx: {{type: vertex, project: l104-project, location: us-central1, "
        f'base_url: "{upstream.url}", credentials_file: "{sa}"}}\n'
    )
    return base_yaml(upstream.url, chains=chains).replace("responders:\n", "responders:\n" + vertex)


async def health(proxy: Proxy) -> dict[str, object]:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/health") as r:
        body: dict[str, object] = await r.json()
    return body


def vertex_calls(upstream: Upstream) -> list[dict[str, object]]:
    return [r for r in upstream.requests() if r.get("vertex")]


async def test_rotation_between_vertex_and_the_gemini_api_both_ways(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    chains = f'default: ["vx:{MODEL}", "up:m1"]\n  back: ["up:m1", "vx:{MODEL}"]'
    proxy = await start_proxy(vertex_yaml(upstream, sa, chains))
    client = proxy.client().aio
    first = await client.models.generate_content(model="default", contents="hi")
    assert first.text == f"Hello from {MODEL}."
    assert len(vertex_calls(upstream)) == 1

    upstream.script(MODEL, {"status": 429})  # Vertex: no RetryInfo
    moved = await client.models.generate_content(model="default", contents="hi")
    assert moved.text == "Hello from m1."
    state = await health(proxy)
    vx = state["vertex"]["vx"]  # type: ignore[index]
    assert vx["project"] == "l104-project"
    assert vx["auth"] == "service account"
    assert vx["token_expires_at"] is not None
    key = vx["models"][MODEL][0]
    assert key["state"] == "cooling"
    assert key["cooldown_s"] == 60  # rotation.cooldown_s, the default: nothing said otherwise
    assert key["backoff"] == "1 429s without a wait"
    proxy.clock.advance(61)
    upstream.script(MODEL, {"status": 429})
    await client.models.generate_content(model="default", contents="hi")
    again = (await health(proxy))["vertex"]["vx"]["models"][MODEL][0]  # type: ignore[index]
    assert again["cooldown_s"] == 120  # doubled: it refused again with no word of when

    upstream.script("m1", {"status": 429, "delay": "30s"}, {"status": 429, "delay": "30s"})
    proxy.clock.advance(121)
    back = await client.models.generate_content(model="back", contents="hi")
    assert back.text == f"Hello from {MODEL}."  # from the Gemini API to Vertex


async def test_what_vertex_does_not_hold_never_goes_there(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    proxy = await start_proxy(vertex_yaml(upstream, sa, f'default: ["vx:{MODEL}", "up:m1"]'))
    client = proxy.client().aio
    doc = tmp_path / "notes.txt"
    doc.write_text("notes")
    file = await client.files.upload(file=doc)  # on the Gemini API, though Vertex is first
    assert file.uri is not None
    part = types.Part.from_uri(file_uri=file.uri, mime_type="text/plain")
    answer = await client.models.generate_content(model="default", contents=[part, "sum up"])
    assert answer.text == "Hello from m1."
    talk = await client.interactions.create(model="default", input="hi")
    assert talk.model == "m1"  # type: ignore[union-attr]
    assert vertex_calls(upstream) == []


async def test_embeddings_on_vertex_come_back_in_the_gemini_shape(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    proxy = await start_proxy(vertex_yaml(upstream, sa, 'embed: ["vx:text-embedding-005"]'))
    client = proxy.client().aio
    out = await client.models.embed_content(model="embed", contents=["ab", "abcd"])
    assert [e.values for e in out.embeddings or []] == [[2.0] * 3, [4.0] * 3]
    sent = vertex_calls(upstream)[0]
    assert str(sent["path"]).endswith("/text-embedding-005:predict")


async def test_no_credential_reaches_a_client(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sa = service_account(upstream, tmp_path)
    private_key = json.loads(sa.read_text())["private_key"]
    proxy = await start_proxy(vertex_yaml(upstream, sa, f'default: ["vx:{MODEL}"]'))
    await proxy.client().aio.models.generate_content(model="default", contents="hi")
    token = str(vertex_calls(upstream)[0]["credential"])
    assert token.startswith("ya29.")
    seen = ""
    async with aiohttp.ClientSession() as s:
        for path in ("/health", "/metrics", "/metrics/prometheus", "/api/v6/status"):
            async with s.get(proxy.url + path) as r:
                seen += await r.text()
    seen += caplog.text
    for secret in (token, private_key, private_key.splitlines()[1]):
        assert secret not in seen


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def get_time(city: str) -> str:
    """The time in a city."""
    return f"noon in {city}"


@pytest.mark.parametrize("first", ["up", "vx"])
async def test_a_tool_turn_crossing_endpoints_has_its_signatures_repaired(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path, first: str
) -> None:
    """Gemini 3 on the Gemini API and on Vertex: a signature one issued is corrupted for the
    other. Step 1 on ``first``; it is out of quota for step 2, which the other endpoint answers
    after one repair (the stand-in) on that same member."""
    g3 = "gemini-3-flash-preview"
    other = "vx" if first == "up" else "up"
    sa = service_account(upstream, tmp_path)
    proxy = await start_proxy(
        vertex_yaml(upstream, sa, f'default: ["{first}:{g3}", "{other}:{g3}"]')
    )
    quota = {"status": 429, "delay": "30s"}
    upstream.script(g3, {}, *([quota] * (2 if first == "up" else 1)))
    config = types.GenerateContentConfig(
        tools=[get_weather, get_time],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(maximum_remote_calls=4),
    )
    chat = proxy.client().aio.chats.create(model="default", config=config)
    text = (await chat.send_message("weather and time in Rome?")).text or ""
    assert text.startswith(f"done on {g3}")
    assert "sunny in Rome" in text
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/metrics") as r:
        repairs = (await r.json())["signature_repairs"]
    assert repairs[g3] >= 1  # each step sent to the other endpoint costs one repair
    on_other = [
        r
        for r in upstream.requests()
        if r["model"] == g3 and bool(r.get("vertex")) == (other == "vx")
    ]
    assert len(on_other) >= 2  # the refused step and its repair


async def test_a_body_with_a_field_only_the_gemini_api_takes_skips_vertex(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    """The SDK's converters name the fields Vertex refuses (``willContinue``, ``partMetadata``,
    ``includeServerSideToolInvocations``…): such a body goes to a Gemini API member only."""
    sa = service_account(upstream, tmp_path)
    proxy = await start_proxy(vertex_yaml(upstream, sa, f'default: ["vx:{MODEL}", "up:m1"]'))
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "f", "response": {}, "willContinue": True}}
                ],
            },
        ]
    }
    async with aiohttp.ClientSession() as s:
        url = f"{proxy.url}/v1beta/models/default:generateContent"
        async with s.post(url, json=body) as r:
            assert r.status == 200
            assert r.headers["x-l104-model"] == "m1"
        plain = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        async with s.post(url, json=plain) as r:
            assert r.headers["x-l104-model"] == MODEL
    assert len(vertex_calls(upstream)) == 1  # the plain one only
