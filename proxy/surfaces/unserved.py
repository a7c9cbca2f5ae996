"""Live endpoints the proxy does not serve: a 404 that says so.

A client should learn that the proxy lacks the endpoint, not that the URL is wrong. Nothing
here is ever forwarded.
"""

from __future__ import annotations

from aiohttp import web

from proxy.errors import NotFound
from proxy.middleware import Handler


def _refuse(what: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise NotFound(f"L104 Proxy does not serve {what} ({request.path[:200]}).")

    return handler


def add_routes(app: web.Application) -> None:
    # Paths under a version are the registry's (:mod:`proxy.surfaces.resources_api`).
    other_live = _refuse("this Live API endpoint (only BidiGenerateContent)")
    app.router.add_route("*", "/ws/{tail:.*}", other_live)
