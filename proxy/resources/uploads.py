"""Resumable uploads in progress: which key, client and upstream URL each upload id belongs to.

The pieces carry no key (the SDKs send them to the upload URL as it is): the proxy puts an
unguessable token of its own in the URL it gives the client, and a piece without the right one
is an upload that does not exist. A piece counts as its upload's client's. The proxy keeps the
upstream URL to itself and gives the client one on its own origin.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

# Gemini keeps an unfinished upload for about a week; so does the proxy, then forgets it.
MAX_AGE_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class UploadSession:
    responder: str
    key_index: int
    client: str
    upstream_url: str
    started: float = field(default_factory=time.time)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def __repr__(self) -> str:  # SECURITY: the token authorises the pieces
        return f"UploadSession(responder={self.responder!r}, client={self.client!r})"


class Uploads:
    def __init__(self) -> None:
        self.open: dict[str, UploadSession] = {}

    def start(self, upload_id: str, session: UploadSession) -> None:
        self.open[upload_id] = session

    def get(self, upload_id: str) -> UploadSession | None:
        return self.open.get(upload_id)

    def authorise(self, upload_id: str, token: str) -> UploadSession | None:
        """The upload ``upload_id`` if ``token`` is its own (compared in constant time)."""
        session = self.open.get(upload_id)
        if session is None or not hmac.compare_digest(session.token.encode(), token.encode()):
            return None
        return session

    def finish(self, upload_id: str) -> None:
        self.open.pop(upload_id, None)

    def prune(self, now_wall: float | None = None) -> int:
        edge = (time.time() if now_wall is None else now_wall) - MAX_AGE_S
        old = [u for u, s in self.open.items() if s.started < edge]
        for upload_id in old:
            del self.open[upload_id]
        return len(old)
