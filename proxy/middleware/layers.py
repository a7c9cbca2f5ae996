"""The layers that depend on the config, run as one middleware.

aiohttp fixes an app's middleware list when it starts; a reload must swap the layers whole
(CORS origins, admin key, clients, limits), and a request must keep the set it started with.
So the app has one middleware that picks the current :class:`Layers` once per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TypeVar

from aiohttp import web

from proxy.middleware import Handler, Middleware

M = TypeVar("M", bound=Middleware)


class Layers(Middleware):
    """``layers``, outermost first, around one handler."""

    __slots__ = ("inner_first", "layers")

    def __init__(self, layers: Sequence[Middleware]) -> None:
        self.layers = tuple(layers)
        self.inner_first = tuple(reversed(self.layers))

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        for layer in self.inner_first:
            handler = partial(layer, handler=handler)
        return await handler(request)

    def find(self, kind: type[M]) -> M | None:
        """The layer of ``kind``, if there is one (to carry its state into a new set)."""
        return next((layer for layer in self.layers if isinstance(layer, kind)), None)
