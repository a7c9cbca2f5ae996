"""What a request that names files or a cached content is pinned to.

A ``generateContent`` / ``streamGenerateContent`` / ``countTokens`` body may carry
``fileData.fileUri`` parts and a ``cachedContent``. Each must belong to the calling client (else
the answer is Gemini's own for a resource that does not exist), and all must be held by one key:
the call is then sent only with that key (and, for a cache, only to the cache's model).
"""

from __future__ import annotations

import re
from typing import Any

from proxy.errors import InvalidArgument, PermissionDenied
from proxy.resources.owners import CACHE, FILE, Holder, Owners
from proxy.responders.base import Pin

# Gemini's file URIs: ``https://…/v1beta/files/abc123`` (or a bare ``files/abc123``).
_FILE_URI = re.compile(r"(?:^|/)files/([a-z0-9][a-z0-9-]{0,63})$")
_MARKERS = re.compile(rb"fileUri|file_uri|cachedContent|cached_content")


def names_resources(body: bytes) -> bool:
    """A cheap first look, so that plain bodies are never walked."""
    return _MARKERS.search(body) is not None


def _file_names(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for key in ("fileUri", "file_uri"):
            uri = node.get(key)
            if isinstance(uri, str) and (match := _FILE_URI.search(uri)):
                out.append(f"files/{match.group(1)}")
        for value in node.values():
            _file_names(value, out)
    elif isinstance(node, list):
        for value in node:
            _file_names(value, out)


def _cache_name(data: dict[str, Any]) -> str | None:
    inner = data.get("generateContentRequest")
    for source in (data, inner if isinstance(inner, dict) else {}):
        for key in ("cachedContent", "cached_content"):
            name = source.get(key)
            if isinstance(name, str) and name:
                return name if name.startswith("cachedContents/") else f"cachedContents/{name}"
    return None


def denied(kind: str, name: str) -> PermissionDenied:
    """Gemini's answer for a resource that does not exist, or is not the caller's."""
    label = "File" if kind == FILE else "CachedContent"
    short = name.split("/", 1)[-1]
    return PermissionDenied(
        f"You do not have permission to access the {label} {short} or it may not exist."
    )


async def pin_for(data: dict[str, Any], client: str, owners: Owners) -> Pin | None:
    """The pin for a request body, or ``None`` if it names no resource.

    Raises ``PermissionDenied`` for a resource that is unknown or another client's, and
    ``InvalidArgument`` when the resources named are held by different keys.
    """
    named: list[tuple[str, str]] = []
    files: list[str] = []
    _file_names(data, files)
    named.extend((FILE, n) for n in dict.fromkeys(files))
    cache = _cache_name(data)
    if cache is not None:
        named.append((CACHE, cache))
    if not named:
        return None
    holders: list[tuple[str, Holder]] = []
    for kind, name in named:
        holder = await owners.find(name)
        if holder is None or holder.kind != kind or holder.client != client:
            raise denied(kind, name)
        holders.append((name, holder))
    places = {(h.responder, h.key_index) for _, h in holders}
    if len(places) > 1:
        listed = ", ".join(name for name, _ in holders)
        raise InvalidArgument(
            f"The request names files or cached contents held by different upstream API keys "
            f"({listed}); one request can only use resources held by one key."
        )
    responder, key_index = places.pop()
    model = next((h.model for _, h in holders if h.kind == CACHE), "")
    return Pin(responder, key_index, model)
