"""The config fields that hold secrets, and how their values stay out of every message.

STYLE.md asks errors to quote the value they refuse; for these fields that would publish a key
(through ``check``, the log and ``/health``), so their errors name the field and the type
expected, never the value. This is the one list: a field that holds a secret is added here, and
the property test in ``tests/config/test_secrets.py`` reads it.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from proxy.yamlsource import Path_, Source

# Each a path into the YAML; "*" stands for any key or list position. Whatever the file puts at
# such a place is a secret, in any shape: a string, a list of them, a mapping, a number.
SECRET_FIELDS: tuple[tuple[str, ...], ...] = (
    ("listen", "admin_key"),
    ("clients", "*", "key"),
    ("responders", "*", "api_keys"),
    ("responders", "*", "api_keys_file"),
    # A Vertex service account's JSON, given inline (``credentials: "${SA_JSON}"``).
    ("responders", "*", "credentials"),
)
# A mapping key under a secret field this long is taken as a secret too (a key written as
# ``{AIza…: x}`` would be quoted in a path); a shorter one is a field name, perhaps misspelt.
KEY_AS_SECRET = 16
# Under a secret field, these keys name things that are not secret (a key's project).
NOT_SECRET = frozenset({"project"})
# URLs that may carry a password (``redis://:pw@host``): the password is a secret.
URL_FIELDS: tuple[tuple[str, ...], ...] = (
    ("store", "shared"),
    ("tracing", "endpoint"),
    ("responders", "*", "base_url"),
)


def hide_secrets(source: Source) -> None:
    """Mark every secret field of ``source`` (and the scalars in it) so that no issue, past or
    future, quotes them."""
    values: set[str] = set()
    for pattern in SECRET_FIELDS:
        _walk(source, source.data, (), pattern, values)
    for pattern in URL_FIELDS:
        for path, value in _at(source.data, (), pattern):
            if isinstance(value, str):
                values.update(p for p in (_url_password(value), *_query_passwords(value)) if p)
            else:  # a URL field that is not a string: nothing in it is shown
                source.secret_paths.add(path)
                _scalars(value, values)
    source.hide(values)


def _walk(source: Source, data: Any, path: Path_, pattern: tuple[str, ...], out: set[str]) -> None:
    if not pattern:
        source.secret_paths.add(path)
        _scalars(data, out)
        return
    step, rest = pattern[0], pattern[1:]
    if isinstance(data, dict):
        for key, value in data.items():
            if step in ("*", key):
                _walk(source, value, (*path, key), rest, out)
    elif isinstance(data, list):
        if step == "*":
            for i, value in enumerate(data):
                _walk(source, value, (*path, i), rest, out)
        else:  # a list where a mapping holding the secret was expected: all of it may be one
            source.secret_paths.add(path)
            _scalars(data, out)
    elif data is not None and path:
        # A scalar where the structure that holds a secret was expected (a client written as a
        # bare string, `clients: ${KEY}`): it is most likely the secret itself.
        source.secret_paths.add(path)
        _scalars(data, out)


def _scalars(data: Any, out: set[str]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if len(str(key)) >= KEY_AS_SECRET:
                _scalars(key, out)
            if key not in NOT_SECRET:
                _scalars(value, out)
    elif isinstance(data, list):
        for value in data:
            _scalars(value, out)
    elif isinstance(data, str | int | float) and not isinstance(data, bool):
        text = str(data).strip()
        if text:
            out.add(text)
            out.update(part for part in re.split(r"[\s,;]+", text) if part)


def _at(data: Any, path: Path_, pattern: tuple[str, ...]) -> list[tuple[Path_, Any]]:
    if not pattern:
        return [(path, data)]
    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        if pattern[0] in ("*", key):
            found += _at(value, (*path, key), pattern[1:])
    return found


def _query_passwords(url: str) -> list[str]:
    """The ``password`` parameters of a URL's query (redis-py takes one there too)."""
    query = url.partition("?")[2].partition("#")[0]
    found = [p.partition("=")[2] for p in query.split("&") if p.partition("=")[0] == "password"]
    return [*found, *(urllib.parse.unquote_plus(v) for v in found)]  # as written, and decoded


def _url_password(url: str) -> str:
    """The password of ``[scheme://]user:password@host/…`` (all of the user part when it has no
    colon: a token), or ""."""
    _, sep, rest = url.partition("://")
    auth, at, _ = (rest if sep else url).partition("/")[0].rpartition("@")
    if not at:
        return ""
    return auth.split(":", 1)[1] if ":" in auth else auth
