"""Calls for the stateful resources (files, cached contents) with the key that holds each:
opening the upstream call, reading and relaying its answer, the owner check, and listing a
client's own resources page by page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy.errors import (
    AttemptFailed,
    InvalidArgument,
    NotFound,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.exchange import exchange_of
from proxy.resources import records
from proxy.resources.owners import Holder
from proxy.resources.pinning import denied
from proxy.responders.gemini import GeminiResponder
from proxy.state import Runtime, runtime_of

PIECE = 256 * 1024

log = logging.getLogger("l104.resources")


def gemini_of(runtime: Runtime, holder: Holder | str) -> GeminiResponder:
    """The gemini responder that holds a resource (a holder, or the responder's name)."""
    name = holder if isinstance(holder, str) else holder.responder
    responder = runtime.responders.get(name)
    if not isinstance(responder, GeminiResponder) or not responder.studio:
        raise NotFound(f"The responder '{name}' no longer serves this resource.")
    return responder


def home_responder(runtime: Runtime) -> GeminiResponder:
    """The responder that holds new resources made with no model (a file, a store, a token):
    the first of the default chain's members on the Gemini API (Vertex AI holds none)."""
    for member in runtime.config.default_chain.members:
        responder = runtime.responders[member.responder]
        if isinstance(responder, GeminiResponder) and responder.studio and responder.key_count:
            return responder
    name = runtime.config.default_chain.members[0].responder
    raise NotFound(
        f"L104 Proxy keeps upstream resources on the Gemini API only; the default chain has no "
        f"member there (its first is on '{name}')."
    )


def client_headers(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    """The client's headers of ``names`` that it sent (one lookup each)."""
    headers = request.headers
    return {h: v for h in names if (v := headers.get(h)) is not None}


async def open_upstream(
    responder: GeminiResponder,
    method: str,
    url: str,
    key_index: int | None,
    headers: dict[str, str],
    body: bytes | AsyncIterator[bytes] | None = None,
    *,
    absolute: bool = False,
) -> aiohttp.ClientResponse:
    try:
        return await responder.forward(
            method, url, key_index, headers=headers, body=body, absolute=absolute
        )
    except AttemptFailed as failed:
        if failed.kind == "timeout":
            raise UpstreamTimeout(f"The upstream did not answer: {failed.detail}.") from None
        raise UpstreamUnavailable(f"The upstream did not answer: {failed.detail}.") from None


async def read_body(responder: GeminiResponder, resp: aiohttp.ClientResponse) -> bytes:
    """The whole answer (keys scrubbed from an error); the connection is released."""
    try:
        body = await resp.read()
    except (aiohttp.ClientError, TimeoutError):
        raise UpstreamUnavailable("The upstream's answer broke off.") from None
    finally:
        resp.release()
    return body if resp.status == 200 else responder.scrub(body)


async def relay_open(request: web.Request, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """A 200 relayed as it comes (a download, a resumed stream), its type and length kept."""
    out = web.StreamResponse(status=200)
    out.headers["Content-Type"] = resp.headers.get("Content-Type", "application/octet-stream")
    if "Content-Length" in resp.headers:
        out.content_length = int(resp.headers["Content-Length"])
    try:
        await out.prepare(request)
        async for piece in resp.content.iter_chunked(PIECE):
            await out.write(piece)
        await out.write_eof()
    finally:
        resp.release()
    return out


def results_reader(
    responder: GeminiResponder, key_index: int, version: str
) -> records.ResultsReader:
    """Reads a finished batch's results file with the key that holds the batch (the file is in
    its project too), a piece at a time."""

    async def read(name: str) -> records.Usage | None:
        try:
            resp = await open_upstream(
                responder, "GET", f"{version}/{name}:download?alt=media", key_index, {}
            )
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            log.info("a batch's results (%s) could not be read now: %s", name, exc.message)
            return None
        try:
            if resp.status != 200:
                log.info("a batch's results (%s) answered %d", name, resp.status)
                return None
            return await records.results_usage(resp.content.iter_chunked(PIECE))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("a batch's results (%s) broke off: %s", name, type(exc).__name__)
            return None
        finally:
            resp.release()

    return read


def answer(resp: aiohttp.ClientResponse, body: bytes, headers: dict[str, str]) -> web.Response:
    out = web.Response(status=resp.status, body=body, headers=headers)
    out.headers["Content-Type"] = resp.headers.get("Content-Type", "application/json")
    return out


async def held_by_caller(request: web.Request, name: str) -> Holder:
    """The holder of ``name`` (its own record, or the resource it lies under) if the caller
    owns it; else Gemini's answer for a resource that does not exist (403), so another client
    learns nothing."""
    found = await runtime_of(request).owners.holder_of(name)
    if found is None or found[1].client != exchange_of(request).client:
        raise denied(name)
    return found[1]


async def list_page(
    request: web.Request, kind: str, field: str, *, default_size: int
) -> web.StreamResponse:
    """A page of the caller's own resources of ``kind``, each read with its own key, as
    Gemini lists them (``{field: [...], "nextPageToken"}``). Resources gone upstream are
    forgotten."""
    runtime = runtime_of(request)
    size_text = request.query.get("pageSize", str(default_size))
    token = request.query.get("pageToken", "0") or "0"
    if not size_text.isdigit() or not token.isdigit():
        raise InvalidArgument("Invalid pageSize or pageToken.")
    size = min(max(int(size_text), 1), 1000)
    start = int(token)
    await runtime.owners.refresh()  # with store.shared: what other hosts made too
    names = runtime.owners.of_client(exchange_of(request).client, kind)
    version = request.path.split("/")[1]
    metas = await asyncio.gather(*(_meta(runtime, version, n) for n in names[start : start + size]))
    page: dict[str, Any] = {field: [m for m in metas if m is not None]}
    if start + size < len(names):
        page["nextPageToken"] = str(start + size)
    return web.Response(body=orjson.dumps(page), content_type="application/json")


async def _meta(runtime: Runtime, version: str, name: str) -> dict[str, Any] | None:
    holder = runtime.owners.held.get(name)
    if holder is None:
        return None
    responder = gemini_of(runtime, holder)
    resp = await open_upstream(responder, "GET", f"{version}/{name}", holder.key_index, {})
    body = await read_body(responder, resp)
    if resp.status in (403, 404):
        await runtime.owners.drop(name)
        return None
    if resp.status != 200:
        raise UpstreamUnavailable(f"The upstream answered {resp.status} for {name}.")
    # A listed batch may name its results file: held from now on, like one read alone (its
    # usage waits for the batch's own read, so that one ledger row carries it).
    await records.learn(runtime.owners, None, body, holder, "")
    meta: dict[str, Any] = orjson.loads(body)
    return meta
