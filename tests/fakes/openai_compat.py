"""The fake upstream's copy of Gemini's OpenAI-compatible endpoint, ``/v1beta/openai/``.

As Gemini does: the key comes as ``Authorization: Bearer``, the model in the body (no
``models/`` prefix needed), errors come as a JSON *array* ``[{"error": …}]``, and streams are
OpenAI SSE ending in ``data: [DONE]``. The same scripts as the native surface apply, by model.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.fakes import agents
from tests.fakes.common import STATE, STATUS_ERRORS, error, next_step, quota_error, record

UPSTREAM_MODELS = ["gemini-upstream-0", "gemini-upstream-1"]


def _completion_chunk(model: str, text: str, last: bool) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": text},
                "finish_reason": "stop" if last else None,
            }
        ],
    }


def _refusal(request: web.Request) -> web.Response | None:
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return error(401, "Missing bearer token.", "UNAUTHENTICATED", array=True)
    return None


async def _body_and_step(
    request: web.Request, action: str
) -> tuple[str, dict[str, Any], web.Response | None]:
    body = await request.read()
    data = json.loads(body or b"{}")
    model = str(data.get("model", "")).removeprefix("models/")
    record(request, model, action, body, bearer=request.headers.get("Authorization", "")[7:])
    refusal = _refusal(request)
    if refusal is not None:
        return model, {}, refusal
    step = next_step(request.app[STATE], model)
    status = int(step.get("status", 200))
    if status == 429:
        return model, step, quota_error(model, step, array=True)
    if status != 200:
        message, name = STATUS_ERRORS.get(status, ("Scripted failure.", "INTERNAL"))
        return model, step, error(status, message, name, array=True)
    return model, {**step, "stream": data.get("stream") is True, "data": data}, None


def _tool_answer(model: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """As Gemini's endpoint answers a request with tools: the next call (a signature from a
    Gemini 3 model in ``extra_content``), or the text once every tool answered."""
    functions = agents.declared_args(data)
    names = list(functions)
    if not names:
        return None
    messages = data.get("messages") or []
    start = max((i + 1 for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    done = [m.get("content") for m in messages[start:] if m.get("role") == "tool"]
    answer = _completion_chunk(model, "", True)
    answer["object"] = "chat.completion"
    choice = answer["choices"][0]
    if len(done) < len(names):
        call: dict[str, Any] = {
            "id": f"call_{len(done)}",
            "type": "function",
            "function": {
                "name": names[len(done)],
                "arguments": json.dumps(functions[names[len(done)]]),
            },
        }
        if agents.checks_signatures(model):
            signature = agents.signature_for(model, len(done))
            call["extra_content"] = {"google": {"thought_signature": signature}}
        choice["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice["finish_reason"] = "tool_calls"
    else:
        choice["message"] = {"role": "assistant", "content": f"done on {model}: {done}"}
    del choice["delta"]
    answer["usage"] = {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
    return answer


async def chat(request: web.Request) -> web.StreamResponse:
    model, step, refusal = await _body_and_step(request, "chat")
    if refusal is not None:
        return refusal
    data = step.pop("data", {})
    refused = agents.openai_signature_refusal(model, data)
    if refused:
        return error(400, refused, "INVALID_ARGUMENT", array=True)
    tools = _tool_answer(model, data)
    if tools is not None and not step["stream"]:
        return web.json_response(tools)
    if not step["stream"]:
        answer = _completion_chunk(model, f"Hello from {model}.", True)
        answer["object"] = "chat.completion"
        choice = answer["choices"][0]
        choice["message"] = choice.pop("delta")
        answer["usage"] = {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
        return web.json_response(answer)
    resp = web.StreamResponse()
    resp.content_type = "text/event-stream"
    await resp.prepare(request)
    chunks = int(step.get("chunks", 3))
    for i in range(chunks):
        if "fail_after" in step and i == step["fail_after"]:
            assert request.transport is not None
            request.transport.close()
            return resp
        if i and step.get("delay_ms"):
            await asyncio.sleep(step["delay_ms"] / 1000)
        chunk = _completion_chunk(model, f"part{i} from {model}. ", i == chunks - 1)
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def embeddings(request: web.Request) -> web.StreamResponse:
    model, _, refusal = await _body_and_step(request, "embeddings")
    if refusal is not None:
        return refusal
    data = json.loads(await request.read())
    inputs = data["input"] if isinstance(data["input"], list) else [data["input"]]
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.5, 0.25]}
                for i in range(len(inputs))
            ],
            "model": model,
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )


def _model(name: str) -> dict[str, Any]:
    return {"id": f"models/{name}", "object": "model", "created": 0, "owned_by": "google"}


async def list_models(request: web.Request) -> web.Response:
    record(request, "", "models", b"")
    refusal = _refusal(request)
    return refusal or web.json_response(
        {"object": "list", "data": [_model(m) for m in UPSTREAM_MODELS]}
    )


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["name"].removeprefix("models/")
    record(request, name, "model", b"")
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    if name not in UPSTREAM_MODELS:
        return error(404, f"Model {name} not found.", "NOT_FOUND", array=True)
    return web.json_response(_model(name))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1beta/openai/chat/completions", chat)
    app.router.add_post("/v1beta/openai/embeddings", embeddings)
    app.router.add_get("/v1beta/openai/models", list_models)
    app.router.add_get("/v1beta/openai/models/{name:.+}", get_model)
