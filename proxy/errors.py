"""The one error hierarchy of the proxy.

Every error the proxy makes itself is a :class:`ProxyError`. The outermost middleware turns it
into Gemini's JSON body, so the google-genai SDK raises its usual ``ClientError``/``ServerError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

# Gemini's status names for the HTTP codes the proxy answers with.
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_name(code: int) -> str:
    """Gemini's status string for an HTTP code (``INTERNAL`` for anything unknown at 5xx)."""
    return STATUS_NAMES.get(code, "INTERNAL" if code >= 500 else "INVALID_ARGUMENT")


def error_body(
    code: int, message: str, status: str | None = None, details: list[Any] | None = None
) -> bytes:
    """Gemini's error body: ``{"error": {"code", "message", "status"[, "details"]}}``."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or status_name(code),
    }
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


class ProxyError(Exception):
    """An error with an HTTP code that the outer layer sends in Gemini's shape."""

    code: int = 500

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.details = details

    @property
    def status(self) -> str:
        return status_name(self.code)

    def body(self) -> bytes:
        return error_body(self.code, self.message, self.status, self.details)


class InvalidArgument(ProxyError):
    code = 400


class Unauthenticated(ProxyError):
    code = 401


class PermissionDenied(ProxyError):
    code = 403


class NotFound(ProxyError):
    code = 404


class PayloadTooLarge(ProxyError):
    code = 413


class ClientRateLimited(ProxyError):
    """The client went over its own rate limit; ``retry_after_s`` is when it may try again."""

    code = 429


class ChainExhausted(ProxyError):
    """Every member of the chain is cooling or answered 429. ``details`` carries Gemini's
    ``QuotaFailure`` (a violation per model) and ``RetryInfo``, for tools that read them."""

    code = 429


def quota_details(models: Sequence[tuple[str, str]], retry_s: float) -> list[Any]:
    """Gemini's ``QuotaFailure`` (one violation per ``(model, why)``) and ``RetryInfo``."""
    return [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "subject": f"models/{model}",
                    "description": why,
                    "quotaDimensions": {"model": model},
                }
                for model, why in models
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_s:.0f}s"},
    ]


class UpstreamBadAnswer(ProxyError):
    """Every member answered something that is no Gemini answer (a 200 that is not JSON)."""

    code = 502


class UpstreamUnavailable(ProxyError):
    """Every member was unreachable, dropped the connection or answered 5xx."""

    code = 503


class SharedStateUnavailable(ProxyError):
    """``store.shared_fail: closed`` and Redis cannot be reached."""

    code = 503


class UpstreamTimeout(ProxyError):
    """Every member that was tried timed out."""

    code = 504


class AttemptFailed(Exception):
    """One upstream attempt failed before any answer: ``kind`` is ``timeout``, ``connect``,
    ``bad_answer`` (a 200 that is not JSON) or ``too_large`` (past ``max_response_bytes``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
