"""The Interactions API: ``POST /{v}/interactions``, ``GET|DELETE /{v}/interactions/{id}`` and
``POST /{v}/interactions/{id}/cancel``.

A new interaction whose ``model`` is a chain walks its members and keys as ``generateContent``
does, before its first byte (streamed or not). One that continues another
(``previous_interaction_id``) or names the caller's files, stores or caches stays on their key,
rotating models only there. An agent's (``agent`` instead of ``model``) goes to the next key in
turn. Every interaction made is recorded with its key and client: a ``GET`` (a background run's
poll, or ``?stream=true`` to resume from ``last_event_id``), cancel or delete goes with that key.
Usage (``usage.total_*``) is read into the ledger. A stream's in-band error is an Interactions
``error`` event.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from aiohttp import web

from proxy.errors import InvalidArgument
from proxy.exchange import exchange_of
from proxy.names import valid_model_name
from proxy.resources.kinds import INTERACTION
from proxy.resources.owners import Holder, Owners
from proxy.resources.pinning import names_resources, pin_for
from proxy.responders import Call, Reply
from proxy.responders.base import Target
from proxy.state import runtime_of
from proxy.surfaces import VERSIONS, relay
from proxy.surfaces.bodies import check_body, without_key
from proxy.surfaces.gemini_api import api_version, check_model
from proxy.surfaces.held import (
    answer,
    client_headers,
    gemini_of,
    held_by_caller,
    home_responder,
    open_upstream,
    read_body,
    relay_open,
)
from proxy.wire import dump_body

FORWARDED = ("x-goog-api-client", "user-agent", "x-server-timeout")
# The interaction's id in a stream's first events (``interaction.created``), read before the
# client sees it, so that a follow-up sent at once finds it.
_COMPLETED = re.compile(rb'"status"\s*:\s*"completed"')
_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_.:-]{1,200})"')


def _model_for(data: dict[str, Any]) -> Any:
    def body_for(member: Target) -> bytes:
        data["model"] = member.model
        return dump_body(data)

    return body_for


async def create(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    exchange = exchange_of(request)
    body = await request.read()
    data = check_body(body)
    stream = data.get("stream") is True
    model, agent = data.get("model"), data.get("agent")
    if not isinstance(model, str) or not model:
        if isinstance(agent, str) and agent:
            return await _agent(request, data, body, stream)
        raise InvalidArgument("An interaction needs a 'model' or an 'agent'.")
    model = model.removeprefix("models/")
    check_model(model)
    exchange.requested = model
    call = Call(
        action="interactions.stream" if stream else "interactions",
        model=model,
        version=api_version(request),
        body=body,
        sse=False,
        headers=client_headers(request, FORWARDED),
        body_for=_model_for(data),
        hold=relay.hold_of(request),
    )
    if names_resources(body):
        # A follow-up, or files, stores, caches: on the key that holds them.
        call.pin = await pin_for(data, exchange.client, runtime.owners)
    plan = runtime.resolver.resolve(model)
    outcome = await runtime.rotator.run(plan, call)
    member = outcome.member
    exchange.answered_by(member.responder, member.model, outcome.key_index, outcome.attempts)
    headers = {"x-l104-model": member.model, "x-l104-attempts": str(outcome.attempts)}
    # Its usage is counted here unless it runs in the background (then its completed poll does).
    holder = Holder(
        INTERACTION.tag,
        member.responder,
        outcome.key_index,
        exchange.client,
        member.model,
        settled=data.get("background") is not True,
    )
    try:
        reply = outcome.reply
        if reply.status == 200 and reply.chunks is not None:
            reply.chunks = _recording(reply.chunks, runtime.owners, holder)
            return await relay.stream(
                request, reply, headers, True, exchange, frames="interactions"
            )
        if reply.status == 200:
            await _record(runtime.owners, reply.body, holder)
        return relay.whole(reply, headers, exchange)
    finally:
        runtime.observer.finish(outcome.span, exchange, outcome.reply.body)
        runtime.rotator.settle(outcome, exchange.total_tokens or exchange.input_tokens)


async def _record(owners: Owners, body: bytes, holder: Holder) -> None:
    found = _ID.search(body)
    if found is not None:
        await owners.add(f"interactions/{found.group(1).decode()}", holder)


async def _recording(
    chunks: AsyncIterator[bytes], owners: Owners, holder: Holder
) -> AsyncIterator[bytes]:
    """The stream, its interaction recorded from the first event that names it (looked for in
    the first 64 KiB only)."""
    seen = b""
    looking = True
    async for chunk in chunks:
        if looking:
            seen += chunk
            if _ID.search(seen) is not None:
                await _record(owners, seen, holder)
                looking = False
            elif len(seen) > 64 * 1024:
                looking = False
        yield chunk


async def _agent(
    request: web.Request, data: dict[str, Any], body: bytes, stream: bool
) -> web.StreamResponse:
    """An agent's interaction: the next key in turn (or the key of what it names), pinned."""
    runtime = runtime_of(request)
    exchange = exchange_of(request)
    pin = await pin_for(data, exchange.client, runtime.owners) if names_resources(body) else None
    responder = gemini_of(runtime, pin.responder) if pin is not None else home_responder(runtime)
    key = pin.key_index if pin is not None else runtime.keys.pick(responder, ())
    exchange.requested = str(data["agent"])
    exchange.answered_by(responder.name, str(data["agent"]), key, 1)
    headers = {"content-type": "application/json", **client_headers(request, FORWARDED)}
    resp = await open_upstream(
        responder, "POST", f"{api_version(request)}/interactions", key, headers, body
    )
    holder = Holder(
        INTERACTION.tag,
        responder.name,
        key,
        exchange.client,
        settled=data.get("background") is not True,
    )
    if resp.status == 200 and stream:
        exchange.status = 200
        chunks = _recording(resp.content.iter_any(), runtime.owners, holder)
        reply = Reply(200, content_type=resp.headers.get("Content-Type", "text/event-stream"))
        reply.chunks, reply.release = chunks, resp.release
        return await relay.stream(request, reply, {}, True, exchange, frames="interactions")
    answered = await read_body(responder, resp)
    if resp.status == 200:
        await _record(runtime.owners, answered, holder)
        exchange.sniff_usage(answered)
    return answer(resp, answered, {})


