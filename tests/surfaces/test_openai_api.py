"""Gemini's OpenAI-compatible endpoint through the proxy, driven by the official ``openai`` SDK
(sync and async) against the fake upstream's compat routes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from tests.conftest import Proxy, StartProxy, Upstream, base_yaml, ledger_rows

CLIENTS = "clients: [{name: tool, key: tool-key}]"


def clients_for(proxy: Proxy, key: str = "tool-key") -> tuple[OpenAI, AsyncOpenAI]:
    base = f"{proxy.url}/v1beta/openai/"
    return (
        OpenAI(base_url=base, api_key=key, max_retries=0),
        AsyncOpenAI(base_url=base, api_key=key, max_retries=0),
    )


async def test_chat_completions_sync_and_async(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    sync, aio = clients_for(proxy)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    done = await asyncio.to_thread(sync.chat.completions.create, model="default", messages=messages)
    assert done.choices[0].message.content == "Hello from m1."
    raw = await aio.chat.completions.with_raw_response.create(model="m2", messages=messages)
    assert (raw.headers["x-l104-model"], raw.headers["x-l104-attempts"]) == ("m2", "1")
    usage = raw.parse().usage
    assert usage is not None
    assert usage.total_tokens == 11
    sent = upstream.requests()
    assert [json.loads(r["body"])["model"] for r in sent] == ["m1", "m2"]
    assert [r["path"] for r in sent] == ["/v1beta/openai/chat/completions"] * 2
    for request in sent:
        assert request["bearer"] == "key-a-upstream"  # the upstream key, as a bearer token
        assert "tool-key" not in repr(request)
    sync.close()
    await aio.close()


async def test_a_429_in_the_compat_array_shape_rotates_and_cools(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429, "delay": "40s"})
    _, aio = clients_for(proxy)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        raw = await aio.chat.completions.with_raw_response.create(
            model="default", messages=messages
        )
        assert raw.headers["x-l104-model"] == "m2"
    assert len(upstream.requests("m1")) == 1  # the second call skipped the cooling m1
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/health") as r:
        m1 = (await r.json())["models"]["m1"]
    assert m1["state"] == "cooling"
    assert 35 <= m1["cooldown_s"] <= 40  # RetryInfo read from inside the array
    await aio.close()


async def test_streams_end_in_done_and_rotate_before_the_first_byte(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    sync, aio = clients_for(proxy)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    stream = await aio.chat.completions.create(model="default", messages=messages, stream=True)
    assert [c.choices[0].delta.content async for c in stream] == [
        "part0 from m1. ",
        "part1 from m1. ",
        "part2 from m1. ",
    ]
    upstream.script("m1", {"status": 429, "delay": "40s"})

    def sync_stream() -> list[str | None]:
        chunks = sync.chat.completions.create(model="default", messages=messages, stream=True)
        return [c.choices[0].delta.content for c in chunks]

    assert await asyncio.to_thread(sync_stream) == [
        "part0 from m2. ",
        "part1 from m2. ",
        "part2 from m2. ",
    ]
    sync.close()
    await aio.close()


async def test_a_broken_stream_makes_the_sdk_raise(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("m1", {"chunks": 3, "fail_after": 1})
    _, aio = clients_for(proxy)
    stream = await aio.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    got: list[str | None] = []

    async def drain() -> None:
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError) as info:
        await drain()
    assert got == ["part0 from m1. "]
    assert "stream broke" in info.value.message
    await aio.close()


async def test_embeddings_sync_and_async(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    sync, aio = clients_for(proxy)
    one = await asyncio.to_thread(sync.embeddings.create, model="default", input="a")
    assert [d.embedding for d in one.data] == [[0.5, 0.25]]
    two = await aio.embeddings.create(model="m3", input=["a", "b"])
    assert [d.index for d in two.data] == [0, 1]
    assert [json.loads(r["body"])["model"] for r in upstream.requests()] == ["m1", "m3"]
    sync.close()
    await aio.close()


async def test_models_list_and_get(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["up:m1"]'))
    sync, aio = clients_for(proxy)
    listed = await asyncio.to_thread(lambda: [m.id for m in sync.models.list()])
    assert listed[0] == "default"
    assert "models/gemini-upstream-0" in listed
    assert (await aio.models.retrieve("default")).id == "default"
    assert (await aio.models.retrieve("gemini-upstream-1")).id == "models/gemini-upstream-1"
    with pytest.raises(openai.NotFoundError):
        await aio.models.retrieve("gemini-nope")
    sync.close()
    await aio.close()


async def test_errors_have_the_openai_shape(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), extra=CLIENTS))
    _, aio = clients_for(proxy)
    _, stranger = clients_for(proxy, key="wrong-key")
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await stranger.chat.completions.create(model="default", messages=messages)
    assert denied.value.code == "PERMISSION_DENIED"
    for model in ("m1", "m2", "m3"):
        upstream.script(model, {"status": 429, "delay": "30s"})
    with pytest.raises(openai.RateLimitError) as limited:
        await aio.chat.completions.create(model="default", messages=messages)
    assert limited.value.type == "rate_limit_error"
    assert "m1" in limited.value.message
    assert limited.value.response.headers["Retry-After"] == "30"
    upstream.script("gemini-x", {"status": 400})  # a pass-through name: no chain, no cooling
    with pytest.raises(openai.BadRequestError) as bad:
        await aio.chat.completions.create(model="gemini-x", messages=messages)
    assert bad.value.message.endswith(" - Request contains an invalid argument.")
    assert bad.value.code == "INVALID_ARGUMENT"  # read from the compat endpoint's array
    async with aiohttp.ClientSession() as s:
        for body in (b"{nope", b'{"messages": []}'):
            async with s.post(
                f"{proxy.url}/v1beta/openai/chat/completions",
                data=body,
                headers={"Authorization": "Bearer tool-key", "content-type": "application/json"},
            ) as r:
                assert r.status == 400
                error = (await r.json())["error"]
                assert error["type"] == "invalid_request_error"
                assert error["code"] == "INVALID_ARGUMENT"
    assert [r["model"] for r in upstream.requests()] == ["m1", "m2", "m3", "gemini-x"]
    await aio.close()
    await stranger.close()


async def test_local_responders_speak_the_openai_shapes(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains='default: ["mirror:echo-1"]'))
    _, aio = clients_for(proxy)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "say this back"},
    ]
    done = await aio.chat.completions.create(model="default", messages=messages)
    assert done.choices[0].message.content == "say this back"
    assert done.model == "echo-1"
    stream = await aio.chat.completions.create(model="default", messages=messages, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "say this back"
    vectors = await aio.embeddings.create(model="default", input=["a", "b", "a"])
    assert vectors.data[0].embedding == vectors.data[2].embedding != vectors.data[1].embedding
    await aio.close()


async def test_calls_reach_the_ledger_and_metrics(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS, store=str(db)))
    _, aio = clients_for(proxy)
    await aio.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])
    await aio.embeddings.create(model="m2", input="a")
    rows = await ledger_rows(
        db, "client, requested, served, status, input_tokens, output_tokens", count=2
    )
    assert rows == [("tool", "default", "m1", 200, 8, 3), ("tool", "m2", "m2", 200, 4, 0)]
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/metrics") as r:
        metrics = await r.json()
    assert metrics["model_usage"] == {"m1": 1, "m2": 1}
    assert metrics["requests_total"] == 2
    await aio.close()


async def test_the_llm_cli_as_the_clients_page_sets_it_up(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    """``llm`` (Simon Willison's CLI) with the proxy as an OpenAI-compatible model, configured
    exactly as docs/clients.md says, streamed and not."""
    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    (tmp_path / "extra-openai-models.yaml").write_text(
        "- model_id: l104\n"
        "  model_name: default\n"
        f'  api_base: "{proxy.url}/v1beta/openai/"\n'
        "  api_key_name: l104\n"
    )
    env = {"PATH": os.environ["PATH"], "LLM_USER_PATH": str(tmp_path), "HOME": str(tmp_path)}
    said = {"": "part0 from m1. part1 from m1. part2 from m1.", "--no-stream": "Hello from m1."}
    for stream in ("", "--no-stream"):
        cli = await asyncio.create_subprocess_exec(
            *(str(Path(sys.executable).parent / "llm"), "prompt", "-m", "l104", "--no-log"),
            *("--key", "tool-key", *([stream] if stream else []), "Say hello"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(cli.communicate(), 30)
        assert cli.returncode == 0, err.decode()
        assert out.decode().strip() == said[stream]
    sent = upstream.requests()
    assert [json.loads(r["body"]).get("stream", False) for r in sent] == [True, False]
    assert {r["bearer"] for r in sent} <= {"key-a-upstream", "key-b-upstream"}
    assert "tool-key" not in repr(sent)  # the client's key stays at the proxy


async def test_langchain_chat_openai_as_the_clients_page_sets_it_up(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """LangChain's OpenAI chat model on the proxy's base URL, invoked and streamed."""
    from langchain_openai import ChatOpenAI

    proxy = await start_proxy(base_yaml(upstream.url, extra=CLIENTS))
    # Its own HTTP client, closed here: LangChain's default one lives as long as the process.
    async with openai.DefaultAsyncHttpxClient() as http:
        llm = ChatOpenAI(
            model="default",
            api_key=SecretStr("tool-key"),
            base_url=f"{proxy.url}/v1beta/openai/",
            http_async_client=http,
        )
        answer = await llm.ainvoke("Say hello")
        pieces = [str(chunk.content) async for chunk in llm.astream("Say hello")]
    assert answer.content == "Hello from m1."
    assert "".join(pieces).strip() == "part0 from m1. part1 from m1. part2 from m1."
    sent = upstream.requests()
    assert [json.loads(r["body"]).get("stream", False) for r in sent] == [False, True]
    assert "tool-key" not in repr(sent)
