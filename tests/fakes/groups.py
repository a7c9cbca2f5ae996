"""The fake upstream's newer groups, as Gemini serves them: batches, operations, File Search
stores and documents, Interactions, ephemeral tokens, Imagen's ``:predict`` and Veo's
``:predictLongRunning``.

Each key is its own Google project: every resource is held by the key that made it, and any
other key gets 403 PERMISSION_DENIED ("…or it may not exist"), as for files. A long-running
operation or batch is done from its second poll on. Interactions answer in their own shapes:
``usage.total_*``, and a stream of SSE events with ``event:`` lines ending in ``data: [DONE]``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.common import STATE, error, next_step, quota_error, record
from tests.fakes.files_api import RESOURCES, denied

USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}
INTERACTION_USAGE = {"total_input_tokens": 5, "total_output_tokens": 3, "total_tokens": 8}
STAMP = "2026-12-03T00:00:00Z"


@dataclass
class Held:
    key: str
    meta: dict[str, Any]
    polls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Groups:
    items: dict[str, Held] = field(default_factory=dict)


GROUPS: web.AppKey[Groups] = web.AppKey("groups", Groups)


def _key(request: web.Request) -> str:
    return request.headers.get("x-goog-api-key", "")


def _id() -> str:
    return secrets.token_hex(6)


def _label(name: str) -> str:
    labels = {
        "batches": "Batch",
        "operations": "Operation",
        "fileSearchStores": "FileSearchStore",
        "documents": "Document",
        "interactions": "Interaction",
        "tunedModels": "TunedModel",
    }
    return labels.get(name.split("/")[-2], "resource")


def _mine(request: web.Request, name: str) -> Held | web.Response:
    held = request.app[GROUPS].items.get(name)
    if held is None or held.key != _key(request):
        return denied(_label(name), name.split("/", 1)[-1])
    return held


def _file(request: web.Request, key: str, name: str, content: bytes, mime: str) -> None:
    version = "v1beta"
    meta = {
        "name": name,
        "mimeType": mime,
        "sizeBytes": str(len(content)),
        "uri": f"{request.scheme}://{request.host}/{version}/{name}",
        "state": "ACTIVE",
        "expirationTime": "2026-12-05T00:00:00Z",
    }
    request.app[RESOURCES].files[name] = (key, meta, content)


# -- model actions ----------------------------------------------------------------------------


async def model_action(
    request: web.Request, model: str, action: str, data: dict[str, Any]
) -> web.Response:
    groups = request.app[GROUPS]
    key = _key(request)
    if action == "predict":
        image = {"bytesBase64Encoded": "aW1hZ2U=", "mimeType": "image/png"}
        return web.json_response({"predictions": [image] * len(data.get("instances", [1]))})
    if action == "predictLongRunning":
        name = f"models/{model}/operations/{_id()}"
        groups.items[name] = Held(key, {"name": name}, extra={"video": True})
        return web.json_response({"name": name})
    # batchGenerateContent / asyncBatchEmbedContent
    config = data.get("batch", {}).get("inputConfig", {})
    source = config.get("fileName")
    if source is not None:
        held = request.app[RESOURCES].files.get(source)
        if held is None or held[0] != key:
            return denied("File", source.removeprefix("files/"))
    inline = config.get("requests", {}).get("requests", [])
    name = f"batches/{_id()}"
    meta = {
        "name": name,
        "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{model}",
            "displayName": data.get("batch", {}).get("displayName", ""),
            "state": "BATCH_STATE_PENDING",
            "createTime": STAMP,
        },
    }
    groups.items[name] = Held(key, meta, extra={"inline": len(inline), "file": bool(source)})
    return web.json_response(meta)


def _finish(request: web.Request, name: str, held: Held) -> None:
    """A long-running operation or batch is done from its second poll on."""
    held.polls += 1
    if held.polls < 2 or held.meta.get("done"):
        return
    held.meta["done"] = True
    if held.extra.get("video"):
        file_name = f"files/{_id()}"
        _file(request, held.key, file_name, b"video-bytes", "video/mp4")
        uri = f"{request.scheme}://{request.host}/v1beta/{file_name}:download?alt=media"
        held.meta["response"] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
            "PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]},
        }
        return
    if name.startswith("batches/"):
        metadata = held.meta["metadata"]
        metadata["state"] = "BATCH_STATE_SUCCEEDED"
        model = metadata["model"].removeprefix("models/")
        if held.extra.get("file"):
            out = f"files/batch-{_id()}"
            # Three answers, one longer than a piece the proxy reads (256 KiB).
            long = _candidate(model) | {"padding": "x" * 300_000}
            lines = [
                json.dumps({"key": str(i), "response": {"candidates": [c], "usageMetadata": USAGE}})
                for i, c in enumerate([_candidate(model), long, _candidate(model)])
            ]
            _file(request, held.key, out, "\n".join(lines).encode() + b"\n", "application/jsonl")
            metadata["output"] = {"responsesFile": out}
        else:
            answers = [
                {"response": {"candidates": [_candidate(model)], "usageMetadata": USAGE}}
                for _ in range(held.extra.get("inline", 0))
            ]
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": answers}}
        held.meta["response"] = metadata["output"]


def _candidate(model: str) -> dict[str, Any]:
    return {"content": {"role": "model", "parts": [{"text": f"Hello from {model}."}]}}


# -- one resource by name ---------------------------------------------------------------------


async def by_name(request: web.Request) -> web.StreamResponse:
    """``GET|DELETE|POST /{v}/{name}[:{action}]`` for batches, operations, stores, documents."""
    tail = request.match_info["tail"]
    body = await request.read()
    record(request, "", f"groups.{request.method.lower()}", body, name=tail)
    groups = request.app[GROUPS]
    key = _key(request)
    if tail in ("batches", "fileSearchStores") and request.method == "GET":
        field_name = "operations" if tail == "batches" else tail
        mine = [
            h.meta for n, h in groups.items.items() if n.startswith(f"{tail}/") and h.key == key
        ]
        mine = [m for m in mine if m["name"].count("/") == 1]
        return web.json_response({field_name: mine})
    if tail in ("fileSearchStores", "agents") and request.method == "POST":
        data = json.loads(body or b"{}")
        name = f"{tail}/{_id()}"
        meta = {"name": name, "displayName": data.get("displayName", ""), "createTime": STAMP}
        groups.items[name] = Held(key, meta)
        return web.json_response(meta)
    if tail == "tunedModels" and request.method == "POST":
        name = f"tunedModels/{_id()}"
        groups.items[name] = Held(key, {"name": name, "state": "ACTIVE"})
        op = f"{name}/operations/{_id()}"
        meta = {"name": op, "metadata": {"tunedModel": name}, "done": False}
        groups.items[op] = Held(key, meta)
        return web.json_response(meta)
    if tail.endswith("/documents") and request.method == "GET":
        store = tail.removesuffix("/documents")
        held = _mine(request, store)
        if isinstance(held, web.Response):
            return held
        docs = [h.meta for n, h in groups.items.items() if n.startswith(f"{store}/documents/")]
        return web.json_response({"documents": docs})
    name, _, action = tail.partition(":")
    held = _mine(request, name)
    if isinstance(held, web.Response):
        return held
    if request.method == "DELETE":
        for other in [n for n in groups.items if n == name or n.startswith(f"{name}/")]:
            del groups.items[other]
        return web.json_response({})
    if name.startswith("tunedModels/") and action == "generateContent":
        return web.json_response({"candidates": [_candidate(name)], "usageMetadata": USAGE})
    if action == "cancel":
        held.meta["metadata"]["state"] = "BATCH_STATE_CANCELLED"
        return web.json_response({})
    if action == "importFile":
        data = json.loads(body or b"{}")
        source = data.get("fileName", "")
        file = request.app[RESOURCES].files.get(source)
        if file is None or file[0] != key:
            return denied("File", source.removeprefix("files/"))
        return web.json_response(_document(groups, key, name, source))
    if request.method == "GET" and (name.startswith("batches/") or "/operations/" in name):
        _finish(request, name, held)
    return web.json_response(held.meta)


def _document(groups: Groups, key: str, store: str, source: str) -> dict[str, Any]:
    doc = f"{store}/documents/{_id()}"
    groups.items[doc] = Held(key, {"name": doc, "displayName": source, "state": "STATE_ACTIVE"})
    op = f"{store}/operations/{_id()}"
    meta = {"name": op, "done": True, "response": {"documentName": doc}}
    groups.items[op] = Held(key, meta)
    return meta


async def upload_to_store(request: web.Request) -> web.Response:
    """``POST /upload/{v}/fileSearchStores/{id}:uploadToFileSearchStore`` (resumable start), and
    its pieces (``?upload_id=``)."""
    groups = request.app[GROUPS]
    upload_id = request.query.get("upload_id")
    record(request, "", "stores.upload", b"", upload_id=upload_id)
    if upload_id is not None:
        job = groups.items.get(f"uploads/{upload_id}")
        if job is None:
            return error(404, "No such upload.", "NOT_FOUND")
        await request.read()
        if "finalize" not in request.headers.get("X-Goog-Upload-Command", ""):
            return web.Response(headers={"X-Goog-Upload-Status": "active"})
        del groups.items[f"uploads/{upload_id}"]
        doc = f"{job.meta['store']}/documents/{_id()}"
        groups.items[doc] = Held(job.key, {"name": doc, "state": "STATE_ACTIVE"})
        op = f"{job.meta['store']}/upload/operations/{_id()}"
        meta = {"name": op, "done": True, "response": {"documentName": doc}}
        groups.items[op] = Held(job.key, meta)
        return web.json_response(meta, headers={"X-Goog-Upload-Status": "final"})
    store = "fileSearchStores/" + request.match_info["target"].partition(":")[0]
    held = _mine(request, store)
    if isinstance(held, web.Response):
        return held
    new_id = _id()
    groups.items[f"uploads/{new_id}"] = Held(_key(request), {"store": store})
    url = (
        f"{request.scheme}://{request.host}{request.path}?upload_id={new_id}"
        "&upload_protocol=resumable"
    )
    return web.Response(headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})


def store_refusal(request: web.Request, data: dict[str, Any]) -> web.Response | None:
    """A generate call or interaction whose file search tool names another key's store."""
    for tool in data.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        search = tool.get("fileSearch") or tool.get("file_search") or tool
        names = search.get("file_search_store_names") or search.get("fileSearchStoreNames") or []
        for name in names:
            held = _mine(request, name)
            if isinstance(held, web.Response):
                return held
    return None


