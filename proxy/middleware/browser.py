"""What browsers need: CORS on every surface a page may call (the Gemini surface, its
OpenAI-compatible endpoint and ``/api/v6``), for ``listen.cors_origins`` only, and security
headers on the status page and its files.

A request from another origin is refused before it reaches a handler, so nothing it asks for
ever goes upstream (a preflight gets a bare 403, anything else Gemini's 403 JSON). A request
from the proxy's own origin, or with no ``Origin`` (every non-browser client), passes.

Headers are added in ``on_response_prepare``, which runs just before any response's headers go
out, streams included; the layer itself only answers preflights and refusals.
"""

from __future__ import annotations

import re

from aiohttp import web

from proxy.errors import PermissionDenied
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
# The paths a page on another origin may call.
CORS_PREFIXES = ("/api/v6/", "/v1/", "/v1beta/", "/v1alpha/", "/upload/")
# What the SDKs send: @google/genai's web build adds x-goog-api-client to every call, the
# Vercel SDK x-goog-api-key, OpenAI clients Authorization. A listed origin may also send
# whatever else its preflight asks for: the list is what is always allowed.
ALLOWED_HEADERS = (
    "content-type",
    "x-goog-api-key",
    "x-goog-api-client",
    "authorization",
    "x-server-timeout",
    "x-goog-upload-protocol",
    "x-goog-upload-command",
    "x-goog-upload-offset",
    "x-goog-upload-header-content-length",
    "x-goog-upload-header-content-type",
)
CORS = {
    "Access-Control-Expose-Headers": (
        "x-l104-model, x-l104-attempts, Retry-After, x-goog-upload-url, x-goog-upload-status"
    ),
}
PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Max-Age": "600",
}


_TOKEN = re.compile(r"[a-z0-9-]{1,64}")


def _same_origin(request: web.BaseRequest, origin: str) -> bool:
    return origin == f"{request.scheme}://{request.host}"


class Browser(Middleware):
    def __init__(self, cors_origins: tuple[str, ...]) -> None:
        self.origins = frozenset(cors_origins)

    def allowed(self, request: web.BaseRequest) -> str | None:
        origin = request.headers.get("Origin")
        return origin if origin in self.origins else None

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith(CORS_PREFIXES):
            return await handler(request)
        preflight = request.method == "OPTIONS"
        if origin in self.origins:
            if preflight:  # answered here, never routed
                return web.Response(status=204, headers=_preflight_headers(request))
            return await handler(request)
        if _same_origin(request, origin) and not preflight:
            return await handler(request)
        if preflight:
            return web.Response(status=403)
        # SECURITY: a page on an unlisted origin gets nothing, and nothing goes upstream.
        raise PermissionDenied(f"Origin '{origin[:100]}' is not allowed (listen.cors_origins).")

    def decorate(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """The CORS headers of an allowed origin, and the page headers of the proxy's pages."""
        path = request.path
        if path.startswith(CORS_PREFIXES):
            origin = self.allowed(request)
            if origin is not None:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Vary"] = "Origin"
                response.headers.update(CORS)
        elif path == "/" or path.startswith("/static/"):
            response.headers.update(PAGE_HEADERS)


def _preflight_headers(request: web.BaseRequest) -> dict[str, str]:
    asked = request.headers.get("Access-Control-Request-Headers", "")
    extra = [h.strip().lower() for h in asked.split(",")[:32]]
    allowed = list(ALLOWED_HEADERS) + [
        h for h in extra if _TOKEN.fullmatch(h) and h not in ALLOWED_HEADERS
    ]
    return {**PREFLIGHT, "Access-Control-Allow-Headers": ", ".join(allowed)}
