"""Thought signatures: what Gemini 3 checks in the current turn, and the documented stand-in.

Gemini 3 (``gemini-3*``) validates the *current turn*: the contents after the last user content
that is not only ``functionResponse`` parts. A *step* is a run of consecutive model contents
(the SDK sends a streamed answer back as one content per chunk), and the first ``functionCall``
of each step must carry a ``thoughtSignature``. A turn that began on an older model (which gives
none) would be refused with a 400 when rotation moves its next step to Gemini 3; the proxy puts
Google's stand-in there instead. Earlier turns are never touched; neither is a signature the
client has, except by :func:`repair`, after Gemini refused the body.

The OpenAI-compatible shape carries the same thing in
``tool_calls[].extra_content.google.thought_signature`` of assistant messages.

All functions here are pure: they take the parsed body and say whether they changed it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

STAND_IN = "skip_thought_signature_validator"
CALL_KEYS = ("functionCall", "function_call")
RESPONSE_KEYS = ("functionResponse", "function_response")
SIGNATURE_KEYS = ("thoughtSignature", "thought_signature")


def validates_signatures(model: str) -> bool:
    """Whether ``model`` checks thought signatures (Gemini 3, by its name)."""
    return model.removeprefix("models/").startswith("gemini-3")


def may_need_signatures(body: bytes) -> bool:
    """The cheap first look: a body with no function call needs nothing. (An escaped spelling
    slips through here; :func:`repair`, after Gemini's 400, catches it.)"""
    return b"functionCall" in body or b"function_call" in body or b"tool_calls" in body


def _parts(content: Any) -> list[Any]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _has(part: Any, keys: tuple[str, ...]) -> bool:
    return isinstance(part, dict) and any(k in part for k in keys)


def _only_responses(content: Any) -> bool:
    parts = _parts(content)
    return bool(parts) and all(_has(p, RESPONSE_KEYS) for p in parts)


def _turn_start(contents: list[Any]) -> int:
    """Index of the current turn's first content."""
    for i in range(len(contents) - 1, -1, -1):
        content = contents[i]
        role = content.get("role", "user") if isinstance(content, dict) else "user"
        if role == "user" and not _only_responses(content):
            return i + 1
    return 0


def _runs(items: list[Any], role: str) -> Iterator[list[Any]]:
    """The runs of consecutive items of ``role``: the steps of a turn."""
    step: list[Any] = []
    for item in items:
        if isinstance(item, dict) and item.get("role") == role:
            step.append(item)
        elif step:
            yield step
            step = []
    if step:
        yield step


def _first_call(step: list[Any]) -> dict[str, Any] | None:
    for content in step:
        for part in _parts(content):
            if _has(part, CALL_KEYS):
                return part  # type: ignore[no-any-return]
    return None


def _contents_of(data: dict[str, Any]) -> list[Any] | None:
    """The contents Gemini validates: the body's, or a countTokens' inner request's."""
    contents = data.get("contents")
    if contents is None:
        inner = data.get("generateContentRequest") or data.get("generate_content_request")
        if isinstance(inner, dict):
            contents = inner.get("contents")
    return contents if isinstance(contents, list) else None


def _turn_steps(data: dict[str, Any]) -> Iterator[list[Any]]:
    """The current turn's steps: runs of consecutive model contents."""
    contents = _contents_of(data)
    if contents is None:
        return iter(())
    return _runs(contents[_turn_start(contents) :], "model")


def _sign_first(step: list[Any]) -> bool:
    """The stand-in on the step's first function call, if it has no signature."""
    call = _first_call(step)
    if call is None or any(call.get(k) for k in SIGNATURE_KEYS):
        return False
    call["thoughtSignature"] = STAND_IN
    return True


def fill(data: dict[str, Any]) -> bool:
    """Put the stand-in on each step's first function call that has no signature, in the
    current turn (Gemini's shape, or OpenAI's ``messages``). True if the body changed."""
    if "messages" in data:
        return _fill_openai(data)
    changed = False
    for step in _turn_steps(data):
        changed = _sign_first(step) or changed
    return changed


def repair(data: dict[str, Any]) -> bool:
    """After Gemini refused the signatures: every signature of the current turn becomes the
    stand-in (one issued elsewhere, or corrupted), and each step's first call gets one."""
    if "messages" in data:
        return _repair_openai(data)
    changed = False
    for step in _turn_steps(data):
        for content in step:
            for part in _parts(content):
                for key in SIGNATURE_KEYS:
                    if isinstance(part, dict) and key in part and part[key] != STAND_IN:
                        part[key] = STAND_IN
                        changed = True
        changed = _sign_first(step) or changed
    return changed


# -- the OpenAI-compatible shape -------------------------------------------------------------


def _openai_turn_start(messages: list[Any]) -> int:
    """Index of the current turn's first message: the one after the last user message."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], dict) and messages[i].get("role") == "user":
            return i + 1
    return 0


def _openai_steps(messages: list[Any]) -> Iterator[list[Any]]:
    return _runs(messages[_openai_turn_start(messages) :], "assistant")


def _openai_calls(step: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for message in step:
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                yield call


def _signature(call: dict[str, Any]) -> Any:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    return google.get("thought_signature") if isinstance(google, dict) else None


def _sign(call: dict[str, Any]) -> None:
    extra = call.get("extra_content")
    if not isinstance(extra, dict):
        extra = call["extra_content"] = {}
    google = extra.get("google")
    if not isinstance(google, dict):
        google = extra["google"] = {}
    google["thought_signature"] = STAND_IN


def _fill_openai(data: dict[str, Any]) -> bool:
    messages = data.get("messages")
    if not isinstance(messages, list):
        return False
    changed = False
    for step in _openai_steps(messages):
        first = next(_openai_calls(step), None)
        if first is not None and not _signature(first):
            _sign(first)
            changed = True
    return changed


def _repair_openai(data: dict[str, Any]) -> bool:
    messages = data.get("messages")
    if not isinstance(messages, list):
        return False
    changed = False
    for step in _openai_steps(messages):
        for i, call in enumerate(_openai_calls(step)):
            if (i == 0 or _signature(call)) and _signature(call) != STAND_IN:
                _sign(call)
                changed = True
    return changed


def turn_key(data: dict[str, Any]) -> str:
    """A digest of the history before the current turn: the same for every step of one
    function-calling turn, different for the next turn (clients send no session id). "" when
    the body has no history to key on."""
    messages = data.get("messages")
    if isinstance(messages, list):
        head = messages[: _openai_turn_start(messages)]
    else:
        contents = _contents_of(data)
        head = contents[: _turn_start(contents)] if contents is not None else []
    if not head:
        return ""
    try:
        canonical = orjson.dumps(head, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return ""
    return hashlib.sha256(canonical).hexdigest()[:32]
