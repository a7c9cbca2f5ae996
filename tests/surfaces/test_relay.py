"""Streaming: decided before the first byte, relayed unbuffered, failures reported in-band."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from google.genai import errors, types

from tests.conftest import StartProxy, Upstream, base_yaml, ledger_rows, run_node

STREAM = "/v1beta/models/{model}:streamGenerateContent"


async def wait_for(predicate: Callable[[], bool], limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_stream_through_the_sdk(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    stream = await proxy.client().aio.models.generate_content_stream(model="default", contents="hi")
    texts = [chunk.text async for chunk in stream]
    assert texts == ["part0 from m1. ", "part1 from m1. ", "part2 from m1. "]
    request = upstream.requests("m1")[0]
    assert request["query"] == {"alt": "sse"}


async def test_stream_rotates_before_the_first_byte(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "5s"})
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            proxy.url + STREAM.format(model="default"), params={"alt": "sse"}, json={"contents": []}
        ) as r,
    ):
        assert r.status == 200
        assert (r.headers["x-l104-model"], r.headers["x-l104-attempts"]) == ("m2", "2")
        assert r.headers["Content-Type"].startswith("text/event-stream")
        body = await r.text()
    events = [e for e in body.split("\r\n\r\n") if e]
    assert all(e.startswith("data: {") for e in events)  # nothing but data events
    assert len(events) == 3


async def test_stream_is_not_buffered(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"chunks": 3, "gate": True})
    stream = await proxy.client().aio.models.generate_content_stream(model="default", contents="hi")
    first = await anext(stream)
    # The upstream holds its second chunk back until released: the first one got here alone.
    assert first.text == "part0 from m1. "
    assert upstream.state()["gate_waiting"] == 1
    upstream.release()
    rest = [chunk.text async for chunk in stream]
    assert rest == ["part1 from m1. ", "part2 from m1. "]


# The SDK raises on the error event without releasing its response; the proxy has cut the
# connection by then, so aiohttp warns when the SDK's response is collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_failure_after_the_first_byte_makes_the_sdk_raise(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"chunks": 3, "fail_after": 1})
    stream = await proxy.client().aio.models.generate_content_stream(model="default", contents="hi")
    got: list[str | None] = []

    async def drain(chunks: AsyncIterator[types.GenerateContentResponse]) -> None:
        async for chunk in chunks:
            got.append(chunk.text)

    with pytest.raises(errors.ServerError) as info:
        await drain(stream)
    assert got == ["part0 from m1. "]
    assert info.value.code == 503
    assert "stream broke" in (info.value.message or "")


@pytest.mark.parametrize("sse", [True, False])
async def test_a_broken_stream_ends_in_band_then_cuts_the_connection(
    start_proxy: StartProxy, upstream: Upstream, sse: bool
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"chunks": 3, "fail_after": 1})
    got = bytearray()

    async def drain(r: aiohttp.ClientResponse) -> None:
        async for data in r.content.iter_any():
            got.extend(data)

    async with (
        aiohttp.ClientSession() as s,
        s.post(
            proxy.url + STREAM.format(model="default"),
            params={"alt": "sse"} if sse else None,
            json={"contents": []},
        ) as r,
    ):
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):  # no clean end of the chunked body
            await drain(r)
    error = {"code": 503, "message": "The upstream stream broke: ", "status": "UNAVAILABLE"}
    if sse:
        events = [json.loads(e[6:]) for e in got.decode().split("\r\n\r\n") if e]
        assert events[0]["candidates"][0]["content"]["parts"][0]["text"] == "part0 from m1. "
        last = events[-1]["error"]
    else:
        head, _, tail = got.decode().rpartition("\r\n,")
        assert head.startswith('[{"candidates"')
        last = json.loads(tail)["error"]
    assert last["message"].startswith(error["message"])
    assert (last["code"], last["status"]) == (error["code"], error["status"])


async def test_vercel_ai_sdk_throws_on_a_broken_stream(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    healthy = await run_node("vercel_stream.mjs", f"{proxy.url}/v1beta", "client-key", "default")
    assert healthy == {
        "texts": ["part0 from m1. ", "part1 from m1. ", "part2 from m1. "],
        "threw": None,
    }
    upstream.script("m1", {"chunks": 3, "fail_after": 1})
    broken = await run_node("vercel_stream.mjs", f"{proxy.url}/v1beta", "client-key", "default")
    assert broken["texts"] == ["part0 from m1. "]
    assert broken["threw"] is not None


async def read_one_event_and_leave(url: str) -> None:
    """A client that reads the first event of a stream, then goes away."""
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            url + STREAM.format(model="default"), params={"alt": "sse"}, json={"contents": []}
        )
        assert (await resp.content.readuntil(b"\r\n\r\n")).startswith(b"data: ")
        resp.close()


async def test_client_going_away_cancels_the_upstream(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"chunks": 3, "gate": True})
    await read_one_event_and_leave(proxy.url)
    await wait_for(lambda: upstream.state()["streams_cancelled"] == 1)
    assert upstream.state()["streams_finished"] == 0


async def test_stream_without_alt_is_a_json_array(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(
        base_yaml(upstream.url, chains='default: ["up:m1"]\n  local: ["local"]')
    )
    for model in ("default", "local"):
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                proxy.url + STREAM.format(model=model),
                json={"contents": [{"parts": [{"text": "x"}]}]},
            ) as r,
        ):
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/json")
            items = json.loads(await r.read())
        assert len(items) == 3
        assert items[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "alt" not in upstream.requests("m1")[0]["query"]


async def test_local_fake_streams_in_chunks(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["local:gemini-x"]'))
    stream = await proxy.client().aio.models.generate_content_stream(model="default", contents="hi")
    chunks = [c async for c in stream]
    assert len(chunks) == 3
    assert "".join(c.text or "" for c in chunks) == (
        "This is L104 Proxy's fake responder answering as gemini-x."
    )
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.candidates_token_count == 15


async def test_a_client_that_leaves_mid_stream_is_a_499_not_a_broken_upstream(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db)))
    upstream.script("m1", {"chunks": 2000})  # fast and long: the close races the chunks
    await read_one_event_and_leave(proxy.url)
    rows = await ledger_rows(db, "status")
    assert rows == [(499,)]
    assert "upstream stream broke" not in caplog.text
    # Nothing went wrong (the fake's m1 has no price: that is said once, and is no fault).
    assert not [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "l104.billing"
    ]
