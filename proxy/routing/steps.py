"""What the rotation loop does for an agent's step besides rotating: the signature repair (a
400 that refused the turn's thought signatures is answered by the same member and key again,
with the stand-in; not a rotation, not a cooldown). See :mod:`proxy.agents`."""

from __future__ import annotations

from opentelemetry.trace import Span

from proxy.agents.shaping import signature_refusal
from proxy.config import Member
from proxy.errors import AttemptFailed
from proxy.metrics import Counters
from proxy.responders import Call, Reply, Responder
from proxy.telemetry.attempts import Observer


async def repaired(
    call: Call,
    reply: Reply,
    responder: Responder,
    member: Member,
    key: int,
    span: Span,
    counters: Counters,
    observer: Observer,
) -> Reply | None:
    """The same member's answer to the repaired body, if ``reply`` refused the signatures and
    the repair changed something; None leaves ``reply`` as the answer."""
    if call.repair is None or not signature_refusal(reply.status, reply.body):
        return None
    body = call.repair()
    if body is None:
        return None
    call.body = body
    counters.signature_repairs[member.model] += 1
    observer.signature_repair(span, member)
    try:
        return await responder.send(call, key)
    except AttemptFailed:
        return None  # no answer to the retry: the 400 stands, as the client would have seen
