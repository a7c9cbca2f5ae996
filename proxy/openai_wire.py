"""The OpenAI API's wire shapes, as Gemini's OpenAI-compatible endpoint speaks them.

For the responders that answer without an upstream (they speak these shapes from text they
decide), and for the errors the proxy makes on the ``/v1beta/openai/`` surface, which the
OpenAI SDKs parse: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from proxy.errors import status_name

# The actions of the OpenAI-compatible surface, as a Call names them, and their upstream paths.
CHAT = "openai.chat"
CHAT_STREAM = "openai.chat.stream"
EMBEDDINGS = "openai.embeddings"
PATHS = {CHAT: "chat/completions", CHAT_STREAM: "chat/completions", EMBEDDINGS: "embeddings"}

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(code: int, message: str, status: str | None = None) -> bytes:
    """The OpenAI error shape; ``code`` carries Gemini's status name (``RESOURCE_EXHAUSTED``)."""
    kind = _TYPES.get(code, "api_error" if code >= 500 else "invalid_request_error")
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": kind,
                "param": None,
                "code": status or status_name(code),
            }
        }
    )


def from_upstream_error(code: int, body: bytes) -> bytes:
    """An upstream error (Gemini's object, or its compat endpoint's ``[{"error": …}]``) in the
    OpenAI shape, so an OpenAI SDK shows the message rather than raw text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_body(code, body.decode(errors="replace")[:2000] or "Upstream error.")
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return error_body(code, "Upstream error.")
    if "type" in error:  # already OpenAI's shape
        return orjson.dumps({"error": error})
    status = error.get("status")
    return error_body(
        code,
        str(error.get("message", "Upstream error.")),
        status if isinstance(status, str) else None,
    )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def as_contents(data: dict[str, Any]) -> dict[str, Any]:
    """A chat request's messages as Gemini ``contents``, for the text of local responders."""
    if "input" in data:  # embeddings
        inputs = data["input"] if isinstance(data["input"], list) else [data["input"]]
        return {"contents": [{"role": "user", "parts": [{"text": str(i)}]} for i in inputs]}
    messages = data.get("messages")
    turns = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            role = "model" if message.get("role") == "assistant" else "user"
            turns.append({"role": role, "parts": [{"text": _text_of(message.get("content"))}]})
    return {"contents": turns}


def usage(prompt: int, output: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


def completion(text: str, model: str, rid: str, prompt: int, output: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage(prompt, output),
    }


def chunk(text: str, model: str, rid: str, *, last: bool, usage_of: dict[str, int] | None) -> bytes:
    """One ``chat.completion.chunk`` as an SSE event."""
    obj: dict[str, Any] = {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": text},
                "finish_reason": "stop" if last else None,
            }
        ],
    }
    if usage_of is not None:
        obj["usage"] = usage_of
    return sse(obj)


def sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def embeddings(vectors: list[list[float]], model: str, prompt: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "l104-proxy"}
