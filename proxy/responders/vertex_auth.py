"""OAuth2 access tokens for Vertex AI, from a service account or Application Default Credentials,
through ``google-auth``.

A token is refreshed before it expires: once ``google-auth`` calls it stale (a few minutes before
its end) one refresh starts in the background while requests go on with the current token; once
it is invalid, requests wait for the one refresh in flight. Refreshing blocks (``google-auth``
speaks ``requests``), so it runs in a thread, never on the event loop. A 401 drops the token:
the next request refreshes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from proxy.errors import AttemptFailed

if TYPE_CHECKING:  # google-auth (and requests) are imported by the first refresh: a proxy
    # with no Vertex service account does not carry them (about 15 MB).
    import requests
    from google.auth.credentials import Credentials

log = logging.getLogger("l104.vertex")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class TokenSource:
    """Access tokens for one set of credentials: a service account's JSON text, or ADC."""

    def __init__(self, service_account_json: str = "", *, ca_file: str = "") -> None:
        self._info: dict[str, Any] | None = (
            json.loads(service_account_json) if service_account_json else None
        )
        self._credentials: Credentials | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._ca_file = ca_file
        self._session: requests.Session | None = None
        self.refreshes = 0

    def __repr__(self) -> str:  # SECURITY: never the key or the token
        return f"TokenSource(refreshes={self.refreshes})"

    @property
    def expiry(self) -> datetime | None:
        """When the current token ends (UTC), or None before the first."""
        credentials = self._credentials
        if credentials is None or credentials.token is None or credentials.expiry is None:
            return None
        expiry: datetime = credentials.expiry
        return expiry.replace(tzinfo=UTC)

    async def token(self) -> str:
        """A token to send now; raises ``AttemptFailed`` when none can be had."""
        credentials = self._credentials
        state = credentials.token_state.name if credentials is not None else "INVALID"
        if state == "FRESH" and credentials is not None:
            return str(credentials.token)
        if state == "STALE" and credentials is not None:
            self._start_refresh()  # in the background: this token is still good
            return str(credentials.token)
        await asyncio.shield(self._start_refresh())
        credentials = self._credentials
        if credentials is None or credentials.token is None:
            raise AttemptFailed("connect", "no Vertex access token")
        return str(credentials.token)

    def drop(self) -> None:
        """The upstream refused the token (401): the next request refreshes it."""
        if self._credentials is not None:
            self._credentials.token = None

    def _start_refresh(self) -> asyncio.Task[None]:
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.ensure_future(self._refresh())
            task.add_done_callback(_seen)
        return task

    async def _refresh(self) -> None:
        import google.auth.exceptions
        import requests

        try:
            await asyncio.to_thread(self._refresh_blocking)
        except (google.auth.exceptions.GoogleAuthError, requests.RequestException) as exc:
            # SECURITY: the text of the error is not logged (it may quote the answer).
            log.warning("the Vertex access token could not be refreshed: %s", type(exc).__name__)
            raise AttemptFailed("connect", f"token refresh failed ({type(exc).__name__})") from None

    def _refresh_blocking(self) -> None:
        import google.auth
        import requests
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        if self._session is None:
            self._session = requests.Session()
            if self._ca_file:
                self._session.verify = self._ca_file
        if self._credentials is None:
            if self._info is not None:
                self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    self._info, scopes=[SCOPE]
                )
            else:
                self._credentials, _ = google.auth.default(scopes=[SCOPE])
        self._credentials.refresh(Request(session=self._session))
        self.refreshes += 1


def _seen(task: asyncio.Task[None]) -> None:
    """A background refresh's failure was logged; whoever waits on it gets it raised."""
    if not task.cancelled():
        task.exception()
