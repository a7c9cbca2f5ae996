"""The body each attempt sends, made once per member: the model fields Gemini wants to match
the URL, and the thought signatures a Gemini 3 member checks. A body that needs neither goes
as the client sent it, byte for byte; one that does is written again with the depth-safe
helper. Also the repair a signature 400 asks for (:func:`proxy.agents.signatures.repair`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from proxy.agents.signatures import fill, may_need_signatures, repair, validates_signatures
from proxy.responders.base import Target
from proxy.wire import dump_body

# The actions whose body Gemini checks for signatures.
SIGNED_ACTIONS = frozenset(
    {"generateContent", "streamGenerateContent", "countTokens", "openai.chat", "openai.chat.stream"}
)


BodyFor = Callable[[Target], bytes]
Repair = Callable[[], bytes | None]


class Shaper:
    """The bodies of one request's attempts. ``data`` is the request's parsed body, changed in
    place: once it holds stand-ins (filled for a Gemini 3 member, or repaired), every Gemini 3
    member gets the body written again; others get the client's bytes unless their model
    fields must change."""

    __slots__ = ("body", "data", "set_model", "signatures", "signed")

    def __init__(
        self,
        body: bytes,
        data: dict[str, Any],
        set_model: Callable[[str], bool] | None,
        signatures: bool,
    ) -> None:
        self.body = body
        self.data = data
        self.set_model = set_model
        self.signatures = signatures  # the body may hold function calls
        self.signed = False  # ``data`` holds stand-ins the client's bytes do not

    def body_for(self, member: Target) -> bytes:
        changed = self.set_model(member.model) if self.set_model is not None else False
        if validates_signatures(member.model):
            if self.signatures and fill(self.data):
                self.signed = True
            changed = changed or self.signed
        return dump_body(self.data) if changed else self.body

    def repair(self) -> bytes | None:
        """The body with the current turn's signatures replaced, or None if nothing changes
        (then the 400 stands)."""
        if not repair(self.data):
            return None
        self.signed = True
        return dump_body(self.data)


def shaper(
    action: str,
    body: bytes,
    data: dict[str, Any],
    set_model: Callable[[str], bool] | None,
) -> tuple[BodyFor | None, Repair | None, bool]:
    """The per-attempt body hook, the signature repair, and whether the request uses tools
    (declares them, or carries function calls). The usual request (no model field, no function
    call) gets no hook, and a repair that parses nothing until a 400 asks for it: its bytes go
    as they came.

    ``set_model`` points the body's model fields at a model (True if the body names one)."""
    if action not in SIGNED_ACTIONS:
        hook = Shaper(body, data, set_model, False).body_for if set_model is not None else None
        return hook, None, b'"tools"' in body
    signatures = may_need_signatures(body)
    tools = signatures or b'"tools"' in body
    if set_model is None and not signatures:
        return None, partial(_late_repair, data), tools
    shape = Shaper(body, data, set_model, signatures)
    return shape.body_for, shape.repair, tools


def _late_repair(data: dict[str, Any]) -> bytes | None:
    """The repair of a body that had no hook (an escaped spelling the cheap look missed)."""
    return dump_body(data) if repair(data) else None


def signature_refusal(status: int, body: bytes) -> bool:
    """A 400 in which Gemini refuses a turn's thought signatures."""
    if status != 400:
        return False
    lowered = body.lower()
    return b"thought_signature" in lowered or b"thought signature" in lowered
