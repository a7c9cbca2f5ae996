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
        ("", ""),
    ],
)
def test_redact(query: str, shown: str) -> None:
    assert redact(query) == shown
