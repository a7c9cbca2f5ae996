"""/api/v6/stream and sessions: SSE through the chain, memory, errors, CORS."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Proxy, StartProxy, Upstream, base_yaml, read_sse

STREAM = "/api/v6/stream"


async def start(start_proxy: StartProxy, upstream: Upstream, tmp_path: Path) -> Proxy:
    text = base_yaml(upstream.url, store=str(tmp_path / "s.db")).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        "listen: {host: 127.0.0.1, port: 0, cors_origins: ['http://app.example']}",
    )
    return await start_proxy(text)


async def test_post_streams_chunks_then_done(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    async with aiohttp.ClientSession() as s, s.post(proxy.url + STREAM, json={"signal": "hi"}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = await read_sse(r)
    assert events == [
        ("chunk", {"text": "part0 from m1. "}),
        ("chunk", {"text": "part1 from m1. "}),
        ("chunk", {"text": "part2 from m1. "}),
        (
            "done",
            {
                "model": "m1",
                "usage": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
            },
        ),
    ]
    sent = upstream.requests("m1")[0]
    assert sent["action"] == "streamGenerateContent"
    assert json.loads(sent["body"]) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


async def test_get_rotates_through_the_chain(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    upstream.script("m1", {"status": 429}, {"status": 429})
    async with (
        aiohttp.ClientSession() as s,
        s.get(proxy.url + STREAM, params={"signal": "hi"}) as r,
    ):
        events = await read_sse(r)
    assert events[-1] == (
        "done",
        {
            "model": "m2",
            "usage": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
        },
    )


async def test_sessions_carry_earlier_turns_and_stay_separate(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    async with aiohttp.ClientSession() as s:
        for signal, session in (("first", "alice"), ("other", "bob"), ("second", "alice")):
            async with s.post(proxy.url + STREAM, json={"signal": signal, "session": session}) as r:
                assert (await read_sse(r))[-1][0] == "done"
        bodies = [json.loads(r["body"])["contents"] for r in upstream.requests("m1")]
        answer = "part0 from m1. part1 from m1. part2 from m1. "
        assert bodies[1] == [{"role": "user", "parts": [{"text": "other"}]}]
        assert bodies[2] == [
            {"role": "user", "parts": [{"text": "first"}]},
            {"role": "model", "parts": [{"text": answer}]},
            {"role": "user", "parts": [{"text": "second"}]},
        ]
        async with s.get(f"{proxy.url}/api/v6/sessions/alice") as r:
            turns = (await r.json())["turns"]
        assert [(t["role"], t["text"]) for t in turns] == [
            ("user", "first"),
            ("model", answer),
            ("user", "second"),
            ("model", answer),
        ]
        async with s.delete(f"{proxy.url}/api/v6/sessions/alice") as r:
            assert (await r.json())["deleted_turns"] == 4
        async with s.get(f"{proxy.url}/api/v6/sessions/alice") as r:
            assert (await r.json())["turns"] == []
        async with s.get(f"{proxy.url}/api/v6/sessions/bob") as r:
            assert len((await r.json())["turns"]) == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"signal": ""}, 400),
        ({"signal": "x", "model": "nope"}, 404),
        ({"signal": "x", "session": "a/b"}, 400),
    ],
)
async def test_post_errors_are_gemini_json(
    start_proxy: StartProxy,
    upstream: Upstream,
    tmp_path: Path,
    body: dict[str, str],
    code: int,
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    async with aiohttp.ClientSession() as s, s.post(proxy.url + STREAM, json=body) as r:
        assert r.status == code
        assert (await r.json())["error"]["code"] == code
    assert upstream.requests() == []


async def test_get_errors_are_error_events(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    for m in ("m1", "m2", "m3"):
        upstream.script(m, {"status": 429}, {"status": 429})
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + STREAM, params={"signal": "x", "model": "nope"}) as r:
            assert r.status == 200
            assert await read_sse(r) == [
                ("error", {"code": 404, "status": "NOT_FOUND", "message": "No chain named 'nope'."})
            ]
        async with s.get(proxy.url + STREAM, params={"signal": "x"}) as r:
            events = await read_sse(r)
    assert events[0][0] == "error"
    assert events[0][1]["status"] == "RESOURCE_EXHAUSTED"


async def test_mid_stream_failure_is_an_error_event(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    upstream.script("m1", {"chunks": 3, "fail_after": 1})
    async with aiohttp.ClientSession() as s, s.post(proxy.url + STREAM, json={"signal": "x"}) as r:
        events = await read_sse(r)
    assert events[0] == ("chunk", {"text": "part0 from m1. "})
    assert events[-1][0] == "error"
    assert events[-1][1]["code"] == 503


async def test_cors_only_for_listed_origins(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    async with aiohttp.ClientSession() as s:
        async with s.options(
            proxy.url + STREAM,
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
        ) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
        async with s.options(proxy.url + STREAM, headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
        async with s.post(
            proxy.url + STREAM, json={"signal": "x"}, headers={"Origin": "http://app.example"}
        ) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
            await r.read()
        async with s.post(
            proxy.url + STREAM, json={"signal": "x"}, headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
            assert (await r.json())["error"]["status"] == "PERMISSION_DENIED"
        async with s.post(
            proxy.url + STREAM, json={"signal": "x"}, headers={"Origin": proxy.url}
        ) as r:
            assert r.status == 200  # the status page's own origin
            await r.read()


async def test_client_going_away_cancels_the_upstream(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    import asyncio
    import time

    proxy = await start(start_proxy, upstream, tmp_path)
    upstream.script("m1", {"chunks": 3, "gate": True})
    session = aiohttp.ClientSession()
    resp = await session.get(proxy.url + STREAM, params={"signal": "x"})
    assert (await resp.content.readuntil(b"\r\n\r\n")).startswith(b"event: chunk")
    resp.close()
    await session.close()
    deadline = time.monotonic() + 5
    while upstream.state()["streams_cancelled"] == 0 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert upstream.state()["streams_cancelled"] == 1


async def test_sessions_belong_to_their_client(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    clients = 'clients:\n  - {name: ann, key: "ann-key"}\n  - {name: ben, key: "ben-key"}'
    proxy = await start_proxy(base_yaml(upstream.url, store=str(tmp_path / "s.db"), extra=clients))
    async with aiohttp.ClientSession() as s:
        async with s.post(
            proxy.url + STREAM,
            json={"signal": "mine", "session": "shared"},
            headers={"x-goog-api-key": "ann-key"},
        ) as r:
            assert (await read_sse(r))[-1][0] == "done"
        async with s.get(
            f"{proxy.url}/api/v6/sessions/shared", headers={"x-goog-api-key": "ben-key"}
        ) as r:
            assert (await r.json())["turns"] == []
        async with s.post(
            proxy.url + STREAM,
            json={"signal": "his", "session": "shared"},
            headers={"x-goog-api-key": "ben-key"},
        ) as r:
            await r.read()
        async with s.get(f"{proxy.url}/api/v6/sessions/shared", params={"key": "ann-key"}) as r:
            turns = (await r.json())["turns"]
        assert [t["role"] for t in turns] == ["user", "model"]
        assert turns[0]["text"] == "mine"
        async with s.get(f"{proxy.url}/api/v6/sessions/shared") as r:
            assert r.status == 401
    his = json.loads(upstream.requests("m1")[1]["body"])["contents"]
    assert his == [{"role": "user", "parts": [{"text": "his"}]}]


async def test_an_upstream_error_that_is_not_rotated_is_an_error_event(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    proxy = await start(start_proxy, upstream, tmp_path)
    upstream.script("m1", {"status": 400})
    async with aiohttp.ClientSession() as s, s.post(proxy.url + STREAM, json={"signal": "x"}) as r:
        events = await read_sse(r)
    assert events == [
        (
            "error",
            {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": "Request contains an invalid argument.",
            },
        )
    ]
