"""Client auth: who is calling, by the key Gemini clients already send.

A key may come as ``x-goog-api-key``, ``?key=`` or ``Authorization: Bearer``. Keys are compared
in constant time (digests, every client checked). The client's name, never its key, goes on the
request's :class:`~proxy.exchange.Exchange`. With no clients configured the proxy is open.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from proxy.config import Client
from proxy.errors import PermissionDenied, Unauthenticated
from proxy.exchange import exchange_of
from proxy.middleware import Handler, Middleware, is_open, is_upload_piece


def presented_key(request: web.Request) -> str | None:
    key = request.headers.get("x-goog-api-key")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return request.query.get("key") or None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ClientAuth(Middleware):
    def __init__(self, clients: tuple[Client, ...]) -> None:
        self.clients = [(_digest(c.key), c.name) for c in clients]

    def identify(self, key: str) -> str | None:
        digest = _digest(key)
        found = None
        for known, name in self.clients:  # SECURITY: no early exit, so timing tells nothing
            if hmac.compare_digest(known, digest):
                found = name
        return found

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.clients or is_open(request) or is_upload_piece(request):
            return await handler(request)
        key = presented_key(request)
        if key is None:
            raise Unauthenticated(
                "Method doesn't allow unregistered callers. Please use an API key "
                "(x-goog-api-key, ?key= or Authorization: Bearer)."
            )
        name = self.identify(key)
        if name is None:
            raise PermissionDenied("API key not valid. Please pass a valid API key.")
        exchange_of(request).client = name
        return await handler(request)
