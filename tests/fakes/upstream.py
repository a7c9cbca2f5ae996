"""A fake Gemini upstream, run by the tests as its own process on 127.0.0.1.

It answers Gemini's paths with Gemini's real shapes, and takes a script per model through
``POST /_script`` ``{"model": "m", "steps": [step, ...]}``: each call to ``m`` uses the next step,
then plain 200s. A step is a dict:

- ``{"status": 429, "quota": "minute"|"day", "delay": "23s", "value": "20"}``: Gemini's quota error
  (``"delay": null`` leaves ``RetryInfo`` out; ``"retry_after": "7"`` adds the header);
- ``{"status": 400|403|404|500|503}``: that error, in Gemini's body (``"echo_key": true`` puts
  the key it got into the message, as a careless upstream might);
- ``{"drop": true}``: close the connection without answering;
- ``{"garbage": true}``: a 200 whose body is an HTML page; ``{"big": N}``: a 200 of N bytes;
- ``{"hang": 30}``: say nothing for that many seconds;
- ``{"status": 429, "quota": "tokens"}``: a token quota's 429 (``…InputTokensPerModelPerMinute…``);
- ``{"chunks": 3, "delay_ms": 0, "gate": true, "fail_after": 1, "split_usage": true}``: shape a
  stream (``split_usage`` cuts each event in two reads, inside ``usageMetadata``); with ``gate`` it
  sends one chunk and waits for ``POST /_release``; with ``fail_after`` it drops the connection
  after that many chunks.

As Gemini does, a body whose ``model`` field (``embedContent``, ``batchEmbedContents``'
``requests[]``, ``countTokens``' ``generateContentRequest``) differs from the URL's model is a 400,
and so is a body that is not a JSON object.

``POST /_keys`` ``{"key": 400|403}`` makes a key invalid (400 ``API_KEY_INVALID``) or its
project suspended (403 ``CONSUMER_SUSPENDED``) for every call.

``POST /_quota`` ``{"model", "per_minute", "delay"}`` gives a model a hard quota: past it, every
call is a 429 with that ``quotaValue``. ``GET /_requests`` lists what came in (path, query,
headers); ``GET /_state`` has counters; ``POST /_reset`` forgets everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from typing import Any

from aiohttp import web

from tests.fakes import agents, files_api, groups, live_api, openai_compat, vertex
from tests.fakes.common import (
    STATE,
    STATUS_ERRORS,
    State,
    error,
    key_refusal,
    next_step,
    quota_error,
    record,
)

MODELS = [f"gemini-upstream-{i}" for i in range(5)]
GROUP_ACTIONS = frozenset(
    {"predict", "predictLongRunning", "batchGenerateContent", "asyncBatchEmbedContent"}
)


def answer(model: str, text: str, last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    }
    if last:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
        "modelVersion": model,
        "responseId": "fake-upstream-1",
    }


async def _stream(
    request: web.Request, model: str, step: dict[str, Any], sse: bool, state: State
) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.content_type = "text/event-stream" if sse else "application/json"
    await resp.prepare(request)
    chunks = int(step.get("chunks", 3))
    try:
        for i in range(chunks):
            if i and step.get("delay_ms"):
                await asyncio.sleep(step["delay_ms"] / 1000)
            if i == 1 and step.get("gate"):
                state.gate_waiting += 1
                await state.gate.wait()
                state.gate_waiting -= 1
            if "fail_after" in step and i == step["fail_after"]:
                assert request.transport is not None
                request.transport.close()
                return resp
            text = f"part{i} from {model}. "
            if step.get("echo_key"):  # a careless upstream: the key in a 200, cut by a read
                text += f"Key: {request.headers.get('x-goog-api-key')}"
            data = json.dumps(answer(model, text, i == chunks - 1))
            if step.get("echo_key"):
                frame = f"data: {data}\r\n\r\n".encode() if sse else data.encode()
                key = request.headers.get("x-goog-api-key", "").encode()
                cut = frame.index(key) + len(key) // 2
                if not sse:
                    await resp.write(b"[" if i == 0 else b"\r\n,")
                await resp.write(frame[:cut])
                await asyncio.sleep(0.05)
                await resp.write(frame[cut:])
            elif sse and step.get("split_usage"):
                # The event arrives in two reads, cut inside "usageMetadata".
                frame = f"data: {data}\r\n\r\n".encode()
                cut = frame.index(b"usageMetadata") + 6
                await resp.write(frame[:cut])
                await asyncio.sleep(0.05)
                await resp.write(frame[cut:])
            elif sse:
                await resp.write(f"data: {data}\r\n\r\n".encode())
            else:
                await resp.write((("[" if i == 0 else "\r\n,") + data).encode())
        if not sse:
            await resp.write(b"]")
        await resp.write_eof()
        state.counters["streams_finished"] += 1
    except (asyncio.CancelledError, ConnectionResetError):
        state.counters["streams_cancelled"] += 1
        raise
    return resp


def _empty_answer(model: str, kind: str) -> dict[str, Any]:
    usage = {"promptTokenCount": 8, "totalTokenCount": 8}
    if kind == "none":  # no candidate at all
        return {"usageMetadata": usage, "modelVersion": model}
    candidate = {"content": {"role": "model", "parts": []}, "finishReason": kind.upper()}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}


async def _empty(
    request: web.Request, model: str, step: dict[str, Any], action: str, state: State
) -> web.StreamResponse:
    answer_ = _empty_answer(model, str(step["empty"]))
    if action != "streamGenerateContent":
        return web.json_response(answer_)
    return await _events(request, [answer_])


async def _events(request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
    sse = request.query.get("alt") == "sse"
    resp = web.StreamResponse()
    resp.content_type = "text/event-stream" if sse else "application/json"
    await resp.prepare(request)
    for i, event in enumerate(events):
        data = json.dumps(event)
        await resp.write(
            f"data: {data}\r\n\r\n".encode()
            if sse
            else (("[" if i == 0 else "\r\n,") + data).encode()
        )
    if not sse:
        await resp.write(b"]")
    await resp.write_eof()
    return resp


async def _answer_parts(
    request: web.Request, model: str, action: str, parts: list[dict[str, Any]]
) -> web.StreamResponse:
    """An answer of ``parts`` (a function call, or the text after the last response)."""
    candidate = {"content": {"role": "model", "parts": parts}, "index": 0, "finishReason": "STOP"}
    usage = {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11}
    answer_ = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}
    if action != "streamGenerateContent":
        return web.json_response(answer_)
    return await _events(request, [answer_])


def _model_mismatch(model: str, action: str, body: bytes) -> str:
    """As Gemini does: a body that names a model must name the URL's model."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return "Invalid JSON payload received."
    if not isinstance(data, dict):
        return "Invalid JSON payload received. Expected an object."
    named: list[Any] = []
    if action == "embedContent" and "model" in data:
        named = [data["model"]]
    elif action == "batchEmbedContents":
        named = [r.get("model") for r in data.get("requests", []) if "model" in r]
    elif action == "countTokens" and "model" in data.get("generateContentRequest", {}):
        named = [data["generateContentRequest"]["model"]]
    elif action in ("batchGenerateContent", "asyncBatchEmbedContent"):
        batch = data.get("batch", {})
        inner = batch.get("inputConfig", {}).get("requests", {}).get("requests", [])
        named = [batch["model"]] if "model" in batch else []
        named += [r["request"]["model"] for r in inner if "model" in r.get("request", {})]
    wrong = [n for n in named if n != f"models/{model}"]
    if wrong:
        return f"* {action}: model '{wrong[0]}' does not match the URL's 'models/{model}'."
    return ""


