"""The registry of responder types, keyed by the YAML ``type``.

Each type has a ``parse`` that reads its options into a frozen spec (recording config errors)
and a ``build`` that makes the responder from the spec once the shared HTTP session exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp

from proxy.reader import Reader
from proxy.responders import echo, fake, gemini, gemini_spec, template, vertex, vertex_spec
from proxy.responders.base import Call, Reply, Responder

__all__ = ["REGISTRY", "Call", "Reply", "Responder", "ResponderType", "build_responder"]


@dataclass(frozen=True, slots=True)
class ResponderType:
    parse: Callable[[Reader], Any]
    # (name, spec, session, max_response_bytes)
    build: Callable[[str, Any, aiohttp.ClientSession, int], Responder]


REGISTRY: Mapping[str, ResponderType] = MappingProxyType(
    {
        "gemini": ResponderType(gemini_spec.parse, gemini.build),
        "vertex": ResponderType(vertex_spec.parse, vertex.build),
        "fake": ResponderType(fake.parse, lambda name, spec, *_: fake.build(name, spec)),
        "template": ResponderType(
            template.parse, lambda name, spec, *_: template.build(name, spec)
        ),
        "echo": ResponderType(echo.parse, lambda name, spec, *_: echo.build(name, spec)),
    }
)


def build_responder(
    name: str, type_: str, spec: Any, session: aiohttp.ClientSession, max_response_bytes: int
) -> Responder:
    return REGISTRY[type_].build(name, spec, session, max_response_bytes)
