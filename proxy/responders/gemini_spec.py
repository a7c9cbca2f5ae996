"""The ``gemini`` responder's options: the upstream, its keys (grouped by project), timeouts.

Keys come from the environment through ``${VAR}``; the spec never shows them in a repr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from proxy.reader import Reader
from proxy.yamlsource import dotted

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class UpstreamSpec(Protocol):
    """What the HTTP side of a remote responder reads of its spec (``gemini`` and ``vertex``)."""

    @property
    def base_url(self) -> str: ...
    @property
    def api_keys(self) -> tuple[str, ...]: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def first_byte_timeout_s(self) -> float: ...
    @property
    def projects(self) -> tuple[int, ...]: ...
    @property
    def project_names(self) -> tuple[str, ...]: ...
    @property
    def ca_file(self) -> str: ...


@dataclass(frozen=True, slots=True)
class GeminiSpec:
    base_url: str = DEFAULT_BASE_URL
    api_keys: tuple[str, ...] = ()
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 0.0  # until the answer's headers; 0: timeout_s
    without_keys: str = ""
    # The Google project of each key (an index into ``project_names``): quotas are per project.
    projects: tuple[int, ...] = ()
    project_names: tuple[str, ...] = ()
    ca_file: str = ""  # a CA bundle to trust for an https:// upstream (default: the system's)

    def __repr__(self) -> str:  # SECURITY: keys must never reach a log line through a repr.
        return f"GeminiSpec(base_url={self.base_url!r}, keys={len(self.api_keys)})"


# Several keys in one value (``GEMINI_API_KEYS="k1,k2 k3"``): split on commas, whitespace and
# newlines. A key never holds any of them.
_SEPARATORS = re.compile(r"[\s,]+")


def _split(value: str) -> list[str]:
    return [key for key in _SEPARATORS.split(value) if key]


def _keys_file(r: Reader) -> list[str]:
    """``api_keys_file: PATH``: one key a line, ``#`` comments (secrets mounted as a file)."""
    path = r.text("api_keys_file", "")
    if not path:
        return []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        r.error("api_keys_file", f"key '{dotted(r.where('api_keys_file'))}' cannot be read")
        return []
    return [key for line in lines for key in _split(line.split("#", 1)[0])]


def _keys(r: Reader) -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """``api_keys``: each a string (a project of its own) or ``{key, project}``; keys that
    share a project share its quotas. A string may hold several keys (a ``${VAR}`` of a comma
    list), and ``api_keys_file`` adds one key a line. An empty key is a variable that was not
    set (``${GEMINI_API_KEY:-}``): not a key."""
    raw = r.raw("api_keys", [])
    if isinstance(raw, str):
        raw = [raw]  # ``api_keys: ${GEMINI_API_KEYS}``: the variable's keys
    if not isinstance(raw, list):
        r.bad("api_keys", raw, "must be a list of keys, or of {key, project}")  # shows no key
        return (), (), ()
    keys: list[str] = []
    named: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            sub = Reader(r.source, (*r.where("api_keys"), i), item)
            found, project = [sub.text("key", required=True)], sub.text("project")
            sub.finish()
        elif isinstance(item, str | int) and not isinstance(item, bool):
            found, project = _split(str(item)), ""
        else:
            where = (*r.where("api_keys"), i)
            r.source.error(where, f"key '{dotted(where)}' must be a key or {{key, project}}")
            continue
        for key in found:
            if key.strip():
                keys.append(key)
                named.append(project or f"key {len(keys) - 1}")
    for key in _keys_file(r):
        keys.append(key)
        named.append(f"key {len(keys) - 1}")
    names = tuple(dict.fromkeys(named))
    return tuple(keys), tuple(names.index(n) for n in named), names


def parse(r: Reader) -> GeminiSpec:
    base_url = r.text("base_url", DEFAULT_BASE_URL).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        r.bad("base_url", base_url, "must start with http:// or https://")
    keys, projects, project_names = _keys(r)
    without = r.text("without_keys", "")
    if not keys and not without:
        r.error(
            "api_keys",
            f"key '{dotted(r.where('api_keys'))}' holds no key: set the "
            "variable it names, or name a responder in 'without_keys'",
        )
    return GeminiSpec(
        base_url=base_url,
        api_keys=keys,
        without_keys=without,
        projects=projects,
        project_names=project_names,
        **transport(r),
    )


def transport(r: Reader) -> dict[str, Any]:
    """The options every remote responder has: its timeouts and the CA it trusts."""
    return {
        "timeout_s": r.number("timeout_s", 120.0, low=0.001, high=3600),
        "connect_timeout_s": r.number("connect_timeout_s", 10.0, low=0.001, high=600),
        "first_byte_timeout_s": r.number("first_byte_timeout_s", 0.0, high=3600),
        "ca_file": _ca_file(r),
    }


def _ca_file(r: Reader) -> str:
    path = r.text("ca_file", "")
    if path and not Path(path).is_file():
        r.bad("ca_file", path, "no such file")
        return ""
    return path
