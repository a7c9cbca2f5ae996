"""The vertex responder against the fake Vertex AI: a service account whose JWT google-auth
signs and the fake verifies, tokens refreshed after a revocation, express keys, Vertex's paths,
counts and embeddings in Vertex's shapes, and a 429 with no RetryInfo."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.errors import AttemptFailed
from proxy.responders import Call
from proxy.responders.vertex import VertexResponder
from proxy.responders.vertex_spec import VertexSpec, host_for
from tests.conftest import Upstream

ACCOUNT = "l104-test@l104-project.iam.gserviceaccount.com"


def service_account(upstream: Upstream, tmp_path: Path) -> Path:
    """A service account's JSON with a key made here; the fake trusts its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    vertex_control(upstream, {"account": ACCOUNT, "public_key": public})
    info = {
        "type": "service_account",
        "project_id": "l104-project",
        "private_key_id": "k1",
        "private_key": private,
        "client_email": ACCOUNT,
        "client_id": "1",
        "token_uri": f"{upstream.url}/token",
    }
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    return path


def vertex_control(upstream: Upstream, body: dict[str, Any]) -> dict[str, Any]:
    """The fake Vertex's own control (``POST /_vertex``)."""
    answer = requests.post(f"{upstream.url}/_vertex", json=body, timeout=5)
    result: dict[str, Any] = answer.json()
    return result


def spec_for(upstream: Upstream, sa: Path | None = None, **extra: Any) -> VertexSpec:
    fields: dict[str, Any] = {
        "base_url": upstream.url,
        "project": "l104-project",
        "location": "us-central1",
        "service_account": sa.read_text() if sa is not None else "",
        "projects": (0,),
        "project_names": ("l104-project",),
    }
    return VertexSpec(**{**fields, **extra})


def hello(model: str = "gemini-2.5-flash") -> Call:
    body = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}'
    return Call("generateContent", model, body=body)


