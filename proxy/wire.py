"""Gemini's wire shapes, for the responders that answer without an upstream.

These are the shapes of ``GEMINI_WIRE.md``: the SDK cannot tell them from Gemini's.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from proxy.errors import InvalidArgument, error_body

SSE_END = b"\r\n\r\n"


def dump_body(data: Any) -> bytes:
    """``data`` as JSON for a body the proxy writes again. Every such place uses this: a body
    nested deeper than orjson writes (254 levels; it reads 1,024) is a 400, never a 500."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        raise InvalidArgument(
            "Invalid JSON payload received. The body is nested too deeply."
        ) from None


def parse_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object; a clear 400 for anything else."""
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"Invalid JSON payload received. {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected an object.")
    contents = data.get("contents")
    if contents is not None and not isinstance(contents, list | dict):
        raise InvalidArgument("Invalid value at 'contents': expected a list of Content.")
    return data


def _texts(content: Any) -> list[str]:
    if not isinstance(content, dict):
        return []
    parts = content.get("parts")
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def contents_of(data: dict[str, Any]) -> list[Any]:
    contents = data.get("contents", [])
    # countTokens may wrap the request as {"generateContentRequest": {...}}.
    if not contents and isinstance(data.get("generateContentRequest"), dict):
        contents = data["generateContentRequest"].get("contents", [])
    return contents if isinstance(contents, list) else [contents]


def last_user_text(data: dict[str, Any]) -> str:
    """The text of the last user turn (or of the last turn with text)."""
    turns = contents_of(data)
    for turn in reversed(turns):
        if isinstance(turn, dict) and turn.get("role", "user") == "user" and _texts(turn):
            return "".join(_texts(turn))
    for turn in reversed(turns):
        if _texts(turn):
            return "".join(_texts(turn))
    return ""


def all_text(data: dict[str, Any]) -> str:
    return " ".join(t for turn in contents_of(data) for t in _texts(turn))


def estimate_tokens(text: str) -> int:
    """Gemini's rule of thumb: about four characters a token."""
    return max(1, (len(text) + 3) // 4) if text else 0


def usage(prompt: int, output: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
    }


def response_id(model: str, text: str) -> str:
    return hashlib.blake2s(f"{model}\0{text}".encode(), digest_size=9).hexdigest()


def chunk(
    text: str, model: str, rid: str, *, finish: bool, prompt: int, output: int
) -> dict[str, Any]:
    """One ``GenerateContentResponse``; ``finish`` adds ``finishReason`` for the last chunk."""
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": usage(prompt, output),
        "modelVersion": model,
        "responseId": rid,
    }


def split(text: str, pieces: int) -> list[str]:
    """``text`` in ``pieces`` nearly equal parts (fewer if the text is shorter)."""
    pieces = max(1, min(pieces, len(text) or 1))
    step, extra = divmod(len(text), pieces)
    out, at = [], 0
    for i in range(pieces):
        size = step + (1 if i < extra else 0)
        out.append(text[at : at + size])
        at += size
    return out


def sse_event(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + SSE_END


def stream_frames(objs: list[dict[str, Any]], sse: bool) -> list[bytes]:
    """Frames for ``alt=sse`` (``data: …``) or for the streamed JSON array."""
    if sse:
        return [sse_event(o) for o in objs]
    frames = []
    for i, o in enumerate(objs):
        head = b"[" if i == 0 else b"\r\n,"
        frames.append(head + orjson.dumps(o))
    frames.append(b"]" if objs else b"[]")
    return frames


def embedding(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit-free vector for ``text``: the same text, the same vector."""
    digest = hashlib.blake2s(text.encode(), digest_size=dims).digest()
    return [round(b / 255.0, 6) for b in digest]


def quota_error(model: str, retry_s: float, per_day: bool, quota_value: int = 20) -> bytes:
    """Gemini's 429 body, with ``QuotaFailure`` (naming the quota's size, ``quota_value``) and
    ``RetryInfo``."""
    quota_id = (
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        if per_day
        else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    )
    delay = f"{retry_s:g}s"
    body = {
        "error": {
            "code": 429,
            "message": f"You exceeded your current quota. Please retry in {delay}.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests",
                            "quotaId": quota_id,
                            "quotaDimensions": {"model": model, "location": "global"},
                            "quotaValue": str(quota_value),
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
            ],
        }
    }
    return orjson.dumps(body)


def status_error(code: int, model: str) -> bytes:
    messages = {
        404: f"models/{model} is not found for API version v1beta, or is not supported.",
        500: "An internal error has occurred.",
        503: "The model is overloaded. Please try again later.",
    }
    return error_body(code, messages.get(code, f"Scripted status {code}."))
