"""The Files API through the proxy with the real google-genai SDK; the fake upstream binds each
file to the key that uploaded it, so a wrong key fails the test."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from google.genai import errors, types

from tests.conftest import Proxy, StartProxy, Upstream, base_yaml

CLIENTS = "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]"


def part(file: types.File) -> types.Part:
    assert file.uri is not None
    assert file.mime_type is not None
    return types.Part.from_uri(file_uri=file.uri, mime_type=file.mime_type)


def keys_used(upstream: Upstream, action: str) -> list[str]:
    return [
        r["headers"].get("x-goog-api-key", "") for r in upstream.requests() if r["action"] == action
    ]


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"L104 notes\n" * 1000)
    return path


async def test_upload_generate_get_list_delete(
    start_proxy: StartProxy, upstream: Upstream, doc: Path
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    alice = proxy.client(key="alice-key").aio
    first = await alice.files.upload(file=doc, config={"mime_type": "text/plain"})
    second = await alice.files.upload(file=doc, config={"mime_type": "text/plain"})
    assert first.size_bytes == second.size_bytes == 11_000
    assert first.sha256_hash is not None
    # Keys in turn: the two files live in two projects.
    assert keys_used(upstream, "files.upload") == ["key-a-upstream", "key-b-upstream"]
    pieces = [r for r in upstream.requests() if r["action"] == "files.piece"]
    assert [p["command"] for p in pieces] == ["upload, finalize"] * 2
    assert all("x-goog-api-key" not in p["headers"] for p in pieces)

    for file, key in ((first, "key-a-upstream"), (second, "key-b-upstream")):
        answer = await alice.models.generate_content(model="default", contents=[part(file), "sum"])
        assert answer.text == "Hello from m1."
        assert keys_used(upstream, "generateContent")[-1] == key
    with pytest.raises(errors.ClientError) as mixed:
        await alice.models.generate_content(model="default", contents=[part(first), part(second)])
    assert mixed.value.code == 400
    assert "different upstream API keys" in (mixed.value.message or "")

    assert first.name is not None
    assert second.name is not None
    got = await alice.files.get(name=first.name)
    assert got.uri == first.uri
    listed = [f.name async for f in await alice.files.list(config={"page_size": 1})]
    assert listed == [first.name, second.name]
    await alice.files.delete(name=first.name)
    assert [f.name async for f in await alice.files.list()] == [second.name]
    with pytest.raises(errors.ClientError) as gone:
        await alice.files.get(name=first.name)
    assert gone.value.code == 403


async def test_another_client_sees_nothing_and_uses_nothing(
    start_proxy: StartProxy, upstream: Upstream, doc: Path
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    file = await proxy.client(key="alice-key").aio.files.upload(file=doc)
    assert file.name is not None
    bob = proxy.client(key="bob-key").aio
    assert [f async for f in await bob.files.list()] == []
    before = len(upstream.requests())
    for attempt in (
        bob.files.get(name=file.name),
        bob.files.delete(name=file.name),
        bob.models.generate_content(model="default", contents=[part(file), "x"]),
    ):
        with pytest.raises(errors.ClientError) as info:
            await attempt
        assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")
        assert "or it may not exist" in (info.value.message or "")
    assert len(upstream.requests()) == before  # nothing of Bob's went upstream


async def test_a_file_stays_with_its_key_while_that_key_cools(
    start_proxy: StartProxy, upstream: Upstream, doc: Path
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    client = proxy.client().aio
    file = await client.files.upload(file=doc)  # with key a, the first in turn
    upstream.script("m1", {"status": 429, "delay": "60s"})
    answer = await client.models.generate_content(model="default", contents=[part(file), "x"])
    assert answer.text == "Hello from m2."  # rotated across models, on the same key
    assert keys_used(upstream, "generateContent") == ["key-a-upstream"] * 2
    for model in ("m2", "m3"):
        upstream.script(model, {"status": 429, "delay": "30s"})
    with pytest.raises(errors.ClientError) as info:
        await client.models.generate_content(model="default", contents=[part(file), "x"])
    assert info.value.code == 429
    assert set(keys_used(upstream, "generateContent")) == {"key-a-upstream"}
    # A new upload skips key a, which is cooling on every model.
    await client.files.upload(file=doc)
    assert keys_used(upstream, "files.upload") == ["key-a-upstream", "key-b-upstream"]


async def test_multipart_upload_and_download(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    data = b"\x00\x01binary" * 100
    with aiohttp.MultipartWriter("related") as writer:
        writer.append_json({"file": {"displayName": "blob"}})
        writer.append(data, {"Content-Type": "application/octet-stream"})
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{proxy.url}/upload/v1beta/files",
            data=writer,
            headers={"X-Goog-Upload-Protocol": "multipart"},
        ) as r:
            assert r.status == 200, await r.text()
            meta = (await r.json())["file"]
        assert meta["sizeBytes"] == str(len(data))
        async with s.get(f"{proxy.url}/v1beta/{meta['name']}:download?alt=media") as r:
            assert r.status == 200
            assert await r.read() == data


async def test_the_map_is_shared_through_the_store(
    start_proxy: StartProxy, upstream: Upstream, doc: Path, tmp_path: Path
) -> None:
    """Two proxies on one store (workers, or a restart) agree on who holds a file."""
    yaml = base_yaml(upstream.url, store=str(tmp_path / "l104.db"))
    first: Proxy = await start_proxy(yaml)
    file = await first.client().aio.files.upload(file=doc)
    assert file.name is not None
    second: Proxy = await start_proxy(yaml)
    got = await second.client().aio.files.get(name=file.name)
    assert got.sha256_hash == file.sha256_hash
    answer = await second.client().aio.models.generate_content(
        model="default", contents=[part(file), "x"]
    )
    assert answer.text == "Hello from m1."
    async with aiohttp.ClientSession() as s, s.get(first.url + "/metrics") as r:
        resources = (await r.json())["resources"]
    assert resources == {"files": 1, "cached_contents": 0, "live_sessions": 0}


async def _start_upload(
    url: str, headers: dict[str, str] | None = None, name: str = "notes"
) -> tuple[int, dict[str, str]]:
    """A resumable upload's ``start`` as the SDK sends it; the answer's status and headers."""
    sent = {
        "x-goog-api-key": "alice-key",
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": "5",
        **(headers or {}),
    }
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{url}/upload/v1beta/files", json={"file": {"displayName": name}}, headers=sent
        ) as r,
    ):
        await r.read()
        return r.status, dict(r.headers)


async def _piece(url: str, headers: dict[str, str] | None = None) -> int:
    sent = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=b"hello", headers={**sent, **(headers or {})}) as r,
    ):
        await r.read()
        return r.status


async def test_every_upload_url_is_the_proxys_and_a_piece_needs_its_token(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    status, headers = await _start_upload(proxy.url, name="reflect-key")
    assert status == 200
    upload_headers = {k: v for k, v in headers.items() if k.lower().startswith("x-goog-upload-")}
    # No header names the upstream, and no upstream key comes back.
    assert not any(upstream.url.split("//")[1] in v for v in upload_headers.values())
    assert not any("key-a-upstream" in v or "key-b-upstream" in v for v in headers.values())
    assert "[redacted]" in headers["X-Goog-Upload-Chunk-Granularity"]
    own = headers["X-Goog-Upload-URL"]
    assert headers["X-Goog-Upload-Control-URL"] == own
    assert own.startswith(f"{proxy.url}/upload/v1beta/files?upload_id=")
    assert "upload_token=" in own
    # Without the token, or with another, the upload does not exist; nothing goes upstream.
    no_token = own.split("&upload_token=")[0]
    assert await _piece(no_token) == 404
    assert await _piece(no_token + "&upload_token=guess") == 404
    assert not [r for r in upstream.requests() if r["action"] == "files.piece"]
    # With it, and no key (as the SDKs send pieces), the piece is alice's and goes through.
    assert await _piece(own) == 200
    assert [r["action"] for r in upstream.requests()].count("files.piece") == 1


async def test_upload_urls_use_public_url_or_a_trusted_proxys_forwarded_scheme(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    yaml = base_yaml(upstream.url, extra=CLIENTS).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        'listen: {host: 127.0.0.1, port: 0, public_url: "https://l104.example:8443/"}',
    )
    proxy = await start_proxy(yaml)
    _, headers = await _start_upload(proxy.url, {"X-Forwarded-Host": "evil.example"})
    assert headers["X-Goog-Upload-URL"].startswith("https://l104.example:8443/upload/v1beta/")
    assert headers["X-Goog-Upload-Control-URL"].startswith("https://l104.example:8443/")

    behind = base_yaml(upstream.url, extra=CLIENTS).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        "listen: {host: 127.0.0.1, port: 0, trusted_proxies: [127.0.0.0/8]}",
    )
    proxy = await start_proxy(behind)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example"}
    _, headers = await _start_upload(proxy.url, forwarded)
    assert headers["X-Goog-Upload-URL"].startswith("https://gw.example/upload/v1beta/files?")
    # From a peer that is not trusted, the forwarded headers are ignored.
    untrusted = behind.replace("[127.0.0.0/8]", "[10.9.9.9/32]")
    proxy = await start_proxy(untrusted)
    _, headers = await _start_upload(proxy.url, forwarded)
    assert headers["X-Goog-Upload-URL"].startswith(f"{proxy.url}/upload/v1beta/files?")


async def test_a_query_holding_a_url_goes_upstream_like_any_other(
    start_proxy: StartProxy, upstream: Upstream, doc: Path
) -> None:
    """``://`` in a query once made the request look like an absolute URL (a 503)."""
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    file = await proxy.client(key="alice-key").aio.files.upload(file=doc)
    assert file.name is not None
    headers = {"x-goog-api-key": "alice-key"}
    async with aiohttp.ClientSession() as s:
        for query in ("x=http://127.0.0.1:1/", "a=1&b=https://example.com/files/x"):
            async with s.get(f"{proxy.url}/v1beta/{file.name}?{query}", headers=headers) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["name"] == file.name
            sent = [q for q in upstream.requests() if q["action"] == "files.get"][-1]
            assert sent["path"].endswith(f"/v1beta/{file.name}")
            assert "://" in "".join(sent["query"].values())  # the query went on as it came