async def one(request: web.Request) -> web.StreamResponse:
    """``GET|DELETE /{v}/interactions/{id}`` and ``POST …/{id}/cancel``, with its own key."""
    runtime = runtime_of(request)
    if not valid_model_name(request.match_info["id"]):  # one plain segment, as an id is
        raise InvalidArgument(f"Invalid interaction id: '{request.match_info['id'][:100]}'.")
    name = f"interactions/{request.match_info['id']}"
    holder = await held_by_caller(request, name)
    responder = gemini_of(runtime, holder)
    cancel = request.path.endswith("/cancel")
    url = f"{api_version(request)}/{name}{'/cancel' if cancel else ''}"
    query = without_key(request.rel_url.raw_query_string)
    if query:
        url = f"{url}?{query}"  # stream=true&last_event_id=…
    headers = client_headers(request, FORWARDED)
    resp = await open_upstream(responder, request.method, url, holder.key_index, headers)
    ctype = resp.headers.get("Content-Type", "")
    if resp.status == 200 and ctype.startswith("text/event-stream"):
        return await relay_open(request, resp)
    answered = await read_body(responder, resp)
    deleted = resp.status == 200 and request.method == "DELETE"
    vanished = resp.status in (403, 404) and request.method == "GET"
    if deleted or vanished:
        await runtime.owners.drop(name)
    elif resp.status == 200 and not holder.settled and _COMPLETED.search(answered):
        # A background run's usage, read once: the ledger row of the poll that finds it done.
        exchange = exchange_of(request)
        exchange.sniff_usage(answered)
        exchange.answered_by(holder.responder, holder.model, holder.key_index, exchange.attempts)
        await runtime.owners.add(name, replace(holder, settled=True))
    return answer(resp, answered, {})


def add_routes(app: web.Application) -> None:
    for version in VERSIONS:
        app.router.add_post(f"/{version}/interactions", create)
        app.router.add_get(f"/{version}/interactions/{{id}}", one)
        app.router.add_delete(f"/{version}/interactions/{{id}}", one)
        app.router.add_post(f"/{version}/interactions/{{id}}/cancel", one)
