"""What a request that names files or a cached content is pinned to.

A ``generateContent`` / ``streamGenerateContent`` / ``countTokens`` body may carry
``fileData.fileUri`` parts and a ``cachedContent`` (so may a ``cachedContents`` create, and the
OpenAI-compatible surface's ``extra_body.google.cached_content``). Each must belong to the
calling client (else the answer is Gemini's own for a resource that does not exist), and all
must be held by one key: the call is then sent only with that key (and, for a cache, only to
the cache's model).

SECURITY: the check reads the parsed body, as Gemini's JSON parser reads it, so it holds
against any spelling a parser accepts: escaped field names (``"file\u0055ri"``), either case
convention, any depth, a file URI with a suffix or percent-escapes. The byte pre-filter is
conservative: any escape in the body, or any of the names, and the body is walked.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from proxy.errors import InvalidArgument, PermissionDenied
from proxy.resources.owners import CACHE, FILE, Holder, Owners
from proxy.responders.base import Pin

# Gemini's file URIs: ``https://…/v1beta/files/abc123`` (or a bare ``files/abc123``), taken
# leniently: whatever follows the id (``?x``, ``/``, ``#``) is not part of it. A name followed
# by a dot (``files/report.pdf`` on some web site) is not a Gemini file's.
_FILE_URI = re.compile(r"(?:^|/)files/([a-z0-9][a-z0-9-]{0,63})(?![a-z0-9.-])", re.IGNORECASE)
_MARKERS = re.compile(rb"(?i:file_?uri|cached_?content)|\\u")
FILE_KEYS = frozenset({"fileUri", "file_uri"})
CACHE_KEYS = frozenset({"cachedContent", "cached_content"})


def names_resources(body: bytes) -> bool:
    """A cheap first look, so that plain bodies are never walked: True for any body that names
    a resource or holds an escape (which may spell a name)."""
    return _MARKERS.search(body) is not None


def file_name(uri: str) -> str | None:
    """``files/{id}`` of a Gemini file URI, or None for any other URI."""
    match = _FILE_URI.search(unquote(uri).strip())
    return f"files/{match.group(1).lower()}" if match else None


def named(data: Any) -> tuple[list[str], list[str]]:
    """The files and the cached contents ``data`` names, at any depth (no recursion: a body
    nested a thousand deep is walked like any other)."""
    files: list[str] = []
    caches: list[str] = []
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict | list):
                    stack.append(value)
                elif not isinstance(value, str) or not value:
                    continue
                elif key in FILE_KEYS:
                    name = file_name(value)
                    if name is not None:
                        files.append(name)
                elif key in CACHE_KEYS:
                    short = value.strip()
                    caches.append(
                        short if short.startswith("cachedContents/") else f"cachedContents/{short}"
                    )
        elif isinstance(node, list):
            stack.extend(node)
    return list(dict.fromkeys(files)), list(dict.fromkeys(caches))


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
    files, caches = named(data)
    wanted = [(FILE, n) for n in files] + [(CACHE, n) for n in caches]
    if not wanted:
        return None
    holders: list[tuple[str, Holder]] = []
    for kind, name in wanted:
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
    models = {h.model for _, h in holders if h.kind == CACHE}
    if len(models) > 1:
        raise InvalidArgument("The request names cached contents of different models.")
    return Pin(responder, key_index, models.pop() if models else "")
