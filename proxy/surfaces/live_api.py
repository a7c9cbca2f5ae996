"""The Live API: ``/ws/google.ai.generativelanguage.{v}.GenerativeService.BidiGenerateContent``.

The client's first frame is ``setup``; its ``model`` may be a chain. The proxy walks the chain's
members and keys as a request would: it opens the upstream socket, sends the setup with the
model rewritten, and waits for ``setupComplete``. A refusal before that (an HTTP 429 at the
upgrade, a close 1011 that says the quota is exceeded, a model not found, an overloaded one)
moves on to the next key or member; nothing reaches the client until one has accepted. Then
frames pass both ways unchanged (text and binary), in order; either side closing closes the
other with its code and reason.

A session counts as one request for the client's limits, and ``limits.max_live_sessions`` caps
the sessions a client has open. The ledger gets one row per session, with the usage its
``usageMetadata`` reported; its span gets an event per upstream attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import WSMsgType, web
from opentelemetry import trace

from proxy.errors import AttemptFailed, ClientRateLimited, ProxyError
from proxy.exchange import Exchange, exchange_of
from proxy.responders.gemini import GeminiResponder
from proxy.routing.chain import Plan
from proxy.state import Runtime, runtime_of
from proxy.surfaces import VERSIONS
from proxy.surfaces.gemini_api import check_model
from proxy.surfaces.live_relay import close_reason, session

log = logging.getLogger("l104.live")
SETUP_TIMEOUT_S = 30.0
_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)s", re.IGNORECASE)


@dataclass(slots=True)
class Refusal:
    """Why a member/key did not take the session."""

    model: str
    why: str
    quota: bool = False
    rest_s: float = 0.0


class SessionRefused(Exception):
    """No member took the session: closes the client's socket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _is_quota(code: int, reason: str) -> bool:
    lowered = reason.lower()
    return code == 1011 and ("quota" in lowered or "resource_exhausted" in lowered)


async def _setup(ws: web.WebSocketResponse) -> tuple[dict[str, object], str]:
    """The client's ``setup`` frame (JSON, text or binary) and the model it names."""
    try:
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            msg = await ws.receive()
    except TimeoutError:
        raise SessionRefused(1008, "No setup message arrived.") from None
    if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        raise SessionRefused(1000, "The client left before its setup.")
    try:
        frame = orjson.loads(msg.data)
        setup = frame["setup"]
        model = str(setup["model"]).removeprefix("models/")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise SessionRefused(1007, "The first message must be a setup naming a model.") from None
    try:
        check_model(model)
    except ProxyError as exc:
        raise SessionRefused(1007, exc.message) from None
    return frame, model


async def try_member(
    responder: GeminiResponder,
    version: str,
    key: int,
    model: str,
    frame: dict[str, object],
    max_frame: int,
    token: str = "",
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.WSMessage] | Refusal:
    """Open the upstream socket for ``model`` with ``key`` (or the ephemeral ``token`` made with
    it) and wait for ``setupComplete``."""
    try:
        upstream = await responder.live(version, key, max_frame, token)
    except aiohttp.WSServerHandshakeError as exc:
        return Refusal(model, f"HTTP {exc.status}", quota=exc.status == 429)
    except AttemptFailed as failed:
        return Refusal(model, failed.kind)
    setup = dict(frame["setup"])  # type: ignore[call-overload]
    setup["model"] = f"models/{model}"
    try:
        await upstream.send_bytes(orjson.dumps({**frame, "setup": setup}))
        async with asyncio.timeout(responder.spec.timeout_s):
            first = await upstream.receive()
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        await upstream.close()
        return Refusal(model, "no setupComplete")
    if first.type in (WSMsgType.TEXT, WSMsgType.BINARY) and b"setupComplete" in (
        first.data if isinstance(first.data, bytes) else str(first.data).encode()
    ):
        return upstream, first
    code = upstream.close_code or 1006
    # SECURITY: the upstream's close reason goes on to the client: a key it reflects does not.
    reason = (
        responder.scrub_text(str(first.extra or ""))
        if first.type == WSMsgType.CLOSE
        else "unexpected frame"
    )
    await upstream.close()
    retry = _RETRY_IN.search(reason)
    return Refusal(
        model,
        f"closed {code}: {reason[:80]}",
        quota=_is_quota(code, reason),
        rest_s=float(retry.group(1)) if retry else 0.0,
    )


def _scrubber(runtime: Runtime) -> Callable[[str], str]:
    """Scrubs every upstream key from a text (a close reason the upstream sent)."""
    responders = [r for r in runtime.responders.values() if isinstance(r, GeminiResponder)]

    def scrub(text: str) -> str:
        for responder in responders:
            text = responder.scrub_text(text)
        return text

    return scrub


