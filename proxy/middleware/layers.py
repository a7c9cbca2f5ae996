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

    __slots__ = ("chains", "inner_first", "layers")

    def __init__(self, layers: Sequence[Middleware]) -> None:
        self.layers = tuple(layers)
        self.inner_first = tuple(reversed(self.layers))
        # The layers composed around each route's handler, once (as aiohttp caches its own
        # middleware chains): a request then costs one lookup, not a partial per layer.
        self.chains: dict[Handler, Handler] = {}

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        chain = self.chains.get(handler)
        if chain is None:
            chain = handler
            for layer in self.inner_first:
                chain = partial(layer, handler=chain)
            if len(self.chains) < 1024:  # route handlers: a few dozen
                self.chains[handler] = chain
        return await chain(request)

    def find(self, kind: type[M]) -> M | None:
        """The layer of ``kind``, if there is one (to carry its state into a new set)."""
        return next((layer for layer in self.layers if isinstance(layer, kind)), None)
