"""``/api/v6/stream``: a browser-facing SSE answer through the same chains, with memory.

``POST`` takes JSON ``{"signal", "session"?, "model"?}``; ``GET`` takes the same as query
parameters (a browser's ``EventSource`` can only GET). Events: ``chunk`` ``{"text"}``, then
``done`` ``{"model", "usage"}``, or ``error`` ``{"code", "status", "message"}``. Before the stream
starts, a POST gets its errors as Gemini JSON with their status; a GET gets them as an ``error``
event, since ``EventSource`` cannot read an error body. Heartbeats are ``: ping`` comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from proxy.errors import (
    InvalidArgument,
    NotFound,
    ProxyError,
    error_body,
    status_name,
)
from proxy.exchange import Exchange, exchange_of
from proxy.responders import Call, Reply
from proxy.state import Runtime, runtime_of
from proxy.store.memory import Turn
from proxy.surfaces.relay import BROKEN, broken_stream
from proxy.wire import estimate_tokens

SESSION = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_SIGNAL = 32_768
PING_S = 15.0


async def _params(request: web.Request) -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.query)
    try:
        data = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected an object.")
    return data


def _validate(runtime: Runtime, params: dict[str, Any]) -> tuple[str, str, str]:
    signal, session = params.get("signal"), params.get("session") or ""
    chain = params.get("model") or runtime.config.default_chain.name
    if not isinstance(signal, str) or not signal.strip():
        raise InvalidArgument("'signal' must be a non-empty string.")
    if len(signal) > MAX_SIGNAL:
        raise InvalidArgument(f"'signal' is longer than {MAX_SIGNAL} characters.")
    if not isinstance(session, str) or (session and not SESSION.fullmatch(session)):
        raise InvalidArgument("'session' must be 1-128 letters, digits, '.', '_' or '-'.")
    if not isinstance(chain, str) or chain not in runtime.config.chains:
        raise NotFound(f"No chain named '{str(chain)[:100]}'.")
    return signal, session, chain


def _contents(history: list[Turn], signal: str) -> bytes:
    turns = [{"role": t.role, "parts": [{"text": t.text}]} for t in history]
    turns.append({"role": "user", "parts": [{"text": signal}]})
    return orjson.dumps({"contents": turns})


async def _events(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Gemini's SSE (``data: {…}`` + blank line) as parsed objects."""
    buffer = b""
    async for data in chunks:
        buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            lines = [line[6:] for line in event.split(b"\n") if line.startswith(b"data: ")]
            if lines:
                yield orjson.loads(b"".join(lines))


def _text(obj: dict[str, Any]) -> str:
    out = []
    for candidate in obj.get("candidates") or []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            if isinstance(part.get("text"), str) and not part.get("thought"):
                out.append(part["text"])
    return "".join(out)


def _error(code: int, message: str, status: str | None = None) -> str:
    return json.dumps({"code": code, "status": status or status_name(code), "message": message})


def _upstream_error(reply: Reply) -> str:
    """An upstream error answer as an ``error`` event, whatever its body looks like."""
    try:
        found = orjson.loads(reply.body or error_body(reply.status, "Upstream error."))
    except orjson.JSONDecodeError:
        found = {}
    err = found.get("error") if isinstance(found, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or f"The upstream answered {reply.status}.")
    return _error(reply.status, message, err.get("status"))


async def _relay(resp: EventSourceResponse, reply: Reply, exchange: Exchange) -> str | None:
    """Send the answer as chunk events; the whole text, or None if an error event was sent."""
    assert reply.chunks is not None
    answer = []
    async for obj in _events(reply.chunks):
        if "error" in obj:
            err = obj["error"]
            await resp.send(
                _error(int(err.get("code", 500)), str(err.get("message", "")), err.get("status")),
                event="error",
            )
            return None
        usage = obj.get("usageMetadata") or {}
        exchange.input_tokens = usage.get("promptTokenCount", exchange.input_tokens)
        exchange.output_tokens = usage.get("candidatesTokenCount", exchange.output_tokens)
        exchange.total_tokens = usage.get("totalTokenCount", exchange.total_tokens)
        text = _text(obj)
        exchange.mark_first_byte()
        if text:
            answer.append(text)
            await resp.send(json.dumps({"text": text}), event="chunk")
    return "".join(answer)


