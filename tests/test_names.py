"""Model names: one safe path segment, never more."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.names import valid_model_name


@given(st.text(max_size=200))
def test_an_accepted_name_is_one_plain_segment(name: str) -> None:
    if valid_model_name(name):
        assert not set(name) & set("/\\%:?# ")
        assert ".." not in name
        assert name.isascii()
        assert name.isprintable()
        assert 1 <= len(name) <= 128


def test_real_model_names_are_accepted() -> None:
    for name in (
        "gemini-2.5-flash-lite",
        "gemini-3-flash-preview",
        "gemini-1.5-flash-001",
        "text-embedding-004",
        "gemma-3-27b-it",
        "default",
    ):
        assert valid_model_name(name)
