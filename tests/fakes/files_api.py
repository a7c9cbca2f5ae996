"""The fake upstream's Files API and cached contents, each bound to the key that made it.

As Gemini does: each key is its own Google project, so a file or cache made with key A answers
403 PERMISSION_DENIED ("…or it may not exist") to key B, and a cache used with a model other
than its own answers 400. Uploads follow the resumable protocol the SDKs use (``start`` answers
an absolute ``X-Goog-Upload-URL`` on this host; pieces are ``upload`` at their offset, the last
``upload, finalize``) or are one ``multipart`` request. Upload bytes are hashed and counted, not
kept (only the first MiB, for ``:download``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.common import error, record

KEEP = 1024 * 1024


@dataclass
class Upload:
    key: str
    meta: dict[str, Any]
    received: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    head: bytearray = field(default_factory=bytearray)


@dataclass
class Resources:
    files: dict[str, tuple[str, dict[str, Any], bytes]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    caches: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


RESOURCES: web.AppKey[Resources] = web.AppKey("resources", Resources)


def _key(request: web.Request) -> str:
    return request.headers.get("x-goog-api-key", "")


def denied(kind: str, name: str) -> web.Response:
    return error(
        403,
        f"You do not have permission to access the {kind} {name} or it may not exist.",
        "PERMISSION_DENIED",
    )


def _finish(request: web.Request, upload: Upload) -> dict[str, Any]:
    file_id = secrets.token_hex(6)
    version = request.match_info["version"]
    name = f"files/{file_id}"
    meta = {
        "name": name,
        "displayName": upload.meta.get("displayName", ""),
        "mimeType": upload.meta.get("mimeType", "application/octet-stream"),
        "sizeBytes": str(upload.received),
        "createTime": "2026-11-26T00:00:00Z",
        "expirationTime": "2026-11-28T00:00:00Z",
        "sha256Hash": base64.b64encode(upload.hasher.hexdigest().encode()).decode(),
        "uri": f"{request.scheme}://{request.host}/{version}/{name}",
        "state": "ACTIVE",
        "source": "UPLOADED",
    }
    request.app[RESOURCES].files[name] = (upload.key, meta, bytes(upload.head))
    return meta


async def _take(request: web.Request, upload: Upload) -> None:
    async for piece in request.content.iter_chunked(256 * 1024):
        upload.hasher.update(piece)
        upload.received += len(piece)
        if len(upload.head) < KEEP:
            upload.head.extend(piece[: KEEP - len(upload.head)])


async def upload(request: web.Request) -> web.StreamResponse:
    resources = request.app[RESOURCES]
    upload_id = request.query.get("upload_id")
    if upload_id is not None:
        return await _piece(request, resources, upload_id)
    key = _key(request)
    record(request, "", "files.upload", b"", protocol=request.headers.get("X-Goog-Upload-Protocol"))
    if not key:
        return error(401, "Missing API key.", "UNAUTHENTICATED")
    if request.headers.get("X-Goog-Upload-Protocol") == "multipart":
        reader = await request.multipart()
        first = await reader.next()
        assert isinstance(first, BodyPartReader)
        job = Upload(key, json.loads(await first.read()).get("file", {}))
        second = await reader.next()
        assert isinstance(second, BodyPartReader)
        while piece := await second.read_chunk():
            job.hasher.update(piece)
            job.received += len(piece)
            job.head.extend(piece[: max(0, KEEP - len(job.head))])
        return web.json_response({"file": _finish(request, job)})
    if request.headers.get("X-Goog-Upload-Command") != "start":
        return error(400, "Unknown upload command.", "INVALID_ARGUMENT")
    body = await request.read()
    new_id = secrets.token_urlsafe(12)
    resources.uploads[new_id] = Upload(key, json.loads(body or b"{}").get("file", {}))
    url = (
        f"{request.scheme}://{request.host}/upload/{request.match_info['version']}/files"
        f"?upload_id={new_id}&upload_protocol=resumable"
    )
    headers = {
        "X-Goog-Upload-URL": url,
        "X-Goog-Upload-Control-URL": url,  # as Gemini sends it: the same upload, by its id
        "X-Goog-Upload-Status": "active",
    }
    if b"reflect-key" in body:  # a careless upstream that echoes the key
        headers["X-Goog-Upload-Chunk-Granularity"] = f"262144; k={key}"
    return web.Response(headers=headers)


async def _piece(request: web.Request, resources: Resources, upload_id: str) -> web.Response:
    job = resources.uploads.get(upload_id)
    command = request.headers.get("X-Goog-Upload-Command", "")
    record(
        request,
        "",
        "files.piece",
        b"",
        command=command,
        offset=request.headers.get("X-Goog-Upload-Offset"),
    )
    if job is None:
        return error(404, "No such upload.", "NOT_FOUND")
    if int(request.headers.get("X-Goog-Upload-Offset", "-1")) != job.received:
        return error(400, "Offset does not match.", "INVALID_ARGUMENT")
    await _take(request, job)
    if "finalize" not in command:
        return web.Response(headers={"X-Goog-Upload-Status": "active"})
    del resources.uploads[upload_id]
    meta = _finish(request, job)
    return web.json_response({"file": meta}, headers={"X-Goog-Upload-Status": "final"})


async def list_files(request: web.Request) -> web.Response:
    record(request, "", "files.list", b"")
    key = _key(request)
    mine = [meta for k, meta, _ in request.app[RESOURCES].files.values() if k == key]
    size = int(request.query.get("pageSize", "10"))
    start = int(request.query.get("pageToken") or 0)
    page: dict[str, Any] = {"files": mine[start : start + size]}
    if start + size < len(mine):
        page["nextPageToken"] = str(start + size)
    return web.json_response(page)


async def one_file(request: web.Request) -> web.StreamResponse:
    target = request.match_info["target"]
    file_id, _, action = target.partition(":")
    name = f"files/{file_id}"
    record(request, "", f"files.{request.method.lower()}{':' + action if action else ''}", b"")
    held = request.app[RESOURCES].files.get(name)
    if held is None or held[0] != _key(request):
        return denied("File", file_id)
    if request.method == "DELETE":
        del request.app[RESOURCES].files[name]
        return web.json_response({})
    if action == "download":
        return web.Response(body=held[2], content_type=held[1]["mimeType"])
    return web.json_response(held[1])


def check_binding(request: web.Request, model: str, data: dict[str, Any]) -> web.Response | None:
    """A generate call naming a file or cache of another key (or a cache of another model)."""
    resources = request.app[RESOURCES]
    key = _key(request)
    for uri in _file_uris(data):
        name = "files/" + uri.rsplit("/files/", 1)[-1]
        held = resources.files.get(name)
        if held is None or held[0] != key:
            return denied("File", name.removeprefix("files/"))
    cached = data.get("cachedContent")
    if isinstance(cached, str):
        cache = resources.caches.get(cached)
        if cache is None or cache[0] != key:
            return denied("CachedContent", cached.removeprefix("cachedContents/"))
        if cache[1]["model"] != f"models/{model}":
            return error(
                400,
                f"Model used by GenerateContent request (models/{model}) and CachedContent "
                f"({cache[1]['model']}) has to be the same.",
                "INVALID_ARGUMENT",
            )
    return None


def _file_uris(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["fileUri"]] if isinstance(node.get("fileUri"), str) else []
        return found + [u for v in node.values() for u in _file_uris(v)]
    if isinstance(node, list):
        return [u for v in node for u in _file_uris(v)]
    return []


async def caches(request: web.Request) -> web.Response:
    """``/{v}/cachedContents[/{id}]``: create, list, get, patch, delete; bound to the key."""
    resources = request.app[RESOURCES]
    key = _key(request)
    cache_id = request.match_info.get("id")
    body = await request.read()
    record(request, "", f"caches.{request.method.lower()}", body)
    if cache_id is None and request.method == "POST":
        data = json.loads(body or b"{}")
        name = f"cachedContents/{secrets.token_hex(6)}"
        meta = {
            "name": name,
            "model": data.get("model", ""),
            "displayName": data.get("displayName", ""),
            "expireTime": "2026-11-26T01:00:00Z",
            "usageMetadata": {"totalTokenCount": 4096},
        }
        resources.caches[name] = (key, meta)
        return web.json_response(meta)
    if cache_id is None:
        mine = [meta for k, meta in resources.caches.values() if k == key]
        return web.json_response({"cachedContents": mine})
    name = f"cachedContents/{cache_id}"
    held = resources.caches.get(name)
    if held is None or held[0] != key:
        return denied("CachedContent", cache_id)
    if request.method == "DELETE":
        del resources.caches[name]
        return web.json_response({})
    if request.method == "PATCH":
        update = json.loads(body or b"{}")
        held[1]["expireTime"] = update.get("expireTime") or "2026-11-26T02:00:00Z"
    return web.json_response(held[1])


def add_routes(app: web.Application) -> None:
    app[RESOURCES] = Resources()
    version = "{version:v1|v1beta|v1alpha}"
    app.router.add_post(f"/upload/{version}/files", upload)
    app.router.add_get(f"/{version}/files", list_files)
    app.router.add_route("*", f"/{version}/files/{{target}}", one_file)
    app.router.add_route("*", f"/{version}/cachedContents", caches)
    app.router.add_route("*", f"/{version}/cachedContents/{{id}}", caches)


def reset(app: web.Application) -> None:
    resources = app[RESOURCES]
    resources.files.clear()
    resources.uploads.clear()
    resources.caches.clear()