# -- ephemeral tokens ---------------------------------------------------------------------------


async def auth_tokens(request: web.Request) -> web.Response:
    body = await request.read()
    record(request, "", "auth_tokens.create", body)
    data = json.loads(body or b"{}")
    setup = data.get("bidiGenerateContentSetup") or {}
    name = f"auth_tokens/{secrets.token_urlsafe(16)}"
    meta = {"name": name, "expireTime": "2026-12-03T01:00:00Z"}
    request.app[GROUPS].items[name] = Held(_key(request), meta, extra={"model": setup.get("model")})
    return web.json_response(meta)


def token_model(request: web.Request, token: str) -> str | None:
    """The model a token is bound to ("" for none), or None if no such token exists."""
    held = request.app[GROUPS].items.get(token)
    if held is None or not token.startswith("auth_tokens/"):
        return None
    return str(held.extra.get("model") or "")


# -- interactions -------------------------------------------------------------------------------


def _interaction(model: str, ident: str, status: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ident,
        "status": status,
        "model": model,
        "role": "model",
        "created": STAMP,
        "updated": STAMP,
    }
    if status == "completed":
        out["outputs"] = [{"type": "text", "text": f"Hello from {model}."}]
        out["usage"] = INTERACTION_USAGE
    return out


def _events(interaction: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    model, ident = interaction["model"], interaction["id"]
    return [
        ("interaction.created", {"interaction": _interaction(model, ident, "in_progress")}),
        ("step.delta", {"index": 0, "delta": {"type": "text", "text": f"Hello from {model}."}}),
        ("interaction.completed", {"interaction": _interaction(model, ident, "completed")}),
    ]


async def _stream(
    request: web.Request,
    events: list[tuple[str, dict[str, Any]]],
    after: int,
    cut: bool = False,
) -> web.StreamResponse:
    """The events after ``after``; with ``cut``, the connection breaks after the first."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, (kind, data) in enumerate(events, 1):
        if i <= after:
            continue
        event = {"event_type": kind, "event_id": f"evt-{i}", **data}
        await resp.write(f"event: {kind}\ndata: {json.dumps(event)}\n\n".encode())
        if cut:
            assert request.transport is not None
            request.transport.close()
            return resp
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def interactions_create(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    groups = request.app[GROUPS]
    body = await request.read()
    data = json.loads(body or b"{}")
    model = str(data.get("model") or data.get("agent") or "")
    record(request, model, "interactions.create", body)
    bad = state.bad_keys.get(_key(request))
    if bad:
        return error(bad, "API key not valid.", "INVALID_ARGUMENT")
    previous = data.get("previous_interaction_id")
    if previous:
        held = _mine(request, f"interactions/{previous}")
        if isinstance(held, web.Response):
            return held
    refused = store_refusal(request, data)
    if refused is not None:
        return refused
    step = next_step(state, model)
    status = int(step.get("status", 200))
    if status == 429:
        return quota_error(model, step)
    if status != 200:
        return error(status, "Scripted failure.", "UNAVAILABLE" if status == 503 else "INTERNAL")
    ident = f"v1_{_id()}"
    background = data.get("background") is True
    final = _interaction(model, ident, "in_progress" if background else "completed")
    groups.items[f"interactions/{ident}"] = Held(_key(request), final, extra={"model": model})
    if data.get("stream") is True:
        return await _stream(request, _events(final), 0, cut=bool(step.get("cut")))
    return web.json_response(final)


async def interactions_one(request: web.Request) -> web.StreamResponse:
    name = f"interactions/{request.match_info['id']}"
    record(request, "", f"interactions.{request.method.lower()}", b"", name=name)
    held = _mine(request, name)
    if isinstance(held, web.Response):
        return held
    if request.method == "DELETE":
        del request.app[GROUPS].items[name]
        return web.json_response({})
    if request.path.endswith("/cancel"):
        held.meta["status"] = "cancelled"
        return web.json_response(held.meta)
    held.polls += 1
    if held.meta["status"] == "in_progress" and held.polls >= 2:
        held.meta = _interaction(held.extra["model"], held.meta["id"], "completed")
    if request.query.get("stream") == "true":
        after = int(request.query.get("last_event_id", "evt-0").removeprefix("evt-") or 0)
        return await _stream(request, _events(held.meta), after)
    return web.json_response(held.meta)


def add_routes(app: web.Application) -> None:
    app[GROUPS] = Groups()
    version = "{version:v1|v1beta|v1alpha}"
    app.router.add_post(f"/{version}/interactions", interactions_create)
    app.router.add_route("*", f"/{version}/interactions/{{id}}", interactions_one)
    app.router.add_post(f"/{version}/interactions/{{id}}/cancel", interactions_one)
    app.router.add_post(f"/{version}/auth_tokens", auth_tokens)
    app.router.add_post(f"/upload/{version}/fileSearchStores/{{target}}", upload_to_store)
    for prefix in (
        "batches",
        "fileSearchStores",
        "agents",
        "tunedModels",
        "models/[^/]+/operations",
    ):
        app.router.add_route("*", f"/{version}/{{tail:{prefix}(?:/.*)?}}", by_name)


def reset(app: web.Application) -> None:
    app[GROUPS].items.clear()
