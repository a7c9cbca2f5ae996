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


# -- the newer groups' fields --------------------------------------------------------------


def held_more() -> Owners:
    held = owners()
    held.held.update(
        {
            "interactions/v1_i1": Holder("interaction", "up", 1, "alice", "m1"),
            "fileSearchStores/s1": Holder("fileSearchStore", "up", 1, "alice"),
            "fileSearchStores/s2": Holder("fileSearchStore", "up", 0, "bob"),
        }
    )
    return held


@pytest.mark.parametrize(
    ("data", "pin"),
    [
        ({"model": "x", "input": "hi", "previous_interaction_id": "v1_i1"}, Pin("up", 1)),
        ({"previousInteractionId": "interactions/v1_i1"}, Pin("up", 1)),
        (
            {"tools": [{"fileSearch": {"file_search_store_names": ["fileSearchStores/s1"]}}]},
            Pin("up", 1),
        ),
        ({"tools": [{"type": "file_search", "file_search_store_names": ["s1"]}]}, Pin("up", 1)),
        ({"batch": {"inputConfig": {"fileName": "files/bbb"}}}, Pin("up", 1)),
        ({"batch": {"input_config": {"file_name": "files/aaa"}}}, Pin("up", 0)),
        ({"fileName": "files/bbb"}, Pin("up", 1)),  # importFile
        # A tool's own arguments may say fileName: that is the caller's data, not a resource.
        ({"contents": [{"parts": [{"functionCall": {"args": {"fileName": "files/zzz"}}}]}]}, None),
        # An Interactions content's uri counts only if it is a file the proxy holds.
        ({"input": [{"type": "image", "uri": "https://example.com/files/zzz"}]}, None),
        ({"input": [{"type": "document", "uri": "files/bbb"}]}, Pin("up", 1)),
    ],
)
async def test_the_newer_fields_pin(data: dict[str, Any], pin: Pin | None) -> None:
    assert await pin_for(data, "alice", held_more()) == pin


@pytest.mark.parametrize(
    "data",
    [
        {"previous_interaction_id": "v1_unknown"},
        {"tools": [{"fileSearch": {"fileSearchStoreNames": ["fileSearchStores/s2"]}}]},
        {"batch": {"inputConfig": {"fileName": "files/ccc"}}},
        {"input": [{"type": "document", "uri": "files/ccc"}]},  # bob's file, by uri
    ],
)
async def test_the_newer_fields_refuse_what_is_not_the_callers(data: dict[str, Any]) -> None:
    with pytest.raises(PermissionDenied, match="may not exist"):
        await pin_for(data, "alice", held_more())


async def test_a_store_and_a_file_on_two_keys_are_refused() -> None:
    data = {
        "tools": [{"fileSearch": {"fileSearchStoreNames": ["fileSearchStores/s1"]}}],
        "contents": [{"parts": [{"fileData": {"fileUri": "files/aaa"}}]}],
    }
    with pytest.raises(InvalidArgument, match="different upstream API keys"):
        await pin_for(data, "alice", held_more())


async def test_names_under_a_held_resource_are_its() -> None:
    held = held_more()
    found = await held.holder_of("fileSearchStores/s1/upload/operations/o9")
    assert found is not None
    assert found[0] == "fileSearchStores/s1"
    assert await held.holder_of("models/m1/operations/o9") is None
