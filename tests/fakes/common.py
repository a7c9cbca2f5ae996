"""What the fake upstream's surfaces share: its state, Gemini's error bodies, the scripts."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class State:
    def __init__(self) -> None:
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.quotas: dict[str, tuple[int, str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.counters: dict[str, int] = {"streams_cancelled": 0, "streams_finished": 0}
        self.gate = asyncio.Event()
        self.gate_waiting = 0
        self.bad_keys: dict[str, int] = {}  # key -> 400 (invalid) or 403 (suspended)


STATE: web.AppKey[State] = web.AppKey("state", State)


def error(
    code: int,
    message: str,
    status: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    array: bool = False,
) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "status": status}}
    if details is not None:
        body["error"]["details"] = details
    # Gemini's OpenAI-compatible endpoint wraps its errors in a JSON array.
    return web.json_response([body] if array else body, status=code, headers=headers)


def quota_error(model: str, step: dict[str, Any], *, array: bool = False) -> web.Response:
    per_day = step.get("quota") == "day"
    quota_id = (
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        if per_day
        else "GenerateContentInputTokensPerModelPerMinute-FreeTier"
        if step.get("quota") == "tokens"
        else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    )
    delay = step.get("delay", "23s")
    details: list[Any] = [
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": str(step.get("value", "20")),
                }
            ],
        },
    ]
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    headers = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else None
    return error(
        429,
        "You exceeded your current quota, please check your plan and billing "
        f"details. Please retry in {delay}.",
        "RESOURCE_EXHAUSTED",
        details,
        headers,
        array=array,
    )


STATUS_ERRORS = {
    400: ("Request contains an invalid argument.", "INVALID_ARGUMENT"),
    403: ("Permission denied.", "PERMISSION_DENIED"),
    500: ("An internal error has occurred.", "INTERNAL"),
    503: ("The model is overloaded. Please try again later.", "UNAVAILABLE"),
}


def next_step(state: State, model: str) -> dict[str, Any]:
    """The scripted step for this call to ``model`` (a 429 once its hard quota is used up)."""
    steps = state.scripts.get(model) or []
    step: dict[str, Any] = steps.pop(0) if steps else {}
    if model in state.quotas:
        limit, delay = state.quotas[model]
        used = sum(1 for r in state.requests if r["model"] == model)
        if used > limit:
            step = {"status": 429, "value": str(limit), "delay": delay}
    return step


def record(
    request: web.Request, model: str, action: str, body: bytes, **extra: Any
) -> dict[str, Any]:
    """Note what came in, for ``GET /_requests``."""
    entry = {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "raw_query": request.rel_url.raw_query_string,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "model": model,
        "action": action,
        "body": body.decode(errors="replace"),
        # Which connection it came on: a new port is a new connection.
        "peer_port": (request.transport.get_extra_info("peername") or ("", 0))[1]
        if request.transport is not None
        else 0,
        **extra,
    }
    request.app[STATE].requests.append(entry)
    return entry


def key_refusal(key: str, status: int) -> web.Response:
    """Gemini's answer to a key that is invalid (400) or whose project is suspended (403)."""
    reason, message = (
        ("API_KEY_INVALID", "API key not valid. Please pass a valid API key.")
        if status == 400
        else ("CONSUMER_SUSPENDED", "Permission denied: Consumer has been suspended.")
    )
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
    ]
    return error(
        status, message, "INVALID_ARGUMENT" if status == 400 else "PERMISSION_DENIED", details
    )
