"""Typed reads from one YAML mapping, each mistake recorded with its line, key and value.

A :class:`Reader` never raises on bad input: it records an issue and hands back the default, so
``check`` can report every error of a file in one run.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from proxy.yamlsource import Path_, Source, dotted

T = TypeVar("T")
_MISSING: Any = object()


_KINDS = {str: "a string", int: "a number", float: "a number", bool: "true or false"}


def show(source: Source, path: Path_, value: Any) -> str:
    """``value`` as an error quotes it: ``value 'x'``. In a field that holds a secret, only its
    type (``a list (not shown: the field holds a secret)``): never the value, whatever its shape."""
    if source.is_secret(path):
        kind = (
            "a list"
            if isinstance(value, list)
            else "a mapping"
            if isinstance(value, dict)
            else _KINDS.get(type(value), "a value")
        )
        return f"{kind} (not shown: the field holds a secret)"
    # Scrubbed before it is cut: a key cut in two would no longer match.
    text = source.scrub(repr(value) if not isinstance(value, str) else f"'{value}'")
    return "value " + (text if len(text) <= 80 else text[:77] + "...")


class Reader:
    """Reads the keys of the mapping at ``path`` in ``source``."""

    def __init__(self, source: Source, path: Path_, data: Any) -> None:
        self.source = source
        self.path = path
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self.seen: set[str] = set()
        self.asked: set[str] = set()  # keys looked for with has(): accepted, read or not
        if data is not None and not isinstance(data, dict):
            source.error(
                path,
                f"key '{dotted(path) or '(top)'}' must be a mapping, "
                f"not {show(source, path, data).removeprefix('value ')}",
            )

    def where(self, key: str | int | None = None) -> Path_:
        return self.path if key is None else (*self.path, key)

    def error(self, key: str | int | None, message: str) -> None:
        self.source.error(self.where(key), message)

    def bad(self, key: str, value: Any, why: str) -> None:
        where = self.where(key)
        self.error(key, f"key '{dotted(where)}' has {show(self.source, where, value)}: {why}")

    def has(self, key: str) -> bool:
        self.asked.add(key)
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def _typed(
        self, key: str, default: T, check: Callable[[Any], T | None], why: str, required: bool
    ) -> T:
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.error(key, f"key '{dotted(self.where(key))}' is required")
            return default
        value = self.data[key]
        out = check(value)
        if out is None:
            self.bad(key, value, why)
            return default
        return out

    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        def check(v: Any) -> str | None:
            return v if isinstance(v, str) else (str(v) if isinstance(v, int | float) else None)

        return self._typed(key, default, check, "must be a string", required)

    def number(
        self,
        key: str,
        default: float,
        *,
        low: float = 0,
        high: float = float("inf"),
        whole: bool = False,
        required: bool = False,
    ) -> float:
        def check(v: Any) -> float | None:
            if isinstance(v, str):
                try:
                    v = float(v) if v.strip() else v
                except ValueError:
                    return None
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None
            if whole and v != int(v):
                return None
            return float(v) if low <= v <= high else None

        kind = "a whole number" if whole else "a number"
        rng = f" from {low:g} to {high:g}" if high != float("inf") else f" of at least {low:g}"
        return self._typed(key, default, check, f"must be {kind}{rng}", required)

    def whole(self, key: str, default: int, *, low: int = 0, high: int = 2**63) -> int:
        return int(self.number(key, default, low=low, high=high, whole=True))

    def flag(self, key: str, default: bool) -> bool:
        def check(v: Any) -> bool | None:
            return v if isinstance(v, bool) else None

        return self._typed(key, default, check, "must be true or false", False)

    def texts(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, list):
            self.bad(key, value, "must be a list of strings")
            return default
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str | int) and not isinstance(item, bool):
                out.append(str(item))
            else:
                where = (*self.where(key), i)
                self.source.error(
                    where,
                    f"key '{dotted(where)}' has {show(self.source, where, item)}: must be a string",
                )
        return tuple(out)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.bad(key, value, f"must be one of {', '.join(choices)}")
            return default
        return value

    def section(self, key: str) -> Reader:
        self.seen.add(key)
        return Reader(self.source, self.where(key), self.data.get(key))

    def finish(self, known: tuple[str, ...] = ()) -> None:
        """Record every key of the mapping that no read asked for, with the nearest accepted
        key as a suggestion; note the keys this mapping accepts in ``source.accepted``."""
        accepted = frozenset(self.seen | self.asked | set(known))
        self.source.accepted[self.path] = accepted | self.source.accepted.get(self.path, set())
        for key in self.data:
            if key not in self.seen and key not in known:
                near = difflib.get_close_matches(str(key), sorted(accepted), n=1, cutoff=0.6)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                self.error(key, f"key '{dotted(self.where(key))}' is not known here{hint}")
