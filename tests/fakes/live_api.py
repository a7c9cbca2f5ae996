"""The fake upstream's Live API, as Gemini answers it.

The key comes as ``x-goog-api-key`` (or ``?key=``); the first frame is ``setup`` naming
``models/{model}``; the answer is ``setupComplete`` as a binary JSON frame (as Gemini sends
them). The model's script decides the setup: ``{"status": 429}`` closes with 1011 and Gemini's
quota text, ``{"status": 404}`` closes with 1008, and the model ``live-upgrade`` scripts the
upgrade itself (``{"status": 429}`` refuses it with an HTTP 429). After setup, a
``client_content`` / ``clientContent`` turn is answered with text, then ``turnComplete`` and
``usageMetadata``; a binary frame that is not JSON (audio) comes back as it is.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import groups
from tests.fakes.common import STATE, error, next_step, record

UPGRADE = "live-upgrade"


def _reply(model: str, frame: dict[str, Any]) -> list[dict[str, Any]]:
    content = frame.get("client_content") or frame.get("clientContent")
    if content is None:
        return []
    return [
        {"serverContent": {"modelTurn": {"parts": [{"text": f"Hello from {model}."}]}}},
        {
            "serverContent": {"turnComplete": True},
            "usageMetadata": {
                "promptTokenCount": 5,
                "responseTokenCount": 3,
                "totalTokenCount": 8,
            },
        },
    ]


async def live(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    key = request.headers.get("x-goog-api-key") or request.query.get("key", "")
    record(request, "", "live.upgrade", b"", key=key)
    if not key:
        return error(401, "Missing API key.", "UNAUTHENTICATED")
    constrained = request.path.endswith("Constrained")
    bound = groups.token_model(request, key)
    if constrained != (bound is not None):  # a token only on the constrained socket, and back
        return error(401, "The credential does not fit this endpoint.", "UNAUTHENTICATED")
    if int(next_step(state, UPGRADE).get("status", 200)) == 429:
        return error(429, "You exceeded your current quota.", "RESOURCE_EXHAUSTED")
    ws = web.WebSocketResponse(max_msg_size=32 * 1024 * 1024)
    await ws.prepare(request)
    first = await ws.receive()
    setup = json.loads(first.data)["setup"]
    model = setup["model"].removeprefix("models/")
    record(request, model, "live.setup", json.dumps(setup).encode(), key=key)
    if bound and bound != setup["model"]:
        await ws.close(code=1008, message=b"The setup does not match the token's constraints.")
        return ws
    status = int(next_step(state, model).get("status", 200))
    if status == 429:
        await ws.close(
            code=1011,
            message=b"You exceeded your current quota, please check your plan and billing details.",
        )
        return ws
    if status == 404:
        await ws.close(code=1008, message=f"models/{model} is not found.".encode())
        return ws
    if status == 403:  # a careless upstream that repeats the key in its close reason
        await ws.close(code=1008, message=f"bad key {key}".encode()[:123])
        return ws
    await ws.send_bytes(json.dumps({"setupComplete": {}}).encode())
    code = 0
    try:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.CLOSE:
                code = int(msg.data)
                break
            if msg.type == WSMsgType.BINARY:
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    await ws.send_bytes(msg.data)  # audio: back as it came
                    continue
            elif msg.type == WSMsgType.TEXT:
                frame = json.loads(msg.data)
            else:
                break
            record(request, model, "live.frame", json.dumps(frame).encode(), key=key)
            for out in _reply(model, frame):
                await ws.send_bytes(json.dumps(out).encode())
    finally:
        state.counters["live_closed"] = state.counters.get("live_closed", 0) + 1
        state.counters["live_close_code"] = code
    return ws


def add_routes(app: web.Application) -> None:
    for version in ("v1", "v1beta", "v1alpha"):
        for name in ("BidiGenerateContent", "BidiGenerateContentConstrained"):
            app.router.add_get(
                f"/ws/google.ai.generativelanguage.{version}.GenerativeService.{name}", live
            )