async def test_a_service_account_token_goes_to_vertex_paths(
    upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    async with aiohttp.ClientSession() as session:
        responder = VertexResponder("vx", spec_for(upstream, sa), session)
        first = await responder.send(hello(), 0)
        second = await responder.send(hello(), 0)
    assert first.status == second.status == 200
    assert b"Hello from gemini-2.5-flash." in first.body
    calls = [r for r in upstream.requests() if r.get("vertex")]
    assert [c["path"] for c in calls] == [
        "/v1/projects/l104-project/locations/us-central1/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    ] * 2
    assert calls[0]["headers"]["authorization"].startswith("Bearer ya29.fake-")
    assert "x-goog-api-key" not in calls[0]["headers"]
    assert calls[0]["body"] == '{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}'
    grants = [r for r in upstream.requests() if r["action"] == "vertex.token"]
    assert [g["ok"] for g in grants] == [True]  # one token, used twice


async def test_a_revoked_token_is_refreshed_and_the_call_retried(
    upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    async with aiohttp.ClientSession() as session:
        responder = VertexResponder("vx", spec_for(upstream, sa), session)
        assert (await responder.send(hello(), 0)).status == 200
        assert responder.tokens is not None
        before = responder.tokens.expiry
        vertex_control(upstream, {"revoke": True})
        again = await responder.send(hello(), 0)
    assert again.status == 200
    statuses = [r["credential"] != "" for r in upstream.requests() if r.get("vertex")]
    assert statuses == [True, False, True]  # the refused call, then the retry on a new token
    assert responder.tokens.refreshes == 2
    assert before is not None


async def test_a_token_that_cannot_be_had_is_a_failed_attempt(
    upstream: Upstream, tmp_path: Path
) -> None:
    sa = service_account(upstream, tmp_path)
    broken = json.loads(sa.read_text())
    broken["client_email"] = "stranger@elsewhere.iam.gserviceaccount.com"  # not trusted
    async with aiohttp.ClientSession() as session:
        spec = spec_for(upstream, None, service_account=json.dumps(broken))
        responder = VertexResponder("vx", spec, session)
        with pytest.raises(AttemptFailed) as failed:
            await responder.send(hello(), 0)
    assert failed.value.kind == "connect"
    assert "PRIVATE KEY" not in str(failed.value)
    assert not [r for r in upstream.requests() if r.get("vertex")]


async def test_express_keys_use_the_express_paths(upstream: Upstream) -> None:
    spec = VertexSpec(
        base_url=upstream.url,
        api_keys=("vx-one", "vx-two"),
        projects=(0, 1),
        project_names=("key 0", "key 1"),
    )
    async with aiohttp.ClientSession() as session:
        responder = VertexResponder("vxe", spec, session)
        assert responder.key_count == 2
        assert (await responder.send(hello(), 1)).status == 200
    call = [r for r in upstream.requests() if r.get("vertex")][-1]
    assert call["path"] == "/v1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert call["headers"]["x-goog-api-key"] == "vx-two"
    assert "authorization" not in call["headers"]


async def test_counts_and_embeddings_in_vertex_shapes(upstream: Upstream) -> None:
    spec = VertexSpec(base_url=upstream.url, api_keys=("vx-one",), projects=(0,))
    wrapped = {"generateContentRequest": {"model": "models/m", "contents": [{"parts": []}]}}
    embed = {
        "requests": [
            {"model": "models/e", "content": {"parts": [{"text": "ab"}]}, "taskType": "QUERY"},
            {"model": "models/e", "content": {"parts": [{"text": "abcd"}]}},
        ]
    }
    async with aiohttp.ClientSession() as session:
        responder = VertexResponder("vxe", spec, session)
        count = await responder.send(Call("countTokens", "m", body=orjson.dumps(wrapped)), 0)
        vectors = await responder.send(Call("batchEmbedContents", "e", body=orjson.dumps(embed)), 0)
        picture = {"content": {"parts": [{"inlineData": {"data": "x", "mimeType": "a/b"}}]}}
        with pytest.raises(AttemptFailed) as image:
            await responder.send(Call("embedContent", "e", body=orjson.dumps(picture)), 0)
    assert count.status == 200
    assert json.loads(count.body) == {"totalTokens": 8}
    sent = [r for r in upstream.requests() if r.get("vertex")]
    assert json.loads(sent[0]["body"]) == {"contents": [{"parts": []}]}
    assert vectors.status == 200
    assert json.loads(vectors.body) == {
        "embeddings": [{"values": [2.0] * 3}, {"values": [4.0] * 3}]
    }
    assert json.loads(sent[1]["body"]) == {
        "instances": [{"content": "ab", "task_type": "QUERY"}, {"content": "abcd"}]
    }
    assert sent[1]["path"].endswith("/e:predict")
    assert image.value.kind == "unsupported"  # skipped, never sent
    assert len(sent) == 2


async def test_a_vertex_429_carries_no_retry_info(upstream: Upstream) -> None:
    spec = VertexSpec(base_url=upstream.url, api_keys=("vx-one",), projects=(0,))
    upstream.script("gemini-2.5-flash", {"status": 429})
    async with aiohttp.ClientSession() as session:
        reply = await VertexResponder("vxe", spec, session).send(hello(), 0)
    assert reply.status == 429
    assert b"RetryInfo" not in reply.body


def test_hosts_by_location() -> None:
    assert host_for("global") == "https://aiplatform.googleapis.com"
    assert host_for("us") == "https://aiplatform.us.rep.googleapis.com"
    assert host_for("eu") == "https://aiplatform.eu.rep.googleapis.com"
    assert host_for("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"


def test_the_spec_shows_no_credential(upstream: Upstream, tmp_path: Path) -> None:
    sa = service_account(upstream, tmp_path)
    spec = spec_for(upstream, sa)
    assert "PRIVATE" not in repr(spec)
    assert "vx-secret" not in repr(VertexSpec(api_keys=("vx-secret",)))


async def test_application_default_credentials(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``credentials: adc``: google-auth finds the credentials as Google's tools do (here the
    file ``GOOGLE_APPLICATION_CREDENTIALS`` names), on the first call, off the event loop."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account(upstream, tmp_path)))
    async with aiohttp.ClientSession() as session:
        responder = VertexResponder("vx", spec_for(upstream, None, adc=True), session)
        reply = await responder.send(hello(), 0)
    assert reply.status == 200
    call = [r for r in upstream.requests() if r.get("vertex")][-1]
    assert call["headers"]["authorization"].startswith("Bearer ya29.fake-")


async def test_a_token_near_its_end_is_refreshed_while_calls_go_on(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Tokens that last seconds: google-auth calls them stale at once (minutes before their
    end), so each call starts a refresh in the background and goes on with the token it has."""
    sa = service_account(upstream, tmp_path)
    vertex_control(upstream, {"expires_in": 30})
    async with aiohttp.ClientSession() as session:
        responder = VertexResponder("vx", spec_for(upstream, sa), session)
        for _ in range(3):
            assert (await responder.send(hello(), 0)).status == 200
        await asyncio.sleep(0.5)  # the last background refresh lands
        assert responder.tokens is not None
        refreshed = responder.tokens.refreshes
    used = [r["credential"] for r in upstream.requests() if r.get("vertex")]
    # The first refresh awaited; the second in the background, one at a time however many
    # calls find the token stale meanwhile.
    assert refreshed >= 2
    assert used[1] == used[0]  # the call that found it stale went on with the token it had
