"""Whose fault an upstream error is: the key's (it is disabled), or the request's (it goes back
as it is). Gemini names the reason in an ``ErrorInfo`` detail or its message."""

from __future__ import annotations

# ``ErrorInfo.reason`` values, and message words, that blame the key rather than the request.
_KEY_REASONS = (
    b"API_KEY_INVALID",
    b"API_KEY_SERVICE_BLOCKED",
    b"API_KEY_HTTP_REFERRER_BLOCKED",
    b"API_KEY_IP_ADDRESS_BLOCKED",
    b"CONSUMER_SUSPENDED",
    b"SERVICE_DISABLED",
)
_KEY_MESSAGES = (b"API key not valid", b"API key expired", b"has been suspended")


def key_fault(status: int, body: bytes) -> bool:
    """Is this a 400/403 that says the key is bad (invalid, expired, blocked, suspended)?

    A 403 for a resource of another project ("…permission to access the File…") is not the
    key's fault: the request named something that key cannot see.
    """
    if status not in (400, 403):
        return False
    return any(r in body for r in _KEY_REASONS) or any(m in body for m in _KEY_MESSAGES)
