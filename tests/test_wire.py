"""Wire helpers used by the local responders."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.errors import InvalidArgument
from proxy.wire import last_user_text, parse_body, split, stream_frames


@given(st.text(max_size=200), st.integers(min_value=1, max_value=50))
def test_split_keeps_every_character_in_order(text: str, pieces: int) -> None:
    parts = split(text, pieces)
    assert "".join(parts) == text
    assert 1 <= len(parts) <= pieces


def test_json_array_frames_parse_as_a_list() -> None:
    frames = stream_frames([{"a": 1}, {"b": 2}], sse=False)
    assert orjson.loads(b"".join(frames)) == [{"a": 1}, {"b": 2}]
    assert stream_frames([{"a": 1}], sse=True) == [b'data: {"a":1}\r\n\r\n']


@pytest.mark.parametrize("body", [b"{", b"[]", b'"x"', b'{"contents": 1}'])
def test_parse_body_rejects_with_invalid_argument(body: bytes) -> None:
    with pytest.raises(InvalidArgument):
        parse_body(body)


def test_last_user_text_prefers_user_turns() -> None:
    data = {
        "contents": [
            {"role": "user", "parts": [{"text": "u"}]},
            {"role": "model", "parts": [{"text": "m"}]},
        ]
    }
    assert last_user_text(data) == "u"
    assert last_user_text({"contents": {"parts": [{"text": "single"}]}}) == "single"
    assert last_user_text({}) == ""
