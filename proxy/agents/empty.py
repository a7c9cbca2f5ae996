"""Empty answers: a 200 with nothing in it, which a client would take for the model's answer.

An answer is empty when it has no candidate and no ``promptFeedback.blockReason``, or when its
candidates have no parts and end for no reason the client can act on (``OTHER``,
``MALFORMED_FUNCTION_CALL``, ``FINISH_REASON_UNSPECIFIED``, or none). A candidate with no parts
that ended for ``SAFETY``, ``RECITATION``, ``MAX_TOKENS`` and the like is an answer; so is a
blocked prompt. With ``rotation.on: [empty]`` an empty answer is a failed attempt (no cooldown).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson

from proxy.responders.base import Reply

EMPTY_REASONS = frozenset({"OTHER", "MALFORMED_FUNCTION_CALL", "FINISH_REASON_UNSPECIFIED", ""})
# How much of a stream is read, at most, to find its first event before deciding.
FIRST_EVENT_LIMIT = 256 * 1024


def _empty_candidate(candidate: Any) -> bool:
    if not isinstance(candidate, dict):
        return True
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if isinstance(parts, list) and parts:
        return False
    reason = candidate.get("finishReason") or candidate.get("finish_reason") or ""
    return reason in EMPTY_REASONS


def is_empty(answer: Any) -> bool:
    """Whether a parsed ``generateContent`` answer (or a stream's first event) is empty."""
    if not isinstance(answer, dict):
        return False  # not a Gemini answer at all: not ours to judge
    feedback = answer.get("promptFeedback") or answer.get("prompt_feedback")
    if isinstance(feedback, dict) and (feedback.get("blockReason") or feedback.get("block_reason")):
        return False
    candidates = answer.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return True
    return all(_empty_candidate(c) for c in candidates)


def empty_body(body: bytes) -> bool:
    """:func:`is_empty` of a unary answer's bytes (a body that is no JSON is not judged). The
    usual answer has a text or a function call part: it is not parsed."""
    if b'"text"' in body or b'"functionCall"' in body:
        return False
    try:
        return is_empty(orjson.loads(body))
    except orjson.JSONDecodeError:
        return False


def first_event(buffer: bytes, sse: bool) -> tuple[Any, bool]:
    """The stream's first event parsed from what was read so far, and whether it is complete.
    SSE: the first ``data:`` event; otherwise the first element of the JSON array."""
    if sse:
        text = buffer.replace(b"\r\n", b"\n")
        end = text.find(b"\n\n")
        if end < 0:
            return None, False
        data = b"".join(
            line[5:].strip() for line in text[:end].split(b"\n") if line.startswith(b"data:")
        )
        try:
            return orjson.loads(data), True
        except orjson.JSONDecodeError:
            return None, True
    start = buffer.find(b"[")
    if start < 0:
        return None, False
    depth, in_string, escaped = 0, False, False
    for i in range(start + 1, len(buffer)):
        byte = buffer[i]
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
        elif byte in (0x7D, 0x5D):
            depth -= 1
            if depth == 0:
                try:
                    return orjson.loads(buffer[start + 1 : i + 1]), True
                except orjson.JSONDecodeError:
                    return None, True
            if depth < 0:  # "[]": an array with no element
                return {}, True
    return None, False


async def judge(reply: Reply, sse: bool) -> tuple[bool, Reply]:
    """Whether a 200 is empty, and the reply to use from now on: a stream's first event is read
    (nothing reaches the client yet), and the reply handed back replays what was read. An empty
    stream is read to its end (bounded), so that it can still be the answer if every member
    answers empty."""
    if reply.chunks is None:
        return empty_body(reply.body), reply
    chunks = aiter(reply.chunks)
    read = b""
    event, complete = None, False
    while not complete and len(read) < FIRST_EVENT_LIMIT:
        try:
            read += await anext(chunks)
        except StopAsyncIteration:
            break
        except Exception as exc:
            return False, replace(reply, chunks=_replay(read, None, exc))
        event, complete = first_event(read, sse)
    if not complete or not is_empty(event):
        return False, replace(reply, chunks=_replay(read, chunks))
    async for more in chunks:
        read += more
        if len(read) > FIRST_EVENT_LIMIT:
            break
    reply.release()
    return True, replace(reply, chunks=_replay(read, None))


async def _replay(
    first: bytes, rest: AsyncIterator[bytes] | None, broke: Exception | None = None
) -> AsyncIterator[bytes]:
    """What was read, then the rest; a stream that broke while it was read breaks here again."""
    if first:
        yield first
    if broke is not None:
        raise broke
    if rest is not None:
        async for data in rest:
            yield data
