"""Client auth: who is calling, by the key Gemini clients already send.

A key may come as ``x-goog-api-key``, ``?key=`` or ``Authorization: Bearer``. Keys are compared
in constant time (digests, every client checked). The client's name, never its key, goes on the
request's :class:`~proxy.exchange.Exchange`. With no clients configured the proxy is open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.config import Client
from proxy.errors import NotFound, PermissionDenied, Unauthenticated
from proxy.exchange import exchange_of
from proxy.middleware import Handler, Middleware, is_open, is_upload_piece
from proxy.resources.uploads import Uploads

# The query parameter that carries an upload's token in the proxy's own upload URLs.
UPLOAD_TOKEN = "upload_token"  # noqa: S105
# An ephemeral token (``auth_tokens/…``) authenticates only a constrained Live socket.
CONSTRAINED = "BidiGenerateContentConstrained"
# The client that made a token, or None for a token the proxy did not make.
TokenOwner = Callable[[str], Awaitable[str | None]]


def presented_key(request: web.Request) -> str | None:
    key = request.headers.get("x-goog-api-key")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    if auth[:6].lower() == "token " and auth[6:].strip():  # an ephemeral token
        return auth[6:].strip()
    return request.query.get("key") or request.query.get("access_token") or None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ClientAuth(Middleware):
    def __init__(
        self,
        clients: tuple[Client, ...],
        uploads: Uploads | None = None,
        token_owner: TokenOwner | None = None,
    ) -> None:
        self.clients = [(_digest(c.key), c.name) for c in clients]
        self.uploads = uploads if uploads is not None else Uploads()
        self.token_owner = token_owner

    def identify(self, key: str) -> str | None:
        digest = _digest(key)
        found = None
        for known, name in self.clients:  # SECURITY: no early exit, so timing tells nothing
            if hmac.compare_digest(known, digest):
                found = name
        return found

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_upload_piece(request):
            # Its upload's token authorises a piece; it is that upload's client's.
            query = request.query
            session = self.uploads.authorise(query["upload_id"], query.get(UPLOAD_TOKEN, ""))
            if session is None:
                raise NotFound("No such upload: it finished, or the proxy never started it.")
            exchange_of(request).client = session.client
            return await handler(request)
        if not self.clients or is_open(request):
            return await handler(request)
        key = presented_key(request)
        if key is None:
            raise Unauthenticated(
                "Method doesn't allow unregistered callers. Please use an API key "
                "(x-goog-api-key, ?key= or Authorization: Bearer)."
            )
        name = self.identify(key)
        if name is None and self.token_owner is not None and request.path.endswith(CONSTRAINED):
            name = await self.token_owner(key)
        if name is None:
            raise PermissionDenied("API key not valid. Please pass a valid API key.")
        exchange_of(request).client = name
        return await handler(request)
