"""Ephemeral tokens: made with one key (``POST /{v}/auth_tokens``), then presented by a browser's
Live client instead of a key, on ``…GenerativeService.BidiGenerateContentConstrained``.

A token is recorded like any resource: the key that made it, the client that asked. Presented,
it authenticates as that client (:class:`~proxy.middleware.auth.ClientAuth`) and its session goes
to that key's upstream, with the token (the key stays here). A chain named in the token's
``bidiGenerateContentSetup.model`` is made a member when the token is made: the session's setup
is pointed at that member too, so a client may name the chain there as well.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from proxy.errors import NotFound, PermissionDenied
from proxy.exchange import Exchange, exchange_of
from proxy.resources.kinds import TOKEN
from proxy.responders.base import Pin
from proxy.responders.gemini import GeminiResponder
from proxy.state import Runtime, runtime_of
from proxy.surfaces import VERSIONS
from proxy.surfaces.gemini_api import check_model
from proxy.surfaces.held import gemini_of
from proxy.surfaces.live_api import Refusal, SessionRefused, serve, try_member

SETUP_KEYS = ("bidiGenerateContentSetup", "bidi_generate_content_setup")
TOKEN_PREFIX = "auth_tokens/"  # noqa: S105


def token_setup(
    runtime: Runtime, data: dict[str, Any], responder: GeminiResponder, pin: Pin | None
) -> tuple[GeminiResponder, str]:
    """The responder and member model a token's setup is bound to (its chain name rewritten in
    ``data``); ``responder`` and "" when the token names no model."""
    setup = next((data[k] for k in SETUP_KEYS if isinstance(data.get(k), dict)), None)
    if setup is None or not isinstance(setup.get("model"), str):
        return responder, ""
    model = setup["model"].removeprefix("models/")
    check_model(model)
    plan = runtime.resolver.resolve(model)
    for member in plan.members:
        found = runtime.responders.get(member.responder)
        if not isinstance(found, GeminiResponder) or not found.studio or not found.key_count:
            continue
        if pin is not None and member.responder != pin.responder:
            continue
        if all(
            runtime.cooldowns.peek((member.responder, member.model, project)) > 0
            for project in found.projects
        ):
            continue
        setup["model"] = f"models/{member.model}"
        return found, member.model
    raise NotFound(f"No model of '{plan.name}' can take a Live session on a token now.")


def presented_token(request: web.Request) -> str:
    """The token a constrained Live client presents (header, ``Authorization: Token``, or the
    ``access_token`` query of the JS SDK), or ""."""
    for value in (
        request.headers.get("x-goog-api-key", ""),
        request.headers.get("Authorization", "").removeprefix("Token ").strip(),
        request.query.get("access_token", ""),
        request.query.get("key", ""),
    ):
        if value.startswith(TOKEN_PREFIX):
            return value
    return ""


async def constrained(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    token = presented_token(request)
    found = await runtime.owners.holder_of(token) if token else None
    if found is None or found[0] != token or found[1].kind != TOKEN.tag:
        raise PermissionDenied("The auth token is not valid, or it has expired.")
    holder = found[1]
    exchange_of(request).client = holder.client  # the token's maker, as the auth layer said
    responder = gemini_of(runtime, holder)
    version = request.path.split(".")[3]

    async def opener(
        frame: dict[str, object], model: str, exchange: Exchange
    ) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.WSMessage]:
        member = holder.model or model
        exchange.attempts += 1
        outcome = await try_member(
            responder,
            version,
            holder.key_index,
            member,
            frame,
            runtime.config.limits.max_live_frame_bytes,
            token,
        )
        if isinstance(outcome, Refusal):
            raise SessionRefused(1011, f"The session on the token was refused: {outcome.why}")
        exchange.answered_by(holder.responder, member, holder.key_index, exchange.attempts)
        return outcome

    return await serve(request, opener)


def add_routes(app: web.Application) -> None:
    for version in VERSIONS:
        path = (
            f"/ws/google.ai.generativelanguage.{version}.GenerativeService."
            "BidiGenerateContentConstrained"
        )
        app.router.add_get(path, constrained)
        app.router.add_get("/" + path, constrained)
