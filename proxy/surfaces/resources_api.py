"""Every other stateful Gemini resource, on one registry: batches, operations, file search stores
and their documents, tuned models, auth tokens, and what ``surface.passthrough`` opens.

A request that names a resource the caller holds (``GET /v1beta/batches/b1``,
``POST …/fileSearchStores/s:importFile``, ``GET …/models/veo/operations/o``) goes with the key
that holds it, or the resource it lies under. A resource the proxy knows of no client's, or of
another client, gets Gemini's answer for one that does not exist. ``POST`` to a collection
(``fileSearchStores``, ``auth_tokens``, ``tunedModels``) makes one with a key taken in turn.
What an answer makes is recorded (:mod:`proxy.resources.records`). Any other path under a version
is a 404 that names it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import InvalidArgument
from proxy.exchange import exchange_of
from proxy.names import valid_resource_path
from proxy.resources import records
from proxy.resources.kinds import BATCH, COLLECTIONS, LIST_FIELDS, OPENED, TOKEN, kind_of, parents
from proxy.resources.owners import Holder
from proxy.resources.pinning import denied, names_resources, pin_for
from proxy.responders.gemini import GeminiResponder
from proxy.state import Runtime, runtime_of
from proxy.surfaces import VERSIONS
from proxy.surfaces.bodies import check_body, without_key
from proxy.surfaces.gemini_api import api_version
from proxy.surfaces.held import (
    answer,
    client_headers,
    gemini_of,
    home_responder,
    list_page,
    open_upstream,
    read_body,
    results_reader,
)
from proxy.surfaces.tokens import token_setup
from proxy.surfaces.unserved import not_served

FORWARDED = ("x-goog-api-client", "user-agent")
# ``POST /{v}/{collection}`` makes one of these with a key taken in turn.
CREATED_BY_POST = frozenset({"fileSearchStores", "tunedModels", "auth_tokens", "authTokens"})
_BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})


def _target(tail: str) -> tuple[str, str]:
    """``batches/b1:cancel`` -> (``batches/b1``, ``cancel``); a name alone has no action."""
    last = tail.rfind("/")
    name, sep, action = tail[last + 1 :].partition(":")
    return (tail[: last + 1] + name, action) if sep else (tail, "")


def _url(request: web.Request, tail: str) -> str:
    url = f"{api_version(request)}/{tail}"
    query = without_key(request.rel_url.raw_query_string)
    return f"{url}?{query}" if query else url


async def _body(request: web.Request) -> tuple[bytes | None, dict[str, Any] | None]:
    if request.method not in _BODY_METHODS:
        return None, None
    body = await request.read()
    if not body.strip():
        return b"", None
    return body, check_body(body)


async def route(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    tail = request.match_info["tail"]
    if not valid_resource_path(tail) or "%" in request.raw_path.partition("?")[0]:
        # SECURITY: forwarded with a key, "x/../../y" would reach whatever "y" is upstream.
        raise InvalidArgument(f"Invalid resource name: '{tail[:200]}'.")
    name, action = _target(tail)
    method = request.method
    if method == "GET" and name in LIST_FIELDS and name in COLLECTIONS:
        return await list_page(
            request, COLLECTIONS[name].tag, LIST_FIELDS[name], default_size=_PAGE[name]
        )
    if method == "POST" and name in CREATED_BY_POST and not action:
        return await _create(request, runtime, tail, name)
    known = kind_of(name) is not None or bool(parents(name))
    opened = _passthrough(runtime, tail)
    found = None
    if known:
        found = await runtime.owners.holder_of(name)
    elif opened:
        found = await runtime.owners.holder_of(name, any_prefix=True)
    if found is not None:  # made through the proxy: its owner's, on its key
        if found[1].client != exchange_of(request).client:
            raise denied(name)
        return await _held(request, runtime, tail, name, found)
    if opened:  # not made here (or a collection): on a key taken in turn
        responder = home_responder(runtime)
        key = runtime.keys.pick(responder, ())
        return await _send(request, runtime, responder, key, tail, "", opened=True)
    if known:
        raise denied(name)
    raise not_served(
        request, "it is no Gemini endpoint the proxy knows (surface.passthrough can open a prefix)"
    )


_PAGE = {"batches": 50, "fileSearchStores": 10, "tunedModels": 50}


def _passthrough(runtime: Runtime, tail: str) -> bool:
    return any(
        tail == p.rstrip("/") or tail.startswith(p if p.endswith(("/", ":")) else f"{p}/")
        for p in runtime.config.surface.passthrough
    )


async def _held(
    request: web.Request,
    runtime: Runtime,
    tail: str,
    name: str,
    found: tuple[str, Holder],
) -> web.StreamResponse:
    """A call on a held resource (or one under it), with the key that holds it."""
    record, holder = found
    responder = gemini_of(runtime, holder)
    body, data = await _body(request)
    if data is not None and body is not None and names_resources(body):
        # importFile's fileName, say: it must be the caller's, and in the same project.
        pin = await pin_for(data, holder.client, runtime.owners)
        if pin is not None and (pin.responder, pin.key_index) != (
            holder.responder,
            holder.key_index,
        ):
            raise InvalidArgument(
                f"The request names resources held by another upstream API key than {record}'s; "
                "one request can only use resources held by one key."
            )
    resp = await open_upstream(
        responder,
        request.method,
        _url(request, tail),
        holder.key_index,
        _headers(request, body),
        body or None,
    )
    answered = await read_body(responder, resp)
    if resp.status == 200 and request.method == "DELETE" and name == record:
        await runtime.owners.drop(name)
    elif resp.status == 200:
        results = None
        if holder.kind == BATCH.tag and not holder.settled:  # only a batch reads results
            version = request.path.split("/", 2)[1]
            results = results_reader(responder, holder.key_index, version)
        await records.learn(
            runtime.owners,
            exchange_of(request),
            answered,
            holder,
            record if name == record else "",
            results,
        )
    elif resp.status in (403, 404) and request.method == "GET" and name == record:
        await runtime.owners.drop(name)  # expired or deleted upstream: it is gone
    return answer(resp, answered, {})


def _headers(request: web.Request, body: bytes | None) -> dict[str, str]:
    headers = client_headers(request, FORWARDED)
    if body:
        headers["content-type"] = "application/json"
    return headers


async def _create(
    request: web.Request, runtime: Runtime, tail: str, collection: str
) -> web.StreamResponse:
    """``POST /{v}/{collection}``: made with a key taken in turn (the key of the resources the
    body names, if it names some); an auth token's chain name becomes a member."""
    body, data = await _body(request)
    client = exchange_of(request).client
    pin = None
    if data is not None and body is not None and names_resources(body):
        pin = await pin_for(data, client, runtime.owners)
    responder = gemini_of(runtime, pin.responder) if pin is not None else home_responder(runtime)
    model = ""
    if data is not None and COLLECTIONS.get(collection) is TOKEN:
        responder, model = token_setup(runtime, data, responder, pin)
        body = orjson.dumps(data)
    key = (
        pin.key_index if pin is not None else runtime.keys.pick(responder, [model] if model else ())
    )
    return await _send(request, runtime, responder, key, tail, model, body)


