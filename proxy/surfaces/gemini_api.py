"""The Gemini model actions: ``POST /{version}/models/{model}:{action}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from proxy.agents.shaping import shaper
from proxy.agents.signatures import turn_key
from proxy.errors import InvalidArgument, NotFound
from proxy.exchange import exchange_of
from proxy.names import valid_model_name
from proxy.resources import records
from proxy.resources.owners import Holder
from proxy.resources.pinning import names_resources, pin_for
from proxy.responders import Call
from proxy.responders.base import ACTIONS, CREATING_ACTIONS
from proxy.routing.chain import Plan
from proxy.state import Runtime, runtime_of
from proxy.surfaces import relay
from proxy.surfaces.bodies import BATCH_ACTIONS, check_body, model_setter, without_key
from proxy.surfaces.held import client_headers

BODY_NAMES_MODEL = frozenset({"embedContent", "batchEmbedContents", "countTokens", *BATCH_ACTIONS})
ANSWERS_WITH_CANDIDATES = frozenset({"generateContent", "streamGenerateContent"})
# Client headers worth passing on; everything else (keys above all) stays here.
FORWARDED = ("x-goog-api-client", "user-agent", "x-server-timeout")


def api_version(request: web.Request) -> str:
    """``v1``, ``v1beta`` or ``v1alpha``: the first segment of a Gemini path."""
    return request.path[1 : request.path.index("/", 1)]


def split_target(target: str) -> tuple[str, str]:
    """``gemini-2.5-flash:generateContent`` -> (model, action); 400/404 on anything odd."""
    model, sep, action = target.rpartition(":")
    if not sep:
        raise NotFound(f"Method not found: models/{target}.")
    if action not in ACTIONS:
        raise NotFound(f"Method not found: models/{model}:{action}.")
    check_model(model)
    return model, action


def check_model(model: str) -> None:
    if not valid_model_name(model):
        raise InvalidArgument(f"Invalid model name: '{model[:100]}'.")


async def plan_for(runtime: Runtime, call: Call, data: dict[str, Any], client: str) -> Plan:
    """The plan ``call`` walks: its model's chain, pinned to the key of the files or cached
    content it names (the caller's own, or Gemini's answer for a missing one), with the turn
    key a ``sticky_turn`` chain needs."""
    if names_resources(call.body):
        # A file or cached content lives in one key's project: the call goes with that key.
        call.pin = await pin_for(data, client, runtime.owners)
    plan = runtime.resolver.resolve(call.model)
    if plan.sticky_turn and call.uses_tools:
        call.turn = turn_key(data)
    return plan


async def model_action(request: web.Request) -> web.StreamResponse:
    model, action = split_target(request.match_info["target"])
    return await serve(request, model, action, await request.read(), api_version(request))


async def serve(
    request: web.Request,
    model: str,
    action: str,
    body: bytes,
    version: str,
    reshape: Callable[[bytes], bytes] | None = None,
) -> web.StreamResponse:
    """Answer a model action through its chain: the Gemini API's surface, and the Vertex
    surface's (``reshape`` makes a whole 200 Vertex's)."""
    runtime = runtime_of(request)
    exchange = exchange_of(request)
    exchange.requested = model
    data = check_body(body)  # malformed JSON is answered here, never sent upstream
    raw_query = request.rel_url.raw_query_string
    body_for, repair, tools = shaper(
        action, body, data, model_setter(action, data) if action in BODY_NAMES_MODEL else None
    )
    call = Call(
        action=action,
        model=model,
        version=version,
        body=body,
        sse=request.query.get("alt") == "sse" if raw_query else False,
        headers=client_headers(request, FORWARDED),
        query=without_key(raw_query) if raw_query else "",
        body_for=body_for,
        hold=relay.hold_of(request),
        repair=repair,
        empty_fails=action in ANSWERS_WITH_CANDIDATES and runtime.config.rotation.on_empty,
        uses_tools=tools,
    )
    plan = await plan_for(runtime, call, data, exchange.client)
    outcome = await runtime.rotator.run(plan, call)
    member = outcome.member
    exchange.answered_by(member.responder, member.model, outcome.key_index, outcome.attempts)
    headers = {"x-l104-model": outcome.member.model, "x-l104-attempts": str(outcome.attempts)}
    try:
        if outcome.reply.chunks is None:
            if action in CREATING_ACTIONS and outcome.reply.status == 200:
                # A batch or an operation: held by the key that made it, owned by the caller.
                member = outcome.member
                holder = Holder(
                    "", member.responder, outcome.key_index, exchange.client, member.model
                )
                await records.learn(runtime.owners, exchange, outcome.reply.body, holder, "")
            if reshape is not None and outcome.reply.status == 200:
                outcome.reply.body = reshape(outcome.reply.body)
            return relay.whole(outcome.reply, headers, exchange)
        return await relay.stream(request, outcome.reply, headers, call.sse, exchange)
    finally:
        runtime.observer.finish(outcome.span, exchange, outcome.reply.body)
        runtime.rotator.settle(outcome, exchange.total_tokens or exchange.input_tokens)
