"""The Files API: uploads (resumable and multipart), list, get, delete and download, each file
pinned to the key that uploaded it and owned by the client that did.

Uploads go to the responder of the default chain's first member, with a key taken in turn
(:class:`~proxy.routing.keys.KeyPicker`). The resumable ``start`` is answered with an
``X-Goog-Upload-URL`` on the proxy's own origin, so the pieces come back through the proxy to
the same upload; their bytes stream through without being held. A file of another client, or
one the proxy does not know, gets Gemini's own answer for a file that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
from aiohttp import web

from proxy.errors import (
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
)
from proxy.exchange import exchange_of
from proxy.middleware.auth import UPLOAD_TOKEN
from proxy.resources import records
from proxy.resources.kinds import FILE
from proxy.resources.owners import Holder, wall_time
from proxy.resources.uploads import UploadSession
from proxy.responders.gemini import GeminiResponder
from proxy.state import Runtime, runtime_of
from proxy.surfaces import VERSIONS
from proxy.surfaces.bodies import without_key
from proxy.surfaces.held import (
    answer,
    client_headers,
    gemini_of,
    held_by_caller,
    home_responder,
    list_page,
    open_upstream,
    read_body,
    relay_open,
)
from proxy.surfaces.origin import public_base

PIECE = 256 * 1024
# What goes upstream from a client's upload request, and what comes back to it.
_UPLOAD_IN = (
    "content-type",
    "x-goog-upload-protocol",
    "x-goog-upload-command",
    "x-goog-upload-offset",
    "x-goog-upload-header-content-length",
    "x-goog-upload-header-content-type",
    "x-goog-api-client",
    "user-agent",
)


def _upload_headers(
    request: web.Request, resp: aiohttp.ClientResponse, responder: GeminiResponder, token: str
) -> dict[str, str]:
    """The upstream's ``X-Goog-Upload-*`` headers for the client: every URL among them made the
    proxy's own (with the upload's token), anything else with the keys scrubbed."""
    out = {}
    for name, value in resp.headers.items():
        if not name.lower().startswith("x-goog-upload-"):
            continue
        if "://" in value:
            value = _own_url(request, value, token)
        out[name] = responder.scrub_text(value)
    return out


def _own_url(request: web.Request, upstream_url: str, token: str) -> str:
    """The proxy's URL for the pieces of an upload at ``upstream_url``."""
    version = request.path.split("/")[2]
    query = without_key(urlsplit(upstream_url).query)
    base = public_base(request, runtime_of(request).config.listen)
    return f"{base}/upload/{version}/files?{query}&{UPLOAD_TOKEN}={token}"


def _limit(request: web.Request, size_header: str, extra: int = 0) -> None:
    limit = runtime_of(request).config.limits.max_upload_bytes
    size = request.headers.get(size_header, "")
    if size.isdigit() and int(size) + extra > limit:
        raise PayloadTooLarge(f"The upload is larger than the proxy allows ({limit} bytes).")


