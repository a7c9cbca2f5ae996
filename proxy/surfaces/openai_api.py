"""Gemini's OpenAI-compatible endpoint, ``/v1beta/openai/``: chat completions (plain and
streamed), embeddings, and the models list.

Calls walk the same chains as the native surface (rotation, cooldowns, limits, ledger, spans,
metrics). The body's ``model`` is a chain, a member or a pass-through name; it is rewritten to
the member for each attempt. Errors come back in OpenAI's shape (see
:mod:`proxy.middleware.errors`), upstream errors included, whether Gemini sent an object or the
JSON array its compat endpoint uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from proxy import openai_wire
from proxy.agents.shaping import shaper
from proxy.errors import InvalidArgument, UpstreamUnavailable
from proxy.exchange import exchange_of
from proxy.responders import Call, Reply
from proxy.state import runtime_of
from proxy.surfaces import relay
from proxy.surfaces.bodies import check_body
from proxy.surfaces.gemini_api import FORWARDED, check_model, plan_for
from proxy.surfaces.held import client_headers
from proxy.surfaces.models_api import fetch_upstream, local_entries, upstream_of

log = logging.getLogger("l104.openai")
PREFIX = "/v1beta/openai"


def _model_of(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgument("'model' is required: a chain, a member or a Gemini model name.")
    model = model.removeprefix("models/")
    check_model(model)
    return model


def _setter(data: dict[str, Any]) -> Callable[[str], bool]:
    def set_model(model: str) -> bool:
        data["model"] = model
        return True

    return set_model


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _as_openai(reply: Reply) -> Reply:
    """A non-200 answer in OpenAI's error shape; a 200 as it is."""
    if reply.status == 200:
        return reply
    return Reply(reply.status, openai_wire.from_upstream_error(reply.status, reply.body))


async def _call(
    request: web.Request, action: str, body: bytes, data: dict[str, Any]
) -> web.StreamResponse:
    runtime = runtime_of(request)
    exchange = exchange_of(request)
    model = _model_of(data)
    exchange.requested = model
    body_for, repair, tools = shaper(action, body, data, _setter(data))
    call = Call(
        action=action,
        model=model,
        body=body,
        headers=client_headers(request, FORWARDED),
        body_for=body_for,
        hold=relay.hold_of(request),
        repair=repair,
        uses_tools=tools,
    )
    # extra_body.google.cached_content, a file: the caller's own, with the key holding it.
    plan = await plan_for(runtime, call, data, exchange.client)
    outcome = await runtime.rotator.run(plan, call)
    member = outcome.member
    exchange.answered_by(member.responder, member.model, outcome.key_index, outcome.attempts)
    headers = {"x-l104-model": outcome.member.model, "x-l104-attempts": str(outcome.attempts)}
    try:
        if outcome.reply.chunks is None:
            return relay.whole(_as_openai(outcome.reply), headers, exchange)
        return await relay.stream(request, outcome.reply, headers, True, exchange, frames="openai")
    finally:
        runtime.observer.finish(outcome.span, exchange, outcome.reply.body)
        runtime.rotator.settle(outcome, exchange.total_tokens or exchange.input_tokens)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    data = check_body(body)
    action = openai_wire.CHAT_STREAM if data.get("stream") is True else openai_wire.CHAT
    return await _call(request, action, body, data)


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    return await _call(request, openai_wire.EMBEDDINGS, body, check_body(body))


async def list_models(request: web.Request) -> web.StreamResponse:
    """The chains (and local models) first, then what the upstream lists."""
    runtime = runtime_of(request)
    entries = [
        openai_wire.model_entry(e["name"].removeprefix("models/")) for e in local_entries(runtime)
    ]
    upstream = upstream_of(runtime)
    if upstream is not None:
        reply = await fetch_upstream(upstream, "v1beta", "openai/models", {})
        if reply.status != 200:
            return relay.whole(_as_openai(reply), {})
        entries.extend(_listed(reply.body))
    return _json({"object": "list", "data": entries})


def _listed(body: bytes) -> list[dict[str, Any]]:
    try:
        listed = orjson.loads(body).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        raise UpstreamUnavailable("The upstream's model list was not JSON.") from None
    return [e for e in listed or [] if isinstance(e, dict)]


async def get_model(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    name = request.match_info["model"].removeprefix("models/")
    check_model(name)
    for entry in local_entries(runtime):
        if entry["name"] == f"models/{name}":
            return _json(openai_wire.model_entry(name))
    upstream = upstream_of(runtime)
    if upstream is None:
        return _json(openai_wire.model_entry(name))
    reply = await fetch_upstream(upstream, "v1beta", f"openai/models/{name}", {})
    return relay.whole(_as_openai(reply), {})


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/chat/completions", chat_completions)
    app.router.add_post(f"{PREFIX}/embeddings", embeddings)
    app.router.add_get(f"{PREFIX}/models", list_models)
    app.router.add_get(f"{PREFIX}/models/{{model:.+}}", get_model)