async def stream(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    exchange = exchange_of(request)
    try:
        signal, session, chain = _validate(runtime, await _params(request))
        exchange.requested = chain
        memory_key = owned(exchange.client, session)
        history = await runtime.memory.recent(memory_key) if session and runtime.memory else []
        call = Call("streamGenerateContent", chain, body=_contents(history, signal), sse=True)
        outcome = await runtime.rotator.run(runtime.resolver.resolve(chain), call)
    except ProxyError as exc:
        if request.method != "GET":
            raise
        async with sse_response(request) as resp:
            exchange.status = exc.code
            await resp.send(_error(exc.code, exc.message), event="error")
        return resp
    member = outcome.member
    exchange.answered_by(member.responder, member.model, outcome.key_index, outcome.attempts)
    reply = outcome.reply
    try:
        async with sse_response(request, allow_all_methods=True, ping_interval=PING_S) as resp:
            if reply.chunks is None:  # an upstream error that is not a rotation outcome
                await resp.send(_upstream_error(reply), event="error")
                return resp
            try:
                answer = await _relay(resp, reply, exchange)
            except BROKEN as exc:
                await resp.send(_error(*broken_stream(exc)), event="error")
                return resp
            if answer is None:
                return resp
            usage = {
                "promptTokenCount": exchange.input_tokens,
                "candidatesTokenCount": exchange.output_tokens,
                "totalTokenCount": exchange.total_tokens,
            }
            await resp.send(
                json.dumps({"model": outcome.member.model, "usage": usage}), event="done"
            )
            if session and runtime.memory is not None:
                await runtime.memory.add(
                    memory_key,
                    [
                        ("user", signal, exchange.input_tokens or estimate_tokens(signal)),
                        ("model", answer, exchange.output_tokens or estimate_tokens(answer)),
                    ],
                )
        return resp
    finally:
        reply.release()
        runtime.observer.finish(outcome.span, exchange)
        runtime.rotator.settle(outcome, exchange.total_tokens or exchange.input_tokens)


def owned(client: str, session: str) -> str:
    """Sessions are the client's own: another client's key never reaches them."""
    return f"{client}/{session}"


def _memory(request: web.Request) -> tuple[Runtime, str]:
    runtime = runtime_of(request)
    session = request.match_info["session"]
    if runtime.memory is None:
        raise NotFound("Conversation memory is off (store.path is empty).")
    if not SESSION.fullmatch(session):
        raise InvalidArgument("'session' must be 1-128 letters, digits, '.', '_' or '-'.")
    return runtime, session


async def read_session(request: web.Request) -> web.Response:
    runtime, session = _memory(request)
    assert runtime.memory is not None
    turns = await runtime.memory.all(owned(exchange_of(request).client, session))
    body = {
        "session": session,
        "turns": [{"role": t.role, "text": t.text, "tokens": t.tokens, "at": t.at} for t in turns],
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def delete_session(request: web.Request) -> web.Response:
    runtime, session = _memory(request)
    assert runtime.memory is not None
    deleted = await runtime.memory.forget(owned(exchange_of(request).client, session))
    return web.Response(
        body=orjson.dumps({"session": session, "deleted_turns": deleted}),
        content_type="application/json",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/api/v6/stream", stream)
    app.router.add_route("POST", "/api/v6/stream", stream)
    app.router.add_get("/api/v6/sessions/{session}", read_session)
    app.router.add_delete("/api/v6/sessions/{session}", delete_session)
