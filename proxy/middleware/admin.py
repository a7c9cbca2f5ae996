"""``listen.admin_key``: closes the proxy's own pages (the status page, its live feed and
snapshot, and ``/metrics*``) to anyone without the key. ``/health`` and ``/ready`` stay open for
probes; unset, everything stays open, as before.

The key is presented as ``x-l104-admin-key`` or ``Authorization: Bearer``. A browser's
``EventSource`` cannot send headers, so the page may take the key once as ``?admin_key=``: the
answer is a redirect to the same page without it, setting an HttpOnly, SameSite=Strict cookie
that holds a digest of the key (never the key), which the page's own requests then carry.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from proxy.errors import Unauthenticated
from proxy.middleware import Handler, Middleware

ADMIN_PATHS = frozenset(
    {"/", "/api/v6/status", "/api/v6/events", "/metrics", "/metrics/prometheus"}
)
COOKIE = "l104_admin"


def _digest(key: str) -> str:
    return hashlib.sha256(b"l104-admin\0" + key.encode()).hexdigest()


class AdminGate(Middleware):
    def __init__(self, admin_key: str) -> None:
        self.key = admin_key.encode()
        self.cookie = _digest(admin_key)

    def presented(self, request: web.Request) -> bool:
        """Whether ``request`` carries the admin key (a header or the page's cookie)."""
        given = request.headers.get("x-l104-admin-key", "")
        auth = request.headers.get("Authorization", "")
        if not given and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given:
            return hmac.compare_digest(given.encode(), self.key)
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.cookie.encode())

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in ADMIN_PATHS:
            return await handler(request)
        once = request.query.get("admin_key")
        if once is not None:
            if not hmac.compare_digest(once.encode(), self.key):
                raise Unauthenticated("The admin key is not valid.")
            # SECURITY: the key leaves the URL (and the history) at once; a digest stays.
            query = {k: v for k, v in request.query.items() if k != "admin_key"}
            resp = web.Response(status=303)
            resp.headers["Location"] = str(request.rel_url.with_query(query))
            resp.set_cookie(
                COOKIE, self.cookie, httponly=True, samesite="Strict", path="/", secure=False
            )
            return resp
        if not self.presented(request):
            raise Unauthenticated(
                "This page needs the admin key (x-l104-admin-key, Authorization: Bearer, or "
                "?admin_key= once in a browser)."
            )
        return await handler(request)
