"""Empty answers: which 200s carry nothing a client can use."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.agents.empty import empty_body, first_event, is_empty


def candidate(parts: list[Any] | None, reason: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"index": 0}
    if parts is not None:
        out["content"] = {"role": "model", "parts": parts}
    if reason is not None:
        out["finishReason"] = reason
    return out


@pytest.mark.parametrize(
    ("answer", "empty"),
    [
        ({"candidates": [candidate([{"text": "hi"}], "STOP")]}, False),
        ({}, True),
        ({"candidates": []}, True),
        ({"usageMetadata": {"promptTokenCount": 3}}, True),
        ({"promptFeedback": {"blockReason": "SAFETY"}}, False),  # a blocked prompt answers
        ({"candidates": [candidate([], "OTHER")]}, True),
        ({"candidates": [candidate(None, "MALFORMED_FUNCTION_CALL")]}, True),
        ({"candidates": [candidate(None, "FINISH_REASON_UNSPECIFIED")]}, True),
        ({"candidates": [candidate(None, None)]}, True),
        ({"candidates": [candidate(None, "SAFETY")]}, False),
        ({"candidates": [candidate([], "RECITATION")]}, False),
        ({"candidates": [candidate(None, "MAX_TOKENS")]}, False),
        ({"candidates": [candidate(None, "PROHIBITED_CONTENT")]}, False),
        ({"candidates": [candidate([{"functionCall": {"name": "f"}}], "STOP")]}, False),
    ],
)
def test_is_empty(answer: dict[str, Any], empty: bool) -> None:
    assert is_empty(answer) is empty
    assert empty_body(orjson.dumps(answer)) is empty


def test_a_body_that_is_no_json_is_not_judged() -> None:
    assert not empty_body(b"<html>")


@pytest.mark.parametrize("sse", [True, False])
def test_the_first_event_of_a_stream(sse: bool) -> None:
    event = {"candidates": [candidate([{"text": 'a "quoted" {brace}'}], None)]}
    data = orjson.dumps(event)
    stream = b"data: " + data + b"\r\n\r\n" if sse else b"[" + data + b"\r\n,{}"
    for cut in (5, len(stream) // 2):
        assert first_event(stream[:cut], sse) == (None, False)
    assert first_event(stream, sse) == (event, True)
    assert first_event(b"[]", False) == ({}, True)
