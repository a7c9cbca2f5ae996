"""The Interactions API through the proxy with the real google-genai SDK. The fake upstream holds
each interaction in its key's project (another key gets 403), so a follow-up sent with the wrong
key fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.genai._gaos.lib.compat_errors import APIStatusError
from google.genai.interactions import Interaction, InteractionCreatedEvent

from tests.conftest import StartProxy, Upstream, base_yaml, ledger_rows

CLIENTS = "clients: [{name: alice, key: alice-key}, {name: bob, key: bob-key}]"


async def made(client: Any, **fields: Any) -> Interaction:
    """An interaction made whole (not streamed), with its id."""
    out = await client.interactions.create(**fields)
    assert isinstance(out, Interaction)
    assert out.id is not None
    return out


def creates(upstream: Upstream) -> list[dict[str, object]]:
    return [r for r in upstream.requests() if r["action"] == "interactions.create"]


async def test_a_chain_rotates_then_a_follow_up_stays_on_the_key(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS, store=""))
    alice = proxy.client(key="alice-key").aio
    quota = {"status": 429, "delay": "30s"}
    upstream.script("m1", quota, quota)  # both keys' projects
    first = await made(alice, model="default", input="hi")
    assert first.id is not None
    assert first.status == "completed"
    assert first.model == "m2"  # m1 was out of quota: the chain moved on before the first byte
    sent = creates(upstream)
    assert [json.loads(str(r["body"]))["model"] for r in sent] == ["m1", "m1", "m2"]
    key = sent[-1]["headers"]["x-goog-api-key"]  # type: ignore[index]

    # The follow-up goes with the first one's key; m1 is still cooling there, so m2 again.
    follow = await made(alice, model="default", input="and?", previous_interaction_id=first.id)
    assert follow.status == "completed"
    last = creates(upstream)[-1]
    assert last["headers"]["x-goog-api-key"] == key  # type: ignore[index]
    assert json.loads(str(last["body"]))["previous_interaction_id"] == first.id

    got = await alice.interactions.get(first.id)
    assert got.id == first.id
    bob = proxy.client(key="bob-key").aio
    with pytest.raises(APIStatusError) as info:
        await bob.interactions.get(first.id)
    assert info.value.status_code == 403
    assert "Interaction" in str(info.value)
    with pytest.raises(APIStatusError) as info:
        await made(bob, model="default", input="x", previous_interaction_id=first.id)
    assert info.value.status_code == 403
    # Neither of bob's calls reached the upstream.
    assert len(creates(upstream)) == 4
    await alice.interactions.delete(first.id)
    with pytest.raises(APIStatusError) as info:
        await alice.interactions.get(first.id)
    assert info.value.status_code == 403


async def test_a_stream_has_its_own_shape_and_is_recorded(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db)))
    client = proxy.client().aio
    stream = await client.interactions.create(model="default", input="hi", stream=True)
    assert not isinstance(stream, Interaction)
    events = [e async for e in stream]
    kinds = [e.event_type for e in events]
    assert kinds == ["interaction.created", "step.delta", "interaction.completed"]
    created = events[0]
    assert isinstance(created, InteractionCreatedEvent)
    ident = created.interaction.id
    assert ident is not None
    # Recorded from the stream: a follow-up finds it, a resumed stream replays after an event.
    again = await made(client, model="default", input="more", previous_interaction_id=ident)
    assert again.status == "completed"
    again_stream = await client.interactions.get(ident, stream=True, last_event_id="evt-1")
    assert not isinstance(again_stream, Interaction)
    resumed = [e.event_type async for e in again_stream]
    assert resumed == ["step.delta", "interaction.completed"]
    # usage.total_* reached the ledger: the stream's and the plain follow-up's.
    rows = await ledger_rows(db, "requested, served, input_tokens, output_tokens", 2)
    assert rows[:2] == [("default", "m1", 5, 3), ("default", "m1", 5, 3)]


async def test_background_runs_are_polled_and_counted_once(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db)))
    client = proxy.client().aio
    run = await made(client, model="m2", input="long job", background=True)
    assert run.status == "in_progress"
    assert run.id is not None
    polls = [await client.interactions.get(run.id, stream=False) for _ in range(3)]
    assert [p.status for p in polls] == ["in_progress", "completed", "completed"]
    assert polls[-1].usage is not None
    assert polls[-1].usage.total_tokens == 8
    cancelled = await client.interactions.cancel(run.id)
    assert cancelled.id == run.id
    keys = {
        r["headers"]["x-goog-api-key"] for r in upstream.requests() if "interactions" in r["action"]
    }
    assert len(keys) == 1
    # The ledger: the create, three polls (the usage on the first that found it completed
    # only), the cancel.
    rows = await ledger_rows(db, "requested, served, status, input_tokens, output_tokens", 5)
    assert [r[3:] for r in rows] == [(0, 0), (0, 0), (5, 3), (0, 0), (0, 0)]
    assert rows[2][1] == "m2"


async def test_an_agent_goes_to_a_key_in_turn_and_is_pinned(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    async with aiohttp.ClientSession() as s:
        url = f"{proxy.url}/v1beta/interactions"
        body = {"agent": "deep-research-pro", "input": "find", "background": True}
        async with s.post(url, json=body, headers={"x-goog-api-key": "client-key"}) as r:
            assert r.status == 200
            made = await r.json()
        async with s.get(f"{url}/{made['id']}", headers={"x-goog-api-key": "client-key"}) as r:
            assert r.status == 200
    calls = [r for r in upstream.requests() if "interactions" in r["action"]]
    assert len({c["headers"]["x-goog-api-key"] for c in calls}) == 1


async def test_errors_before_the_first_byte_reach_the_sdk(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["up:m1"]'))
    client = proxy.client().aio
    with pytest.raises(APIStatusError) as info:
        await made(client, model="no-such-chain!", input="hi")
    assert info.value.status_code == 400
    assert "Invalid model name" in str(info.value)
    assert creates(upstream) == []


async def test_a_stream_that_breaks_ends_with_an_interactions_error_event(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"cut": True})
    seen = b""
    async with aiohttp.ClientSession() as s:
        body = {"model": "default", "input": "hi", "stream": True}
        async with s.post(f"{proxy.url}/v1beta/interactions", json=body) as r:
            assert r.status == 200
            with contextlib.suppress(aiohttp.ClientPayloadError):
                async for piece in r.content.iter_any():
                    seen += piece
    events = [block for block in seen.decode().split("\n\n") if block.strip()]
    assert events[0].startswith("event: interaction.created\n")
    assert events[-1].startswith("event: error\ndata: ")
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert error["event_type"] == "error"
    assert error["error"]["code"] == "UNAVAILABLE"
    assert "broke" in error["error"]["message"]


async def test_an_exhausted_chain_tells_the_sdks_own_retry_when_to_come_back(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """The SDK's Interactions client retries a 429 itself, after the ``Retry-After`` it is
    given: the proxy's is the cooldown's exact end, so the retry lands once quota is back and
    nothing in between reaches the upstream."""
    proxy = await start_proxy(
        base_yaml(upstream.url, keys=("only-key",), chains='default: ["up:m1"]')
    )
    upstream.script("m1", {"status": 429, "delay": "1s"})
    # The proxy's clock is the test's: the cooldown's second passes while the SDK waits.
    asyncio.get_running_loop().call_later(0.5, proxy.clock.advance, 1.0)
    done = await made(proxy.client().aio, model="default", input="hi")
    assert done.status == "completed"
    assert [r["model"] for r in creates(upstream)] == ["m1", "m1"]
