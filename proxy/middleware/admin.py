"""``listen.admin_key``: closes the proxy's own pages (the status page, its live feed and
snapshot, and ``/metrics*``) to anyone without the key. ``/health`` and ``/ready`` stay open for
probes; unset, everything stays open, as before.

The key is presented as ``x-l104-admin-key`` or ``Authorization: Bearer``. A browser's
``EventSource`` cannot send headers, so the page may take the key once as ``?admin_key=``: the
answer is a redirect to the same page without it, setting a session cookie: HttpOnly,
SameSite=Strict, ``Secure`` when served over TLS, that expires (``SESSION_S``) and is signed with
a key derived from the admin key (never the key, and no longer one fixed digest of it), so any
worker checks it and a new admin key ends every session.

Failed attempts are counted per peer: past ``FAILURES`` in ``FAILURE_WINDOW_S`` that peer gets
429 until the window has room again, the right key included, so guessing runs at a few tries a
minute, not thousands a second.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from aiohttp import web

from proxy.errors import ClientRateLimited, Unauthenticated
from proxy.middleware import Handler, Middleware
from proxy.routing.window import SlidingWindow

ADMIN_PATHS = frozenset(
    {"/", "/api/v6/status", "/api/v6/events", "/metrics", "/metrics/prometheus"}
)
COOKIE = "l104_admin"
SESSION_S = 12 * 3600
FAILURES = 10  # failed attempts a peer may make in a window
FAILURE_WINDOW_S = 60.0
MAX_PEERS = 10_000  # peers with failures remembered (the oldest are forgotten first)


class AdminGate(Middleware):
    def __init__(
        self,
        admin_key: str,
        *,
        secure: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``secure``: the proxy is served over TLS (its own, or a terminator's ``public_url``),
        so the cookie is ``Secure``; a request that arrives over TLS makes it so too."""
        self.key = admin_key.encode()
        self._signing = hashlib.sha256(b"l104-admin-session\0" + self.key).digest()
        self.secure = secure
        self.clock = clock
        self.wall = wall
        self.failures: dict[str, SlidingWindow] = {}

    # -- sessions ------------------------------------------------------------------------------

    def _sign(self, payload: str) -> str:
        return hmac.new(self._signing, payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A cookie value: ``expiry.nonce.signature``."""
        payload = f"{int(self.wall()) + SESSION_S}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._sign(payload)}"

    def _valid_session(self, cookie: str) -> bool:
        payload, _, signature = cookie.rpartition(".")
        expiry = payload.partition(".")[0]
        if not expiry.isdigit() or not hmac.compare_digest(signature, self._sign(payload)):
            return False
        return int(expiry) > self.wall()

    # -- attempts ------------------------------------------------------------------------------

    def _window(self, peer: str) -> SlidingWindow:
        window = self.failures.get(peer)
        if window is None:
            if len(self.failures) >= MAX_PEERS:
                del self.failures[next(iter(self.failures))]
            window = self.failures[peer] = SlidingWindow(FAILURES, FAILURE_WINDOW_S, self.clock)
        return window

    def _locked_for(self, peer: str) -> float:
        window = self.failures.get(peer)
        return window.wait_for(1) if window is not None else 0.0

    def _failed(self, peer: str) -> None:
        self._window(peer).count_if_room(1)

    def presented(self, request: web.Request) -> bool:
        """Whether ``request`` carries the admin key (a header or a valid session cookie). A
        wrong one counts against its peer; a locked-out peer presents nothing."""
        peer = request.remote or ""
        if self._locked_for(peer) > 0:
            return False
        given = request.headers.get("x-l104-admin-key", "")
        auth = request.headers.get("Authorization", "")
        if not given and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given:
            ok = hmac.compare_digest(given.encode(), self.key)
        else:
            cookie = request.cookies.get(COOKIE, "")
            if not cookie:
                return False
            ok = self._valid_session(cookie)
        if not ok:
            self._failed(peer)
        return ok

    def _refuse_locked(self, request: web.Request) -> None:
        wait = self._locked_for(request.remote or "")
        if wait > 0:
            raise ClientRateLimited(
                "Too many failed admin key attempts from this address. Retry later.",
                retry_after_s=wait,
            )

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in ADMIN_PATHS:
            return await handler(request)
        self._refuse_locked(request)
        once = request.query.get("admin_key")
        if once is not None:
            if not hmac.compare_digest(once.encode(), self.key):
                self._failed(request.remote or "")
                raise Unauthenticated("The admin key is not valid.")
            # SECURITY: the key leaves the URL (and the history) at once; a session stays.
            query = {k: v for k, v in request.query.items() if k != "admin_key"}
            resp = web.Response(status=303)
            resp.headers["Location"] = str(request.rel_url.with_query(query))
            resp.set_cookie(
                COOKIE,
                self.new_session(),
                httponly=True,
                samesite="Strict",
                path="/",
                secure=self.secure or request.secure,
                max_age=SESSION_S,
            )
            return resp
        if not self.presented(request):
            raise Unauthenticated(
                "This page needs the admin key (x-l104-admin-key, Authorization: Bearer, or "
                "?admin_key= once in a browser)."
            )
        return await handler(request)
