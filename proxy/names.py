"""Which model names and resource paths the proxy accepts in a URL or a config.

A name is one path segment of letters, digits, ``.``, ``_`` and ``-``: no slash, no ``..``, no
encoded separator or control character can make it reach another upstream path. A resource path
(``fileSearchStores/s/documents/d:get``) is such segments joined by single slashes, the last one
with an optional ``:action``.
"""

from __future__ import annotations

import re

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9._~-]{0,255}"
_PATH = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,15}}(?::[A-Za-z][A-Za-z0-9]{{0,63}})?")


def valid_model_name(name: str) -> bool:
    return _MODEL.fullmatch(name) is not None and ".." not in name


def valid_resource_path(path: str) -> bool:
    """A path under a version that can only name what it says: no empty, ``.`` or ``..``
    segment (an upstream would resolve those to another path), nothing encoded."""
    return _PATH.fullmatch(path) is not None and ".." not in path
