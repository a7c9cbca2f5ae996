"""Thought signatures in the current turn: worked tables of bodies, what Gemini 3 would refuse,
and what the proxy puts in."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from proxy.agents.signatures import (
    STAND_IN,
    fill,
    may_need_signatures,
    repair,
    validates_signatures,
)

SIG = "c2lnbmVkLWJ5LWdlbWluaS0z"


def user(text: str = "q") -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def call(name: str = "f", sig: str | None = None, key: str = "functionCall") -> dict[str, Any]:
    part: dict[str, Any] = {key: {"name": name, "args": {}}}
    if sig is not None:
        part["thoughtSignature"] = sig
    return part


def model(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def answers(*names: str) -> dict[str, Any]:
    return {
        "role": "user",
        "parts": [{"functionResponse": {"name": n, "response": {}}} for n in names],
    }


def sigs(data: dict[str, Any]) -> list[str | None]:
    """Every function call's signature, in order."""
    out = []
    for content in data["contents"]:
        for part in content.get("parts", []):
            if "functionCall" in part or "function_call" in part:
                out.append(part.get("thoughtSignature") or part.get("thought_signature"))
    return out


@pytest.mark.parametrize(
    ("contents", "changed", "after"),
    [
        # No function call: nothing to do.
        ([user()], False, []),
        # A step begun on 2.5 (no signature): its first call gets the stand-in.
        ([user(), model(call()), answers("f")], True, [STAND_IN]),
        # Parallel calls: only the first of the step.
        ([user(), model(call("a"), call("b")), answers("a", "b")], True, [STAND_IN, None]),
        # A streamed step is several model contents: still one first call.
        (
            [user(), model({"text": "x"}), model(call("a")), model(call("b"))],
            True,
            [STAND_IN, None],
        ),
        # Two steps in the turn: each first call.
        (
            [user(), model(call("a")), answers("a"), model(call("b")), answers("b")],
            True,
            [STAND_IN, STAND_IN],
        ),
        # A signature the client has is kept.
        ([user(), model(call(sig=SIG)), answers("f")], False, [SIG]),
        # An earlier turn is not validated: left as it is.
        (
            [user(), model(call()), answers("f"), model({"text": "done"}), user("next")],
            False,
            [None],
        ),
        # snake_case is read too.
        ([user(), model(call(key="function_call")), answers("f")], True, [STAND_IN]),
    ],
)
def test_fill_puts_the_stand_in_where_gemini_3_would_refuse(
    contents: list[dict[str, Any]], changed: bool, after: list[str | None]
) -> None:
    data = {"contents": copy.deepcopy(contents)}
    assert fill(data) is changed
    assert sigs(data) == after


def test_count_tokens_inner_request_is_filled() -> None:
    data = {"generateContentRequest": {"contents": [user(), model(call()), answers("f")]}}
    assert fill(data)
    assert data["generateContentRequest"]["contents"][1]["parts"][0]["thoughtSignature"] == STAND_IN


def test_repair_replaces_every_signature_of_the_current_turn_only() -> None:
    old_turn = [user("a"), model(call("x", sig="b2xk")), answers("x"), model({"text": "ok"})]
    data: dict[str, Any] = {
        "contents": [
            *old_turn,
            user("b"),
            model(call("y", sig="ZnJvbS12ZXJ0ZXg")),  # issued by the other endpoint
            answers("y"),
            model(call("z")),
            answers("z"),
        ]
    }
    assert repair(data)
    assert sigs(data) == ["b2xk", STAND_IN, STAND_IN]
    assert not repair(data)  # nothing left to change


def test_openai_tool_calls_carry_it_in_extra_content() -> None:
    def tool_call(cid: str, sig: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": cid, "type": "function", "function": {"name": "f"}}
        if sig:
            out["extra_content"] = {"google": {"thought_signature": sig}}
        return out

    data: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [tool_call("1"), tool_call("2")]},
            {"role": "tool", "tool_call_id": "1", "content": "r"},
            {"role": "tool", "tool_call_id": "2", "content": "r"},
        ]
    }
    assert fill(data)
    calls = data["messages"][1]["tool_calls"]
    assert calls[0]["extra_content"]["google"]["thought_signature"] == STAND_IN
    assert "extra_content" not in calls[1]
    calls[0]["extra_content"]["google"]["thought_signature"] = "b3RoZXI"
    assert not fill(data)
    assert repair(data)
    assert calls[0]["extra_content"]["google"]["thought_signature"] == STAND_IN


@pytest.mark.parametrize(
    ("name", "checks"),
    [
        ("gemini-3-flash-preview", True),
        ("models/gemini-3-pro", True),
        ("gemini-2.5-flash-lite", False),
        ("m1", False),
    ],
)
def test_which_models_validate(name: str, checks: bool) -> None:
    assert validates_signatures(name) is checks


def test_the_cheap_look() -> None:
    assert not may_need_signatures(b'{"contents": [{"parts": [{"text": "hi"}]}]}')
    assert may_need_signatures(b'{"contents": [{"parts": [{"functionCall": {}}]}]}')
    assert may_need_signatures(b'{"messages": [{"tool_calls": []}]}')
