"""Cached contents through the proxy with the real google-genai SDK; the fake upstream binds
each cache to its key and model, so a wrong pin fails the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.genai import errors, types

from tests.conftest import StartProxy, Upstream, base_yaml

CLIENTS = "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]"
LONG = [types.Content(role="user", parts=[types.Part(text="a long prompt " * 200)])]


def cache_config(ttl: str = "300s") -> types.CreateCachedContentConfig:
    return types.CreateCachedContentConfig(contents=LONG, ttl=ttl, display_name="doc")


async def test_create_generate_update_delete(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    alice = proxy.client(key="alice-key").aio
    cache = await alice.caches.create(model="default", config=cache_config())
    assert cache.name is not None
    assert cache.model == "models/m1"  # the chain name became the member
    created = next(r for r in upstream.requests() if r["action"] == "caches.post")
    assert json.loads(created["body"])["model"] == "models/m1"
    assert created["headers"]["x-goog-api-key"] == "key-a-upstream"

    config = types.GenerateContentConfig(cached_content=cache.name)
    answer = await alice.models.generate_content(model="default", contents="q", config=config)
    assert answer.text == "Hello from m1."
    call = upstream.requests("m1")[-1]
    assert call["headers"]["x-goog-api-key"] == "key-a-upstream"

    # The cache's model is out of quota: the answer is that 429, never another model.
    upstream.script("m1", {"status": 429, "delay": "45s"})
    with pytest.raises(errors.ClientError) as info:
        await alice.models.generate_content(model="default", contents="q", config=config)
    assert info.value.code == 429
    retry = [d for d in info.value.details["error"]["details"] if "RetryInfo" in d["@type"]]
    assert retry[0]["retryDelay"] == "45s"
    assert upstream.requests("m2") == []

    updated = await alice.caches.update(
        name=cache.name, config=types.UpdateCachedContentConfig(ttl="600s")
    )
    assert updated.expire_time is not None
    assert [c.name async for c in await alice.caches.list()] == [cache.name]
    assert (await alice.caches.get(name=cache.name)).name == cache.name
    await alice.caches.delete(name=cache.name)
    assert [c async for c in await alice.caches.list()] == []


async def test_a_cache_is_made_on_a_member_that_has_room(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "30s"})
    client = proxy.client().aio
    await client.models.generate_content(model="default", contents="x")  # m1 cools
    cache = await client.caches.create(model="default", config=cache_config())
    assert cache.model == "models/m2"
    config = types.GenerateContentConfig(cached_content=cache.name)
    answer = await client.models.generate_content(model="m1", contents="q", config=config)
    assert answer.text == "Hello from m2."  # the cache's model, whatever the name asked


async def test_another_client_cannot_see_or_use_a_cache(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    cache = await proxy.client(key="alice-key").aio.caches.create(
        model="default", config=cache_config()
    )
    assert cache.name is not None
    bob = proxy.client(key="bob-key").aio
    assert [c async for c in await bob.caches.list()] == []
    before = len(upstream.requests())
    config = types.GenerateContentConfig(cached_content=cache.name)
    for attempt in (
        bob.caches.get(name=cache.name),
        bob.caches.delete(name=cache.name),
        bob.models.generate_content(model="default", contents="q", config=config),
    ):
        with pytest.raises(errors.ClientError) as info:
            await attempt
        assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")
    assert len(upstream.requests()) == before


async def _raw(url: str, key: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url, data=body, headers={"x-goog-api-key": key, "content-type": "application/json"}
        ) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_no_spelling_lets_another_client_use_a_file_or_cache(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    """The ways in an attack found, each refused with Gemini's answer for a resource that does
    not exist, and none of them reaching the upstream."""
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    alice = proxy.client(key="alice-key").aio
    doc = tmp_path / "doc.txt"
    doc.write_text("alice's notes")
    file = await alice.files.upload(file=doc, config={"mime_type": "text/plain"})
    cache = await alice.caches.create(model="default", config=cache_config())
    assert file.uri is not None
    assert cache.name is not None
    gen = f"{proxy.url}/v1beta/models/default:generateContent"
    part = '{"fileData": {"%s": "%s", "mimeType": "text/plain"}}'
    attempts = [
        (gen, part % ("file\\u0055ri", file.uri)),
        (gen, part % ("fileUri", file.uri + "?x")),
        (gen, part % ("fileUri", file.uri + "/")),
        (gen, part % ("file_uri", file.uri.replace("files/", "files%2F"))),
    ]
    bodies = [(url, f'{{"contents": [{{"parts": [{p}]}}]}}') for url, p in attempts]
    bodies.append((gen, f'{{"contents": [], "cached\\u0043ontent": "{cache.name}"}}'))
    bodies.append(
        (
            f"{proxy.url}/v1beta/cachedContents",
            '{"model": "models/m1", "contents": [{"role": "user", "parts": [%s]}]}'
            % (part % ("fileUri", file.uri)),
        )
    )
    bodies.append(
        (
            f"{proxy.url}/v1beta/openai/chat/completions",
            '{"model": "default", "messages": [{"role": "user", "content": "x"}], '
            f'"google": {{"cached_content": "{cache.name}"}}}}',
        )
    )
    before = len(upstream.requests())
    for url, text in bodies:
        status, answer = await _raw(url, "bob-key", text.encode())
        assert status == 403, (text, answer)
        assert "or it may not exist" in json.dumps(answer)
    assert len(upstream.requests()) == before
    # Alice, spelling it the same odd ways, is served with her file's key.
    status, _ = await _raw(gen, "alice-key", bodies[0][1].encode())
    assert status == 200


@pytest.mark.parametrize("depth", [100, 300, 1000, 1030, 5000])
async def test_any_depth_is_a_400_or_served_never_a_500(
    start_proxy: StartProxy, upstream: Upstream, depth: int
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    deep = '{"a":' * depth + '{"fileUri": "files/x"}' + "}" * depth
    # A body passed on as it is (the unknown file is refused), and three the proxy writes again.
    generate = ("/v1beta/models/default:generateContent", '{"contents": [' + deep + "]}")
    deep = '{"a":' * depth + '{"b": 1}' + "}" * depth
    rewritten = [
        ("/v1beta/models/default:embedContent", '{"model": "models/default", "x": ' + deep + "}"),
        ("/v1beta/openai/chat/completions", '{"model": "default", "x": ' + deep + "}"),
        ("/v1beta/cachedContents", '{"model": "models/m1", "x": ' + deep + "}"),
    ]
    for path, body in [generate, *rewritten]:
        status, answer = await _raw(proxy.url + path, "any", body.encode())
        assert status < 500, (path, depth, answer)
        assert "error" in answer or status == 200
        if depth > 254 and (path, body) != generate:
            assert status == 400, (path, depth, answer)