async def model_call(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["target"].rpartition(":")
    body = await request.read()
    record(request, model, action, body)
    bad = request.app[STATE].bad_keys.get(request.headers.get("x-goog-api-key", ""))
    if bad:
        return key_refusal(request.headers.get("x-goog-api-key", ""), bad)
    return await serve_model(request, model, action, body)


async def serve_model(
    request: web.Request, model: str, action: str, body: bytes, endpoint: str = "aistudio"
) -> web.StreamResponse:
    """A model action's answer, as the Gemini API (or Vertex AI, ``endpoint``) gives it."""
    state = request.app[STATE]
    mismatch = _model_mismatch(model, action, body)
    if mismatch:
        return error(400, mismatch, "INVALID_ARGUMENT")
    data: dict[str, Any] = {}
    if action in ("generateContent", "streamGenerateContent", "countTokens"):
        data = json.loads(body or b"{}")
        refusal = files_api.check_binding(request, model, data) or groups.store_refusal(
            request, data
        )
        if refusal is not None:
            return refusal
        refused = agents.signature_refusal(model, data, endpoint)
        if refused:
            return error(400, refused, "INVALID_ARGUMENT")
    step = next_step(state, model)
    if step.get("drop"):
        assert request.transport is not None
        request.transport.close()
        return web.Response()
    if step.get("hang"):
        await asyncio.sleep(float(step["hang"]))
    if step.get("big"):  # a 200 of that many bytes of text
        return web.json_response(answer(model, "x" * int(step["big"]), True))
    if step.get("garbage"):  # a 200 that is no Gemini answer: an HTML page, say
        return web.Response(
            text="<html><body>Sign in to the network</body></html>", content_type="text/html"
        )
    status = int(step.get("status", 200))
    if status == 429 and endpoint == "vertex":  # dynamic shared quota: no RetryInfo, no details
        return error(429, "Resource exhausted. Please try again later.", "RESOURCE_EXHAUSTED")
    if status == 429:
        return quota_error(model, step)
    if status == 404:
        return error(
            404,
            f"models/{model} is not found for API version "
            f"{request.match_info.get('version', 'v1')}, or is not supported for "
            f"{action}.",
            "NOT_FOUND",
        )
    if status != 200:
        message, name = STATUS_ERRORS.get(status, ("Scripted failure.", "INTERNAL"))
        if step.get("echo_key"):  # a careless upstream that repeats the key it was given
            message += f" Key: {request.headers.get('x-goog-api-key')}"
        return error(status, message, name)
    if action in GROUP_ACTIONS:
        return await groups.model_action(request, model, action, json.loads(body or b"{}"))
    if step.get("empty"):  # a 200 with nothing in it
        return await _empty(request, model, step, action, state)
    tool_parts = agents.tool_parts(model, data, endpoint) if data else None
    if tool_parts is not None:
        return await _answer_parts(request, model, action, tool_parts)
    if action == "streamGenerateContent":
        return await _stream(request, model, step, request.query.get("alt") == "sse", state)
    if action == "countTokens":
        return web.json_response({"totalTokens": 8})
    if action == "batchEmbedContents":
        n = len(json.loads(body or b"{}").get("requests", []))
        return web.json_response({"embeddings": [{"values": [0.5, 0.25]}] * n})
    if action == "embedContent":
        return web.json_response({"embedding": {"values": [0.5, 0.25]}})
    text = f"Hello from {model}."
    if step.get("echo_key"):
        text += f" Key: {request.headers.get('x-goog-api-key')}"
    answered = answer(model, text, True)
    if "usage" in step:  # a scripted usageMetadata (cached, thoughts, tool-use, audio tokens)
        answered["usageMetadata"] = step["usage"]
    return web.json_response(answered)


def _model(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


async def list_models(request: web.Request) -> web.Response:
    request.app[STATE].requests.append(
        {
            "method": "GET",
            "path": request.path,
            "query": dict(request.query),
            "model": "",
            "headers": {k.lower(): v for k, v in request.headers.items()},
        }
    )
    size = int(request.query.get("pageSize", "50"))
    start = int(request.query.get("pageToken") or 0)
    page: dict[str, Any] = {"models": [_model(m) for m in MODELS[start : start + size]]}
    if start + size < len(MODELS):
        page["nextPageToken"] = str(start + size)
    return web.json_response(page)


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["target"]
    if name not in MODELS:
        return error(404, f"models/{name} is not found.", "NOT_FOUND")
    return web.json_response(_model(name))


async def control(request: web.Request) -> web.Response:
    state = request.app[STATE]
    what = request.match_info["what"]
    if what == "script":
        data = await request.json()
        state.scripts[data["model"]] = list(data["steps"])
    elif what == "quota":
        data = await request.json()
        state.quotas[data["model"]] = (int(data["per_minute"]), data.get("delay", "60s"))
    elif what == "keys":
        state.bad_keys = {k: int(v) for k, v in (await request.json()).items()}
    elif what == "release":
        state.gate.set()
        state.gate = asyncio.Event()
    elif what == "reset":
        files_api.reset(request.app)
        groups.reset(request.app)
        vertex.reset(request.app)
        state.scripts.clear()
        state.quotas.clear()
        state.bad_keys.clear()
        state.requests.clear()
        state.counters = dict.fromkeys(state.counters, 0)
        state.gate.set()
        state.gate = asyncio.Event()
    elif what == "requests":
        return web.json_response(state.requests)
    elif what == "state":
        return web.json_response({**state.counters, "gate_waiting": state.gate_waiting})
    return web.json_response({"ok": True})


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)  # Gemini takes 20 MB requests
    app[STATE] = State()
    version = "{version:v1|v1beta|v1alpha}"
    app.router.add_post(f"/{version}/models/{{target}}", model_call)
    app.router.add_get(f"/{version}/models", list_models)
    app.router.add_get(f"/{version}/models/{{target}}", get_model)
    vertex.add_routes(app)  # before the control route: its own control is /_vertex
    app.router.add_route("*", "/_{what}", control)
    openai_compat.add_routes(app)
    files_api.add_routes(app)
    groups.add_routes(app)
    live_api.add_routes(app)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="serve HTTPS with this certificate chain (PEM)")
    parser.add_argument("--key", help="and this private key")
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
        handler_cancellation=True,
        ssl_context=context,
    )
