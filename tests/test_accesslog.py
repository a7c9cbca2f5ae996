"""The access log never shows a ?key=."""

from __future__ import annotations

import pytest

from proxy.accesslog import redact


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("key=secret", "key=[redacted]"),
        ("alt=sse&key=secret", "alt=sse&key=[redacted]"),
        ("KEY=secret&pageSize=2", "KEY=[redacted]&pageSize=2"),
        ("monkey=1", "monkey=1"),
        ("a=1;key=secret;b=2", "a=1;key=[redacted];b=2"),
        ("a=1+key=secret", "a=1+key=[redacted]"),
        ("%6Bey=secret&x=1", "key=[redacted]&x=1"),
        ("b'GET /x?key=secret HTTP/9.9'", "b'GET /x?key=[redacted] HTTP/9.9'"),
        ("Authorization: Bearer secret", "Authorization: Bearer [redacted]"),
        ("x-goog-api-key: secret", "x-goog-api-key: [redacted]"),
        ("upload_token=secret", "upload_token=[redacted]"),
        ("", ""),
    ],
)
def test_redact(query: str, shown: str) -> None:
    assert redact(query) == shown
