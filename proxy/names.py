"""Which model names the proxy accepts in a URL or a config.

A name is one path segment of letters, digits, ``.``, ``_`` and ``-``: no slash, no ``..``, no
encoded separator or control character can make it reach another upstream path.
"""

from __future__ import annotations

import re

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def valid_model_name(name: str) -> bool:
    return _MODEL.fullmatch(name) is not None and ".." not in name