async def _open(
    runtime: Runtime, plan: Plan, version: str, frame: dict[str, object], exchange: Exchange
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.WSMessage]:
    refusals: list[Refusal] = []
    span = trace.get_current_span()
    for member in plan.members:
        responder = runtime.responders[member.responder]
        if not isinstance(responder, GeminiResponder) or not responder.studio:
            continue
        for key in range(responder.key_count):
            if runtime.cooldowns.disabled_for(member.responder, key) > 0:
                refusals.append(Refusal(member.model, f"key {key} disabled"))
                continue
            ref = (member.responder, member.model, responder.projects[key])
            left = runtime.cooldowns.peek(ref)
            if left > 0:
                refusals.append(Refusal(member.model, f"cooling {left:.0f}s", True, left))
                continue
            exchange.attempts += 1
            runtime.counters.model_usage[member.model] += 1
            max_frame = runtime.config.limits.max_live_frame_bytes
            outcome = await try_member(responder, version, key, member.model, frame, max_frame)
            span.add_event(
                "live.attempt",
                {
                    "gen_ai.request.model": member.model,
                    "l104.key_index": key,
                    "l104.outcome": "accepted" if not isinstance(outcome, Refusal) else outcome.why,
                },
            )
            if not isinstance(outcome, Refusal):
                exchange.answered_by(member.responder, member.model, key, exchange.attempts)
                return outcome
            if outcome.quota:
                runtime.counters.model_429_count[member.model] += 1
                wait = outcome.rest_s or runtime.config.rotation.cooldown_s
                outcome.rest_s = runtime.cooldowns.cool(ref, wait)
            refusals.append(outcome)
    raise _refused(plan, refusals)


def _refused(plan: Plan, refusals: list[Refusal]) -> SessionRefused:
    tried = ", ".join(f"{r.model} ({r.why})" for r in refusals) or "none"
    quota = [r.rest_s for r in refusals if r.quota]
    if quota:
        return SessionRefused(
            1011,
            f"You exceeded your current quota on every model of '{plan.name}'. "
            f"Please retry in {max(1.0, min(quota)):.0f}s.",
        )
    return SessionRefused(1011, f"No model of '{plan.name}' took the session; tried: {tried}")


Opener = Callable[
    [dict[str, object], str, Exchange],
    Awaitable[tuple[aiohttp.ClientWebSocketResponse, aiohttp.WSMessage]],
]


async def live(request: web.Request) -> web.StreamResponse:
    """A Live session on a chain: its members and keys are tried until one takes it."""
    runtime = runtime_of(request)
    version = request.path.split(".")[3]  # /ws/google.ai.generativelanguage.{v}.…

    async def opener(
        frame: dict[str, object], model: str, exchange: Exchange
    ) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.WSMessage]:
        return await _open(runtime, runtime.resolver.resolve(model), version, frame, exchange)

    return await serve(request, opener)


async def serve(request: web.Request, opener: Opener) -> web.StreamResponse:
    """A Live session for the client's limits: its setup read, the upstream opened by
    ``opener``, then frames relayed both ways until either side closes."""
    runtime = runtime_of(request)
    exchange = exchange_of(request)
    limit = runtime.config.limits.max_live_sessions
    open_now = runtime.live_sessions[exchange.client]
    fleet = runtime.shared.fleet if runtime.shared is not None else None
    counted = await fleet.live_open(exchange.client, limit) if fleet is not None else None
    if counted is None:  # no fleet, or Redis away: this replica's own count decides
        over = bool(limit) and open_now >= limit
    else:  # the fleet's count, negative if it refused
        over, open_now = counted < 0, -counted
    if over:
        raise ClientRateLimited(
            f"Client '{exchange.client}' has {open_now} Live sessions open "
            f"(limits.max_live_sessions: {limit}).",
            retry_after_s=1.0,
        )
    client = web.WebSocketResponse(
        max_msg_size=runtime.config.limits.max_live_frame_bytes, autoping=True
    )
    await client.prepare(request)
    runtime.live_sessions[exchange.client] += 1
    try:
        frame, model = await _setup(client)
        exchange.requested = model
        upstream, first = await opener(frame, model, exchange)
        exchange.status = 200
        exchange.mark_first_byte()
        if first.type == WSMsgType.TEXT:
            await client.send_str(first.data)
        else:
            await client.send_bytes(first.data)
        await session(client, upstream, exchange, runtime.live_budget, _scrubber(runtime))
    except SessionRefused as refused:
        exchange.status = 429 if "quota" in refused.reason else 503
        await client.close(code=refused.code, message=close_reason(refused.reason))
    finally:
        runtime.live_sessions[exchange.client] -= 1
        if counted is not None and fleet is not None:
            fleet.live_closed(exchange.client)
        with contextlib.suppress(Exception):
            await client.close()
    return client


def add_routes(app: web.Application) -> None:
    for version in VERSIONS:
        path = f"/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
        app.router.add_get(path, live)
        # @google/genai joins its base URL (with a trailing slash) and "/ws/…": "//ws/…".
        app.router.add_get("/" + path, live)
