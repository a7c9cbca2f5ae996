"""Gemini endpoints the proxy knows but does not serve (yet): a 404 that says so.

A client that calls ``files.upload`` through the proxy should learn that the proxy lacks the
endpoint, not that the URL is wrong. Nothing here is ever forwarded.
"""

from __future__ import annotations

from aiohttp import web

from proxy.errors import NotFound
from proxy.middleware import Handler
from proxy.surfaces import VERSIONS

# (path prefix under a version, what it is)
APIS = (
    ("tunedModels", "tuned models"),
    ("batches", "batch jobs"),
    ("operations", "long-running operations"),
)


def _refuse(what: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise NotFound(f"L104 Proxy does not serve {what} ({request.path[:200]}).")

    return handler


def add_routes(app: web.Application) -> None:
    # Plain prefixes per version: they sit in their own slots of aiohttp's route index, so
    # they cost the model actions nothing.
    for version in VERSIONS:
        for prefix, what in APIS:
            handler = _refuse(what)
            app.router.add_route("*", f"/{version}/{prefix}", handler)
            app.router.add_route("*", f"/{version}/{prefix}/{{tail:.*}}", handler)
    other_live = _refuse("this Live API endpoint (only BidiGenerateContent)")
    app.router.add_route("*", "/ws/{tail:.*}", other_live)
