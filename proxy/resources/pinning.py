"""What a request that names upstream resources is pinned to.

A body may name resources in the fields Gemini reads, in either spelling (the SDK sends nested
objects in snake_case): ``fileData.fileUri``; ``cachedContent``; an interaction's
``previous_interaction_id``; a file search tool's ``fileSearchStoreNames``; a batch's
``inputConfig.fileName`` and ``importFile``'s ``fileName``; an Interactions content's ``uri``.
Each must belong to the calling client (else the answer is Gemini's own for a resource that does
not exist), and all must be held by one key: the call is then sent only with that key (and, for a
cache, only to the cache's model).

SECURITY: the check reads the parsed body, as Gemini's JSON parser reads it, so it holds
against any spelling a parser accepts: escaped field names (``"file\\u0055ri"``), either case
convention, any depth, a file URI with a suffix or percent-escapes. The byte pre-filter is
conservative: any escape in the body, or any of the names, and the body is walked.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from proxy.errors import InvalidArgument, PermissionDenied
from proxy.resources.kinds import CACHE, denied_message
from proxy.resources.owners import Holder, Owners
from proxy.responders.base import Pin

# Gemini's file URIs: ``https://…/v1beta/files/abc123`` (or a bare ``files/abc123``), taken
# leniently: whatever follows the id (``?x``, ``/``, ``#``) is not part of it. A name followed
# by a dot (``files/report.pdf`` on some web site) is not a Gemini file's.
_FILE_URI = re.compile(r"(?:^|/)files/([a-z0-9][a-z0-9-]{0,63})(?![a-z0-9.-])", re.IGNORECASE)
_MARKERS = re.compile(
    rb"(?i:file_?uri|cached_?content|previous_?interaction|file_?search_?store|file_?name"
    rb'|"uri")|\\u'
)
FILE_KEYS = frozenset({"fileUri", "file_uri"})
CACHE_KEYS = frozenset({"cachedContent", "cached_content"})
INTERACTION_KEYS = frozenset({"previous_interaction_id", "previousInteractionId"})
STORE_KEYS = frozenset({"fileSearchStoreNames", "file_search_store_names"})
# ``fileName`` names a file only in a batch's input and in ``importFile``'s body (top level):
# elsewhere (a tool's arguments, say) it is the caller's own data.
FILE_NAME_KEYS = frozenset({"fileName", "file_name"})
FILE_NAME_PARENTS = frozenset({"", "inputConfig", "input_config"})
# An Interactions content's ``uri`` may be any URL: it counts only when it names a file the
# proxy holds (then it must be the caller's).
URI_KEYS = frozenset({"uri"})


def names_resources(body: bytes) -> bool:
    """A cheap first look, so that plain bodies are never walked: True for any body that names
    a resource or holds an escape (which may spell a name)."""
    return _MARKERS.search(body) is not None


def file_name(uri: str) -> str | None:
    """``files/{id}`` of a Gemini file URI, or None for any other URI."""
    match = _FILE_URI.search(unquote(uri).strip())
    return f"files/{match.group(1).lower()}" if match else None


def _under(collection: str, value: str) -> str:
    short = value.strip()
    return short if short.startswith(f"{collection}/") else f"{collection}/{short}"


def named(data: Any) -> tuple[list[str], list[str]]:
    """The resources ``data`` names at any depth (no recursion: a body nested a thousand deep is
    walked like any other): those it surely names, and those it may (a ``uri`` that has the
    shape of a file's)."""
    sure: list[str] = []
    maybe: list[str] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        parent, node = stack.pop()
        if isinstance(node, list):
            stack.extend((parent, item) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key in STORE_KEYS:
                values = value if isinstance(value, list) else [value]
                sure += [_under("fileSearchStores", v) for v in values if isinstance(v, str) and v]
            elif isinstance(value, dict | list):
                stack.append((key, value))
            elif not isinstance(value, str) or not value:
                continue
            elif key in FILE_KEYS:
                if (name := file_name(value)) is not None:
                    sure.append(name)
            elif key in CACHE_KEYS:
                sure.append(_under("cachedContents", value))
            elif key in INTERACTION_KEYS:
                sure.append(_under("interactions", value))
            elif key in FILE_NAME_KEYS and parent in FILE_NAME_PARENTS:
                if (name := file_name(value)) is not None:
                    sure.append(name)
            elif key in URI_KEYS and (name := file_name(value)) is not None:
                maybe.append(name)
    return list(dict.fromkeys(sure)), list(dict.fromkeys(maybe))


def denied(name: str) -> PermissionDenied:
    """Gemini's answer for a resource that does not exist, or is not the caller's."""
    return PermissionDenied(denied_message(name))


async def pin_for(data: dict[str, Any], client: str, owners: Owners) -> Pin | None:
    """The pin for a request body, or ``None`` if it names no resource.

    Raises ``PermissionDenied`` for a resource that is unknown or another client's, and
    ``InvalidArgument`` when the resources named are held by different keys.
    """
    sure, maybe = named(data)
    if not sure and not maybe:
        return None
    holders: list[tuple[str, Holder]] = []
    for name in sure + maybe:
        found = await owners.holder_of(name)
        if found is None and name in maybe:
            continue  # a URL that only looks like a file's: the caller's own business
        if found is None or found[1].client != client:
            raise denied(name)
        holders.append((name, found[1]))
    if not holders:
        return None
    places = {(h.responder, h.key_index) for _, h in holders}
    if len(places) > 1:
        listed = ", ".join(name for name, _ in holders)
        raise InvalidArgument(
            f"The request names resources held by different upstream API keys ({listed}); "
            "one request can only use resources held by one key."
        )
    responder, key_index = places.pop()
    models = {h.model for _, h in holders if h.kind == CACHE.tag}
    if len(models) > 1:
        raise InvalidArgument("The request names cached contents of different models.")
    return Pin(responder, key_index, models.pop() if models else "")
