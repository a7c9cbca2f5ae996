"""What a request body that names files or a cached content is pinned to."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from proxy.errors import InvalidArgument, PermissionDenied
from proxy.resources import kinds
from proxy.resources.owners import Holder, Owners
from proxy.resources.pinning import named, names_resources, pin_for
from proxy.responders.base import Pin
from tests.fuzz.spellings import spelt

FILE, CACHE = kinds.FILE.tag, kinds.CACHE.tag

GEMINI = "https://generativelanguage.googleapis.com"


def owners() -> Owners:
    held = Owners({"up": ("k0", "k1")}, None)
    held.held.update(
        {
            "files/aaa": Holder(FILE, "up", 0, "alice"),
            "files/bbb": Holder(FILE, "up", 1, "alice"),
            "files/ccc": Holder(FILE, "up", 0, "bob"),
            "cachedContents/c1": Holder(CACHE, "up", 0, "alice", "m2"),
        }
    )
    return held


def file_part(uri: str, key: str = "fileUri") -> dict[str, Any]:
    return {"fileData": {key: uri, "mimeType": "text/plain"}}


def body(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": list(parts)}], **extra}


@pytest.mark.parametrize(
    ("data", "pin"),
    [
        (body({"text": "hi"}), None),
        (
            body(file_part("https://generativelanguage.googleapis.com/v1beta/files/aaa")),
            Pin("up", 0),
        ),
        (body(file_part("files/bbb", "file_uri")), Pin("up", 1)),
        (body(file_part("https://www.youtube.com/watch?v=x")), None),
        (body({"text": "q"}, cachedContent="cachedContents/c1"), Pin("up", 0, "m2")),
        (
            body(file_part("files/aaa"), cached_content="c1"),
            Pin("up", 0, "m2"),
        ),
        ({"generateContentRequest": body(file_part("files/bbb"))}, Pin("up", 1)),
    ],
)
async def test_pins(data: dict[str, Any], pin: Pin | None) -> None:
    assert await pin_for(data, "alice", owners()) == pin


@pytest.mark.parametrize("uri", ["files/ccc", "files/zzz"])
async def test_another_clients_file_or_an_unknown_one_does_not_exist(uri: str) -> None:
    with pytest.raises(PermissionDenied, match="or it may not exist"):
        await pin_for(body(file_part(uri)), "alice", owners())


async def test_files_of_two_keys_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="different upstream API keys"):
        await pin_for(body(file_part("files/aaa"), file_part("files/bbb")), "alice", owners())


def test_plain_bodies_are_not_walked() -> None:
    assert not names_resources(b'{"contents": [{"parts": [{"text": "hi"}]}]}')
    assert names_resources(b'{"contents": [{"parts": [{"fileData": {"fileUri": "x"}}]}]}')


# -- any spelling a JSON parser accepts (the check parses what Gemini parses) ---------------

FUZZ = settings(
    # L104_FUZZ_EXAMPLES=2000 for the run by hand; CI runs the same 300 every time.
    max_examples=int(os.environ.get("L104_FUZZ_EXAMPLES", "300")),
    derandomize=True,
    deadline=None,
)


@FUZZ
@given(case=spelt())
def test_the_check_finds_a_resource_however_it_is_spelt(case: tuple[bytes, str]) -> None:
    raw, name = case
    assert names_resources(raw)  # the pre-filter lets it through to the walk
    files, caches = named(orjson.loads(raw))
    assert name in files + caches


@pytest.mark.parametrize("depth", [10, 500, 1000, 1020])
def test_the_walk_takes_any_depth_a_parser_reads(depth: int) -> None:
    raw = '{"a":' * depth + '{"fileUri": "files/deep"}' + "}" * depth
    assert named(orjson.loads(raw)) == (["files/deep"], [])


@pytest.mark.parametrize(
    "uri",
    [
        f"{GEMINI}/v1beta/files/ccc?x",
        f"{GEMINI}/v1beta/files/ccc/",
        f"{GEMINI}/v1beta/files/CCC",
        f"{GEMINI}/v1beta/files%2Fccc",
        " files/ccc ",
    ],
)
async def test_a_uri_with_a_suffix_is_still_checked(uri: str) -> None:
    with pytest.raises(PermissionDenied):
        await pin_for(body(file_part(uri)), "alice", owners())


async def test_a_cache_named_anywhere_is_checked() -> None:
    data = {"messages": [], "google": {"cached_content": "cachedContents/c1"}}
    assert await pin_for(data, "alice", owners()) == Pin("up", 0, "m2")
    with pytest.raises(PermissionDenied):
        await pin_for(data, "bob", owners())


def test_a_web_page_named_files_is_not_a_file() -> None:
    assert named({"fileUri": "https://example.com/files/report.pdf"}) == ([], [])
