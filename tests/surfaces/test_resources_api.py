"""Batches, operations, File Search, images and videos through the proxy with the real
google-genai SDK (raw HTTP where the SDK refuses the Gemini API). The fake upstream holds each
resource in its key's project and answers 403 to any other key, so a wrong pin fails the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.genai import errors, types
from yarl import URL

from tests.conftest import StartProxy, Upstream, base_yaml, ledger_rows

CLIENTS = "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]"
INLINE = [{"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}]


def calls(upstream: Upstream, action: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests() if r["action"] == action]


async def raw(method: str, url: str, key: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, json=body, headers={"x-goog-api-key": key}) as r,
    ):
        data = await r.read()
        return r.status, json.loads(data) if r.content_type == "application/json" else data


async def test_an_inline_batch_rotates_is_polled_listed_and_counted_once(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS, store=str(db)))
    alice = proxy.client(key="alice-key").aio
    quota = {"status": 429, "delay": "30s"}
    upstream.script("m1", quota, quota)
    job = await alice.batches.create(model="default", src=INLINE)  # type: ignore[arg-type]
    assert job.name is not None
    assert job.name.startswith("batches/")
    assert job.model == "models/m2"  # m1 was out of quota on both keys
    key = calls(upstream, "batchGenerateContent")[-1]["headers"]["x-goog-api-key"]

    first = await alice.batches.get(name=job.name)
    done = await alice.batches.get(name=job.name)
    again = await alice.batches.get(name=job.name)
    assert first.state == types.JobState.JOB_STATE_PENDING
    assert done.state == again.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None
    assert done.dest.inlined_responses is not None
    assert {r["headers"]["x-goog-api-key"] for r in calls(upstream, "groups.get")} == {key}

    assert [j.name async for j in await alice.batches.list()] == [job.name]
    bob = proxy.client(key="bob-key").aio
    assert [j.name async for j in await bob.batches.list()] == []
    with pytest.raises(errors.ClientError) as info:
        await bob.batches.get(name=job.name)
    assert info.value.code == 403
    with pytest.raises(errors.ClientError):
        await bob.batches.delete(name=job.name)

    await alice.batches.cancel(name=job.name)
    await alice.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError):
        await alice.batches.get(name=job.name)
    # One row at creation, then the poll that found it done carries its usage; no other does.
    rows = await ledger_rows(db, "client, served, status, input_tokens, output_tokens", 9)
    alice_rows = [r for r in rows if r[0] == "alice" and r[2] == 200]
    assert [r[3:] for r in alice_rows] == [(0, 0), (0, 0), (5, 3), (0, 0), (0, 0), (0, 0), (0, 0)]
    assert alice_rows[2][1] == "m2"


# The SDK marks create_embeddings experimental: that warning, by name, and no other.
@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
async def test_a_batch_from_a_file_goes_to_its_key_and_its_results_download(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db)))
    client = proxy.client().aio
    source = tmp_path / "requests.jsonl"
    source.write_text(json.dumps({"key": "1", "request": INLINE[0]}) + "\n")
    uploaded = await client.files.upload(
        file=source, config=types.UploadFileConfig(mime_type="application/jsonl")
    )
    assert uploaded.name is not None
    file_key = calls(upstream, "files.upload")[-1]["headers"]["x-goog-api-key"]
    names = []
    for _ in range(2):  # whichever key is next in turn, the batch goes with the file's
        job = await client.batches.create(model="default", src=uploaded.name)
        assert job.name is not None
        names.append(job.name)
        made = calls(upstream, "batchGenerateContent")[-1]
        assert made["headers"]["x-goog-api-key"] == file_key
    await client.batches.get(name=names[-1])
    done = await client.batches.get(name=names[-1])
    assert done.dest is not None
    assert done.dest.file_name is not None
    results = done.dest.file_name.removeprefix("files/")
    status, body = await raw(
        "GET", f"{proxy.url}/v1beta/files/{results}:download?alt=media", "client-key"
    )
    assert status == 200
    assert body.count(b"usageMetadata") == 3
    # Its usage is the results file's three answers, on the poll that found it done, once.
    rows = await ledger_rows(db, "status, input_tokens, output_tokens", 6)
    assert [r[1:] for r in rows if r[0] == 200][-3:] == [(0, 0), (15, 9), (0, 0)]

    embeddings = await client.batches.create_embeddings(
        model="m1",
        src={"inlined_requests": {"contents": [{"parts": [{"text": "a"}]}]}},
    )
    assert embeddings.name is not None
    assert embeddings.name.startswith("batches/")


async def test_images_videos_and_operations(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    upstream.script("m1", {"status": 429, "delay": "30s"}, {"status": 429, "delay": "30s"})
    status, images = await raw(
        "POST",
        f"{proxy.url}/v1beta/models/default:predict",
        "alice-key",
        {"instances": [{"prompt": "a cat"}], "parameters": {"sampleCount": 1}},
    )
    assert status == 200
    assert images["predictions"][0]["mimeType"] == "image/png"
    assert calls(upstream, "predict")[-1]["model"] == "m2"

    status, operation = await raw(
        "POST",
        f"{proxy.url}/v1beta/models/m3:predictLongRunning",
        "alice-key",
        {"instances": [{"prompt": "a cat running"}]},
    )
    assert status == 200
    assert operation["name"].startswith("models/m3/operations/")
    alice = proxy.client(key="alice-key").aio
    polled = types.GenerateVideosOperation.model_validate({"name": operation["name"]})
    first = await alice.operations.get(polled)
    done = await alice.operations.get(polled)
    assert not first.done
    assert done.done
    status, raw_done = await raw("GET", f"{proxy.url}/v1beta/{operation['name']}", "alice-key")
    video = raw_done["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    file_id = video.split("/files/")[1].split(":")[0]
    status, data = await raw(
        "GET", f"{proxy.url}/v1beta/files/{file_id}:download?alt=media", "alice-key"
    )
    assert status == 200
    assert data == b"video-bytes"
    # bob knows the names, and gets what Gemini says of a resource that does not exist.
    for path in (operation["name"], f"files/{file_id}"):
        status, refused = await raw("GET", f"{proxy.url}/v1beta/{path}", "bob-key")
        assert status == 403
        assert "may not exist" in refused["error"]["message"]
    keys = {r["headers"]["x-goog-api-key"] for r in upstream.requests() if r["model"] != "m1"}
    assert len(keys) == 1  # the video, its polls and its download: one key


async def test_file_search_stores_documents_and_the_tool(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), extra=CLIENTS))
    alice = proxy.client(key="alice-key").aio
    store = await alice.file_search_stores.create(config={"display_name": "docs"})
    assert store.name is not None
    doc = tmp_path / "notes.txt"
    doc.write_text("the proxy rotates models")
    uploaded = await alice.file_search_stores.upload_to_file_search_store(
        file_search_store_name=store.name, file=doc
    )
    assert uploaded.name is not None
    assert "/upload/operations/" in uploaded.name
    file = await alice.files.upload(file=doc)
    assert file.name is not None
    imported = await alice.file_search_stores.import_file(
        file_search_store_name=store.name, file_name=file.name
    )
    assert imported.name is not None
    assert imported.name.startswith(f"{store.name}/operations/")
    assert (await alice.operations.get(imported)).done
    documents = [
        d.name async for d in await alice.file_search_stores.documents.list(parent=store.name)
    ]
    assert len(documents) == 2
    tool = types.Tool(file_search=types.FileSearch(file_search_store_names=[store.name]))
    answer = await alice.models.generate_content(
        model="default", contents="what?", config=types.GenerateContentConfig(tools=[tool])
    )
    assert answer.text == "Hello from m1."
    assert [s.name async for s in await alice.file_search_stores.list()] == [store.name]

    bob = proxy.client(key="bob-key").aio
    assert [s async for s in await bob.file_search_stores.list()] == []
    before = len(upstream.requests())
    with pytest.raises(errors.ClientError) as info:
        await bob.models.generate_content(
            model="default", contents="q", config=types.GenerateContentConfig(tools=[tool])
        )
    assert info.value.code == 403
    with pytest.raises(errors.ClientError):
        await bob.file_search_stores.documents.get(name=str(documents[0]))
    with pytest.raises(errors.ClientError):
        await bob.file_search_stores.import_file(
            file_search_store_name=store.name, file_name=file.name
        )
    assert len(upstream.requests()) == before  # none of bob's calls went upstream
    await alice.file_search_stores.delete(name=store.name, config={"force": True})
    with pytest.raises(errors.ClientError):
        await alice.file_search_stores.get(name=store.name)


async def test_a_file_on_another_key_than_the_store_is_a_clear_400(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))  # two keys, taken in turn
    client = proxy.client().aio
    store = await client.file_search_stores.create(config={"display_name": "docs"})
    doc = tmp_path / "notes.txt"
    doc.write_text("x")
    file = await client.files.upload(file=doc)
    assert store.name is not None
    assert file.name is not None
    with pytest.raises(errors.ClientError) as info:
        await client.file_search_stores.import_file(
            file_search_store_name=store.name, file_name=file.name
        )
    assert info.value.code == 400
    assert "another upstream API key" in str(info.value.message)


async def test_unknown_paths_are_named_and_passthrough_opens_them(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    status, body = await raw("GET", f"{proxy.url}/v1beta/corpora", "client-key")
    assert status == 404
    assert body["error"]["message"].startswith("L104 Proxy does not serve GET /v1beta/corpora")
    status, body = await raw("GET", f"{proxy.url}/v1beta/batches/nope", "client-key")
    assert status == 403
    assert "Batch nope" in body["error"]["message"]
    assert upstream.requests() == []

    opened = await start_proxy(
        base_yaml(upstream.url, extra=f"surface: {{passthrough: [agents]}}\n{CLIENTS}")
    )
    status, agent = await raw("POST", f"{opened.url}/v1beta/agents", "alice-key", {})
    assert status == 200
    assert agent["name"].startswith("agents/")
    made_with = upstream.requests()[-1]["headers"]["x-goog-api-key"]
    for _ in range(2):  # keys are taken in turn, but what was made stays on its key
        status, _ = await raw("GET", f"{opened.url}/v1beta/{agent['name']}", "alice-key")
        assert status == 200
        assert upstream.requests()[-1]["headers"]["x-goog-api-key"] == made_with
    before = len(upstream.requests())
    status, _ = await raw("GET", f"{opened.url}/v1beta/{agent['name']}", "bob-key")
    assert status == 403
    assert len(upstream.requests()) == before


@pytest.mark.parametrize(
    "tail",
    [
        "{store}/../../models/m1:generateContent",
        "{store}/..%2F..%2Fmodels%2Fm1:generateContent",
        "{store}/%2e%2e/%2e%2e/models/m1",
        "{store}//documents",
        "{store}/./documents",
        "{store}/documents/%00x",
    ],
)
async def test_a_path_under_a_held_resource_cannot_climb_out_of_it(
    start_proxy: StartProxy, upstream: Upstream, tail: str
) -> None:
    """SECURITY: a path under a resource the caller holds goes upstream with that resource's
    key; one that climbs out of it would make the key a key to anything."""
    proxy = await start_proxy(base_yaml(upstream.url))
    store = await proxy.client().aio.file_search_stores.create(config={"display_name": "x"})
    assert store.name is not None
    before = len(upstream.requests())
    url = URL(f"{proxy.url}/v1beta/{tail.format(store=store.name)}", encoded=True)
    async with aiohttp.ClientSession() as s, s.get(url, headers={"x-goog-api-key": "k"}) as r:
        assert r.status in (400, 404), await r.text()
        assert (await r.json())["error"]["code"] in (400, 404)
    assert len(upstream.requests()) == before


async def test_a_tuned_model_made_through_the_proxy_is_its_makers(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    status, operation = await raw("POST", f"{proxy.url}/v1beta/tunedModels", "alice-key", {})
    assert status == 200
    tuned = operation["metadata"]["tunedModel"]
    made_with = upstream.requests()[-1]["headers"]["x-goog-api-key"]
    alice = proxy.client(key="alice-key").aio
    assert (await alice.models.get(model=tuned)).name == tuned
    answer = await alice.models.generate_content(model=tuned, contents="hi")
    assert answer.text == f"Hello from {tuned}."
    assert {r["headers"]["x-goog-api-key"] for r in upstream.requests()} == {made_with}
    bob = proxy.client(key="bob-key").aio
    with pytest.raises(errors.ClientError) as info:
        await bob.models.get(model=tuned)
    assert info.value.code == 403


async def test_passthrough_sends_on_what_the_proxy_did_not_make(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """A tuned model made elsewhere (AI Studio, say) is no resource of the registry: without
    passthrough it is one that does not exist; with it, the upstream is asked."""
    closed = await start_proxy(base_yaml(upstream.url))
    status, _ = await raw("GET", f"{closed.url}/v1beta/tunedModels/elsewhere", "client-key")
    assert status == 403
    assert upstream.requests() == []
    opened = await start_proxy(
        base_yaml(upstream.url, extra="surface: {passthrough: [tunedModels]}")
    )
    status, _ = await raw("GET", f"{opened.url}/v1beta/tunedModels/elsewhere", "client-key")
    assert status == 403  # the upstream's own answer, this time
    assert [r["name"] for r in upstream.requests()] == ["tunedModels/elsewhere"]
