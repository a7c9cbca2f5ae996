"""Cached contents: ``/{v}/cachedContents[/{id}]``, each pinned to (responder, key, model) and
owned by the client that made it.

``POST`` takes a chain or member name as its ``model``: the proxy walks the chain's members as
a request would (skipping cooling ones, moving on after a 429 or a 404), and makes the cache
with the first member and key that accept it, the body's ``model`` rewritten to that member. A
``generateContent`` that names the cache then goes to that key and that model only
(:mod:`proxy.resources.pinning`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
from aiohttp import web

from proxy.errors import ChainExhausted, InvalidArgument, NotFound, quota_details
from proxy.exchange import exchange_of
from proxy.resources.kinds import CACHE
from proxy.resources.owners import Holder, wall_time
from proxy.resources.pinning import names_resources, pin_for
from proxy.responders.gemini import GeminiResponder
from proxy.routing.quota import cooldown_for, read_quota
from proxy.state import Runtime, runtime_of
from proxy.surfaces import VERSIONS
from proxy.surfaces.bodies import check_body, without_key
from proxy.surfaces.gemini_api import check_model
from proxy.surfaces.held import (
    answer,
    client_headers,
    gemini_of,
    held_by_caller,
    list_page,
    open_upstream,
    read_body,
)
from proxy.wire import dump_body

FORWARDED = ("x-goog-api-client", "user-agent")


def _version(request: web.Request) -> str:
    return request.path.split("/")[1]


async def _remember(runtime: Runtime, body: bytes, holder: Holder) -> None:
    meta = orjson.loads(body)
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str) and name.startswith("cachedContents/"):
        expires = wall_time(meta.get("expireTime"))
        await runtime.owners.add(name, replace(holder, expires=expires))


async def create(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    client = exchange_of(request).client
    body = await request.read()
    data = check_body(body)
    named = data.get("model")
    if not isinstance(named, str) or not named:
        raise InvalidArgument("A cached content needs a 'model'.")
    model = named.removeprefix("models/")
    check_model(model)
    # Files in the contents must be the caller's, and the cache is made with the key that
    # holds them (their project is the only one that can read them).
    pin = await pin_for(data, client, runtime.owners) if names_resources(body) else None
    plan = runtime.resolver.resolve(model)
    tried: list[tuple[str, str]] = []
    soonest: float | None = None
    for member in plan.members:
        responder = runtime.responders[member.responder]
        if (
            not isinstance(responder, GeminiResponder)
            or not responder.studio
            or not responder.key_count
        ):
            continue
        if pin is not None and member.responder != pin.responder:
            continue
        key = runtime.keys.pick(responder, [member.model]) if pin is None else pin.key_index
        ref = (member.responder, member.model, responder.projects[key])
        left = runtime.cooldowns.peek(ref)
        if left > 0:
            tried.append((member.model, f"cooling {left:.0f}s"))
            soonest = left if soonest is None else min(soonest, left)
            continue
        data["model"] = f"models/{member.model}"
        resp = await open_upstream(
            responder,
            "POST",
            f"{_version(request)}/cachedContents",
            key,
            {"content-type": "application/json", **client_headers(request, FORWARDED)},
            dump_body(data),
        )
        body = await read_body(responder, resp)
        if resp.status == 429:
            signal = read_quota(body)
            wait = cooldown_for(
                signal,
                resp.headers.get("Retry-After"),
                runtime.config.rotation.cooldown_s,
                datetime.now(UTC),
            )
            rest = runtime.cooldowns.cool(ref, wait)
            tried.append((member.model, "429"))
            soonest = rest if soonest is None else min(soonest, rest)
            continue
        if resp.status == 404 and not plan.passthrough:
            tried.append((member.model, "not found"))
            continue
        if resp.status == 200:
            holder = Holder(CACHE.tag, responder.name, key, client, member.model)
            await _remember(runtime, body, holder)
        return answer(resp, body, {"x-l104-model": member.model})
    if soonest is not None:
        retry = max(1.0, soonest)
        raise ChainExhausted(
            f"No model of '{plan.name}' can take the cached content now; tried: "
            + ", ".join(f"{m} ({why})" for m, why in tried),
            retry_after_s=retry,
            details=quota_details(tried, round(retry)),
        )
    raise NotFound(f"No model of '{plan.name}' can hold a cached content.")


async def list_caches(request: web.Request) -> web.StreamResponse:
    return await list_page(request, CACHE.tag, "cachedContents", default_size=100)


async def one_cache(request: web.Request) -> web.StreamResponse:
    """``GET|PATCH|DELETE /{v}/cachedContents/{id}``, with the key that holds it."""
    runtime = runtime_of(request)
    name = f"cachedContents/{request.match_info['id']}"
    holder = await held_by_caller(request, name)
    responder = gemini_of(runtime, holder)
    body: bytes | None = None
    headers = client_headers(request, FORWARDED)
    url = f"{_version(request)}/{name}"
    if request.method == "PATCH":
        body = orjson.dumps(check_body(await request.read()))
        headers["content-type"] = "application/json"
        query = without_key(request.rel_url.raw_query_string)
        if query:
            url = f"{url}?{query}"  # updateMask=ttl, say
    resp = await open_upstream(responder, request.method, url, holder.key_index, headers, body)
    answered = await read_body(responder, resp)
    if resp.status == 200 and request.method == "DELETE":
        await runtime.owners.drop(name)
    elif resp.status == 200 and request.method == "PATCH":
        await _remember(runtime, answered, holder)
    elif resp.status in (403, 404):
        await runtime.owners.drop(name)  # expired or deleted upstream
    return answer(resp, answered, {})


def add_routes(app: web.Application) -> None:
    for version in VERSIONS:
        app.router.add_post(f"/{version}/cachedContents", create)
        app.router.add_get(f"/{version}/cachedContents", list_caches)
        for method in ("GET", "PATCH", "DELETE"):
            app.router.add_route(method, f"/{version}/cachedContents/{{id}}", one_cache)