async def _stream_body(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for piece in request.content.iter_chunked(PIECE):
        seen += len(piece)
        if seen > limit:
            raise PayloadTooLarge(f"The upload is larger than the proxy allows ({limit} bytes).")
        yield piece


async def _remember(runtime: Runtime, body: bytes, responder: str, key: int, client: str) -> None:
    """Record what a finished upload made: a file (``{"file": {…}}``), or a store upload's
    operation."""
    try:
        meta = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    file = meta.get("file") if isinstance(meta, dict) else None
    name = file.get("name") if isinstance(file, dict) else None
    if isinstance(file, dict) and isinstance(name, str) and name.startswith("files/"):
        expires = wall_time(file.get("expirationTime"))
        await runtime.owners.add(name, Holder(FILE.tag, responder, key, client, expires=expires))
    elif records.made(meta) is not None:
        await records.learn(runtime.owners, None, body, Holder("", responder, key, client), "")


async def upload(request: web.Request) -> web.StreamResponse:
    """``POST /upload/{v}/files``: a resumable ``start``, a piece of one, or a multipart upload."""
    upload_id = request.query.get("upload_id")
    if upload_id is not None:
        return await _piece(request, upload_id)
    runtime = runtime_of(request)
    responder = home_responder(runtime)
    models = [m.model for m in runtime.config.default_chain.members]
    key = runtime.keys.pick(responder, models)
    version = request.path.split("/")[2]
    return await _begin(request, responder, key, f"upload/{version}/files")


async def store_upload(request: web.Request) -> web.StreamResponse:
    """``POST /upload/{v}/fileSearchStores/{id}:uploadToFileSearchStore``: as a file's upload,
    with the key that holds the store (the caller's, or Gemini's answer for a missing one)."""
    store_id, _, action = request.match_info["target"].partition(":")
    if action != "uploadToFileSearchStore":
        raise NotFound(f"Method not found: fileSearchStores/{store_id[:64]}:{action[:40]}.")
    holder = await held_by_caller(request, f"fileSearchStores/{store_id}")
    responder = gemini_of(runtime_of(request), holder)
    return await _begin(request, responder, holder.key_index, request.path.lstrip("/"))


async def _begin(
    request: web.Request, responder: GeminiResponder, key: int, path: str
) -> web.StreamResponse:
    """An upload's first request to ``path`` with ``key``: the whole of a multipart one, the
    ``start`` of a resumable one (its pieces come back to :func:`_piece`)."""
    runtime = runtime_of(request)
    client = exchange_of(request).client
    headers = client_headers(request, _UPLOAD_IN)
    protocol = request.headers.get("X-Goog-Upload-Protocol", "")
    if protocol == "multipart":
        _limit(request, "Content-Length")
        limit = runtime.config.limits.max_upload_bytes
        resp = await open_upstream(
            responder, "POST", path, key, headers, _stream_body(request, limit)
        )
        body = await read_body(responder, resp)
        if resp.status == 200:
            await _remember(runtime, body, responder.name, key, client)
        return answer(resp, body, _upload_headers(request, resp, responder, ""))
    if protocol != "resumable" or request.headers.get("X-Goog-Upload-Command") != "start":
        raise InvalidArgument("An upload is 'X-Goog-Upload-Protocol: resumable' or 'multipart'.")
    _limit(request, "X-Goog-Upload-Header-Content-Length")
    start = await request.read()
    resp = await open_upstream(responder, "POST", path, key, headers, start)
    body = await read_body(responder, resp)
    upstream_url = resp.headers.get("X-Goog-Upload-URL", "")
    upstream_id = parse_qs(urlsplit(upstream_url).query).get("upload_id", [""])[0]
    session = UploadSession(responder.name, key, client, upstream_url)
    if resp.status == 200 and upstream_id:
        # The pieces must come back here, to the same key: every URL is the proxy's own.
        runtime.uploads.start(upstream_id, session)
    return answer(resp, body, _upload_headers(request, resp, responder, session.token))


async def _piece(request: web.Request, upload_id: str) -> web.StreamResponse:
    runtime = runtime_of(request)
    # The token is the piece's authority (client auth checked it too, and named the client).
    session = runtime.uploads.authorise(upload_id, request.query.get(UPLOAD_TOKEN, ""))
    if session is None:
        raise NotFound("No such upload: it finished, or the proxy never started it.")
    exchange_of(request).client = session.client
    offset = request.headers.get("X-Goog-Upload-Offset", "0")
    _limit(request, "Content-Length", int(offset) if offset.isdigit() else 0)
    responder = gemini_of(runtime, session.responder)
    headers = client_headers(request, _UPLOAD_IN)
    if "Content-Length" in request.headers:
        headers["content-length"] = request.headers["Content-Length"]
    limit = runtime.config.limits.max_upload_bytes
    resp = await open_upstream(
        responder,
        "POST",
        session.upstream_url,
        None,
        headers,
        _stream_body(request, limit),
        absolute=True,
    )
    body = await read_body(responder, resp)
    status = resp.headers.get("X-Goog-Upload-Status", "")
    if status == "final" and resp.status == 200:
        runtime.uploads.finish(upload_id)
        await _remember(runtime, body, session.responder, session.key_index, session.client)
    elif status != "active":
        runtime.uploads.finish(upload_id)
    return answer(resp, body, _upload_headers(request, resp, responder, session.token))


async def one_file(request: web.Request) -> web.StreamResponse:
    """``GET|DELETE /{v}/files/{id}`` and ``GET /{v}/files/{id}:download``, with its own key."""
    runtime = runtime_of(request)
    file_id, _, action = request.match_info["target"].partition(":")
    if action not in ("", "download") or (action and request.method != "GET"):
        raise NotFound(f"Method not found: files/{file_id[:64]}:{action[:32]}.")
    name = f"files/{file_id}"
    holder = await held_by_caller(request, name)
    responder = gemini_of(runtime, holder)
    version = request.path.split("/")[1]
    url = f"{version}/files/{request.match_info['target']}"
    query = without_key(request.rel_url.raw_query_string)
    if query:
        url = f"{url}?{query}"
    headers = client_headers(request, ("x-goog-api-client",))
    resp = await open_upstream(responder, request.method, url, holder.key_index, headers)
    if action == "download" and resp.status == 200:
        return await relay_open(request, resp)
    body = await read_body(responder, resp)
    if request.method == "DELETE" and resp.status == 200:
        await runtime.owners.drop(name)
    elif resp.status in (403, 404):
        await runtime.owners.drop(name)  # expired or deleted upstream: it is gone
    return answer(resp, body, {})


async def list_files(request: web.Request) -> web.StreamResponse:
    """``GET /{v}/files``: only the calling client's files, each read with its own key."""
    return await list_page(request, FILE.tag, "files", default_size=10)


def add_routes(app: web.Application) -> None:
    for version in VERSIONS:
        app.router.add_post(f"/upload/{version}/files", upload)
        app.router.add_post(f"/upload/{version}/fileSearchStores/{{target}}", store_upload)
        app.router.add_get(f"/{version}/files", list_files)
        app.router.add_route("GET", f"/{version}/files/{{target}}", one_file)
        app.router.add_route("DELETE", f"/{version}/files/{{target}}", one_file)
