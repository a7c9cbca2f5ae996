"""What browsers need: CORS for ``/api/v6`` (only ``listen.cors_origins``), and security
headers on the status page and its files.

Headers are added in ``on_response_prepare``, which runs just before any response's headers go
out, streams included; the layer itself only answers CORS preflights.
"""

from __future__ import annotations

from aiohttp import web

from proxy.middleware import Handler, Middleware

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CORS = {
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, x-goog-api-key, Authorization",
    "Access-Control-Max-Age": "600",
}


class Browser(Middleware):
    def __init__(self, cors_origins: tuple[str, ...]) -> None:
        self.origins = frozenset(cors_origins)

    def allowed(self, request: web.BaseRequest) -> str | None:
        origin = request.headers.get("Origin")
        return origin if origin in self.origins else None

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and request.path.startswith("/api/v6/"):
            # A preflight: answered here, never routed; refused unless the origin is listed.
            return web.Response(status=204 if self.allowed(request) else 403)
        return await handler(request)

    async def on_prepare(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        path = request.path
        if path.startswith("/api/v6/"):
            origin = self.allowed(request)
            if origin is not None:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Vary"] = "Origin"
                response.headers.update(CORS)
        elif path == "/" or path.startswith("/static/"):
            response.headers.update(PAGE_HEADERS)
