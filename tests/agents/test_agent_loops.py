"""Real agent loops across rotations in the middle of a turn: google-genai's automatic function
calling (unary and streamed) and the openai SDK with tools. The fake upstream enforces what
Gemini 3 enforces (a step's first function call needs a thought signature; one from the other
endpoint is corrupted), so each of these fails on a proxy that passes bodies on unchanged."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from google.genai import types

from tests.conftest import Proxy, StartProxy, Upstream, base_yaml

G3 = "gemini-3-flash-preview"
LITE = "gemini-2.5-flash-lite"
CHAIN = f'default: ["up:{G3}", "up:{LITE}"]'
STAND_IN = "skip_thought_signature_validator"


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def get_time(city: str) -> str:
    """The time in a city."""
    return f"noon in {city}"


def get_news(city: str) -> str:
    """The news of a city."""
    return f"quiet in {city}"


def _config(*tools: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        tools=list(tools),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(maximum_remote_calls=5),
    )


def _models(upstream: Upstream) -> list[str]:
    """The model of each generate call the upstream got, in order."""
    return [
        r["model"]
        for r in upstream.requests()
        if r["action"] in ("generateContent", "streamGenerateContent")
    ]


def _sent_signatures(upstream: Upstream, model: str) -> list[list[Any]]:
    """For each request to ``model``: the signatures of its function calls, in order."""
    out = []
    for r in upstream.requests(model):
        if r["action"] not in ("generateContent", "streamGenerateContent"):
            continue
        body = json.loads(r["body"])
        out.append(
            [
                p.get("thoughtSignature")
                for c in body["contents"]
                for p in c.get("parts", [])
                if "functionCall" in p
            ]
        )
    return out


async def _proxy(start_proxy: StartProxy, upstream: Upstream) -> Proxy:
    return await start_proxy(base_yaml(upstream.url, chains=CHAIN, keys=("only-key",)))


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_begun_on_25_goes_on_on_3(
    start_proxy: StartProxy, upstream: Upstream, stream: bool
) -> None:
    """Gemini 3 is overloaded for the first step: 2.5 calls the first function, unsigned. The
    next steps go back to 3, which would refuse the unsigned call; the proxy puts the stand-in."""
    proxy = await _proxy(start_proxy, upstream)
    upstream.script(G3, {"status": 503})
    chat = proxy.client().aio.chats.create(model="default", config=_config(get_weather, get_time))
    if stream:
        text = ""
        async for chunk in await chat.send_message_stream("weather and time in Rome?"):
            text += chunk.text or ""
    else:
        text = (await chat.send_message("weather and time in Rome?")).text or ""
    assert text.startswith(f"done on {G3}")
    assert "sunny in" in text
    assert "noon in" in text
    # Step 1 on 2.5 (3 was overloaded); steps 2 and 3 on 3, with the stand-in on 2.5's call.
    sent = _sent_signatures(upstream, G3)
    assert sent[1] == [STAND_IN]
    assert sent[2][0] == STAND_IN
    assert base64.urlsafe_b64decode(sent[2][1] + "==").startswith(b"aistudio:")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_going_3_then_25_then_3(
    start_proxy: StartProxy, upstream: Upstream, stream: bool
) -> None:
    proxy = await _proxy(start_proxy, upstream)
    upstream.script(G3, {}, {"status": 503})  # step 1 on 3, step 2 on 2.5, step 3 on 3
    chat = proxy.client().aio.chats.create(
        model="default", config=_config(get_weather, get_time, get_news)
    )
    question = "weather, time and news in Oslo?"
    if stream:
        text = ""
        async for chunk in await chat.send_message_stream(question):
            text += chunk.text or ""
    else:
        text = (await chat.send_message(question)).text or ""
    assert text.startswith(f"done on {G3}")
    assert "quiet in Rome" in text
    models = _models(upstream)
    assert models == [G3, G3, LITE, G3, G3]  # the second G3 is the 503
    # 3's own signature is kept; 2.5's unsigned call gets the stand-in.
    last = _sent_signatures(upstream, G3)[-1]
    assert base64.urlsafe_b64decode(last[0] + "==").startswith(b"aistudio:")
    assert last[1] == STAND_IN
    assert base64.urlsafe_b64decode(last[2] + "==").startswith(b"aistudio:")


async def test_a_signature_from_the_other_endpoint_is_repaired_on_the_same_member(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await _proxy(start_proxy, upstream)
    vertex = base64.urlsafe_b64encode(b"vertex:some-model:0").decode()
    history = [
        types.Content(role="user", parts=[types.Part(text="weather in Rome?")]),
        types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(name="get_weather", args={"city": "Rome"}),
                    thought_signature=base64.urlsafe_b64decode(vertex),
                )
            ],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        name="get_weather", response={"result": "sunny"}
                    )
                )
            ],
        ),
    ]
    answer = await proxy.client().aio.models.generate_content(
        model="default", contents=history, config=_config(get_weather)
    )
    assert (answer.text or "").startswith(f"done on {G3}")
    assert _models(upstream) == [G3, G3]  # the 400, then the repaired step
    assert _sent_signatures(upstream, G3)[1] == [STAND_IN]
    metrics = await _metrics(proxy)
    assert metrics["signature_repairs"] == {G3: 1}
    assert metrics["model_rotations"] == 0


async def _metrics(proxy: Proxy) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/metrics") as r:
        out: dict[str, Any] = await r.json()
        return out


async def test_the_openai_sdk_with_tools_across_a_rotation(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await _proxy(start_proxy, upstream)
    upstream.script(G3, {"status": 503})
    client = openai.AsyncOpenAI(api_key="client-key", base_url=f"{proxy.url}/v1beta/openai/")
    tools: list[Any] = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("get_weather", "get_time")
    ]
    messages: list[Any] = [{"role": "user", "content": "weather and time?"}]
    try:
        for _ in range(4):
            resp = await client.chat.completions.create(
                model="default", messages=messages, tools=tools
            )
            message = resp.choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            if not message.tool_calls:
                break
            for call in message.tool_calls:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": "ok"})
    finally:
        await client.close()
    assert str(messages[-1]["content"]).startswith(f"done on {G3}")


AGENTS = f"""default: ["up:m1"]
  agents:
    members: [{{member: "up:gemma-3", tools: false}}, "up:{G3}", "up:{LITE}"]
    aliases: ["gemini-*"]
    sticky_turn: true"""


async def test_an_alias_walks_its_chain_skipping_members_without_tools(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """ADK and gemini-cli hard-code ``gemini-*`` names: the alias walks the agents chain; the
    member without function calling is never sent a request with tools."""
    proxy = await start_proxy(base_yaml(upstream.url, chains=AGENTS, keys=("only-key",)))
    chat = proxy.client().aio.chats.create(model="gemini-3.8-flash", config=_config(get_weather))
    answer = await chat.send_message("weather in Rome?")
    assert (answer.text or "").startswith(f"done on {G3}")
    assert upstream.requests("gemma-3") == []
    assert _models(upstream) == [G3, G3]
    # A plain request (no tools) may use it.
    plain = await proxy.client().aio.models.generate_content(
        model="gemini-3.8-flash", contents="hi"
    )
    assert plain.text == "Hello from gemma-3."


async def test_sticky_turn_keeps_a_turn_on_the_member_that_began_it(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, chains=AGENTS, keys=("only-key",)))
    upstream.script(G3, {"status": 503})  # the turn begins on 2.5 ...
    chat = proxy.client().aio.chats.create(
        model="agents", config=_config(get_weather, get_time, get_news)
    )
    answer = await chat.send_message("weather, time and news?")
    assert (answer.text or "").startswith(f"done on {LITE}")
    # ... and stays there, though 3 has room again from the second step on.
    assert _models(upstream) == [G3, LITE, LITE, LITE, LITE]
    # The next turn (a new history) starts from the chain's head again.
    await chat.send_message("and tomorrow?")
    assert _models(upstream)[5] == G3


async def test_a_pydantic_ai_agent_finishes_a_multi_step_tool_task_while_3_answers_429(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    """pydantic-ai's agent with its OpenAI model on ``/v1beta/openai/``: Gemini 3 is out of
    quota for the first step, so the turn begins on 2.5 and goes on wherever the chain sends
    it; the agent sees answers only."""
    proxy = await _proxy(start_proxy, upstream)
    upstream.script(G3, {"status": 429, "delay": "1s"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("pydantic_agent.py")),
        f"{proxy.url}/v1beta/openai/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["called"] == ["weather:Rome", "clock:Rome"]
    assert result["output"].startswith(f"done on {LITE}")  # 3 cools for the whole turn
    assert "sunny in Rome" in result["output"]