async def _send(
    request: web.Request,
    runtime: Runtime,
    responder: GeminiResponder,
    key: int,
    tail: str,
    model: str,
    body: bytes | None = None,
    *,
    opened: bool = False,
) -> web.StreamResponse:
    """Send a request that makes something (or passes through) with ``key``; record what it
    made. ``opened``: under a passthrough prefix, where any ``name`` an answer gives is a
    resource of that key, owned by the caller."""
    if body is None:
        body, _ = await _body(request)
    resp = await open_upstream(
        responder, request.method, _url(request, tail), key, _headers(request, body), body or None
    )
    answered = await read_body(responder, resp)
    if resp.status == 200:
        holder = Holder("", responder.name, key, exchange_of(request).client, model)
        await records.learn(runtime.owners, exchange_of(request), answered, holder, "")
        if opened:
            await _record_opened(runtime, answered, holder)
    return answer(resp, answered, {})


async def _record_opened(runtime: Runtime, body: bytes, holder: Holder) -> None:
    try:
        meta = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or "/" not in name or name in runtime.owners.held:
        return
    if kind_of(name) is None and _passthrough(runtime, name):
        await runtime.owners.add(name, replace(holder, kind=OPENED.tag))


def add_routes(app: web.Application) -> None:
    """The catch-all of every version: registered last, so every served path wins over it."""
    for version in VERSIONS:
        app.router.add_route("*", f"/{version}/{{tail:.*}}", route)
