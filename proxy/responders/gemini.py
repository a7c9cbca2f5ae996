"""``gemini``: the real Gemini API (or anything that speaks it) through one pooled session.

The key goes upstream only as ``x-goog-api-key``; the client's own key is never forwarded. Bodies
pass through as bytes: a 200 stream is handed on chunk by chunk as it arrives.
"""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from yarl import URL

from proxy import openai_wire
from proxy.errors import AttemptFailed
from proxy.responders.base import INTERACTIONS, Call, Reply
from proxy.responders.gemini_spec import GeminiSpec, UpstreamSpec

LARGE_BODY = 1024 * 1024
MIN_SCRUBBED_KEY = 8
LIVE = "BidiGenerateContent"
REDACTED = b"[redacted]"
LIVE_MAX_FRAME = 4 * 1024 * 1024  # limits.max_live_frame_bytes's default


class GeminiResponder:
    remote = True
    studio = True
    actions: frozenset[str] | None = None

    def __init__(
        self,
        name: str,
        spec: UpstreamSpec,
        session: aiohttp.ClientSession,
        max_response_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.max_response_bytes = max_response_bytes
        # Only a first-byte limit tighter than timeout_s needs a timer of its own: aiohttp's
        # own timeouts already bound the wait for headers by timeout_s.
        first_byte = spec.first_byte_timeout_s
        self.first_byte_s = first_byte if 0 < first_byte < spec.timeout_s else None
        self.spec = spec
        self.session = session
        # One TLS context for every call: its session cache lets reconnections resume.
        self.tls: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=spec.ca_file) if spec.ca_file else True
        )
        self.key_count = len(spec.api_keys)
        self.projects = spec.projects
        self.project_names = spec.project_names
        self._openai_prefix = f"{spec.base_url}/v1beta/openai/"
        # SECURITY: every key is scrubbed from error bodies, but a key of a few characters
        # (never a real one: Google's have 39) would cut words such as "Token" apart.
        self._scrubbed = [k.encode() for k in spec.api_keys if len(k) >= MIN_SCRUBBED_KEY]
        self._unary = aiohttp.ClientTimeout(
            total=spec.timeout_s, sock_connect=spec.connect_timeout_s
        )
        # A stream may run long; what must not happen is a long silence.
        self._stream = aiohttp.ClientTimeout(
            total=None, sock_connect=spec.connect_timeout_s, sock_read=spec.timeout_s
        )

    def _scrub(self, body: bytes) -> bytes:
        for key in self._scrubbed:
            if key in body:
                body = body.replace(key, REDACTED)
        return body

    async def _request(
        self,
        method: str,
        url: str,
        key_index: int | None,
        *,
        body: bytes | AsyncIterator[bytes] | None,
        headers: dict[str, str],
        params: Mapping[str, str] | None,
        limits: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        if key_index is not None:
            key = self.spec.api_keys[key_index]
            # The OpenAI-compatible endpoint takes its key as a bearer token, as OpenAI
            # clients send it.
            if url.startswith(self._openai_prefix):
                headers["authorization"] = f"Bearer {key}"
            else:
                headers["x-goog-api-key"] = key
        data: Any = body
        if isinstance(body, bytes) and len(body) > LARGE_BODY:
            data = io.BytesIO(body)  # a stream of pieces: aiohttp warns about big raw bytes
        try:
            request = self.session.request(
                method,
                URL(url, encoded=True),
                data=data,
                headers=headers,
                params=params,
                timeout=limits,
                ssl=self.tls,
            )
            if self.first_byte_s is None:  # no timer when none is asked for
                return await request
            async with asyncio.timeout(self.first_byte_s):
                return await request
        except TimeoutError as exc:
            raise AttemptFailed("timeout", f"no answer within {self.spec.timeout_s:g}s") from exc
        except aiohttp.ClientError as exc:
            raise AttemptFailed("connect", type(exc).__name__) from exc

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole answer, or ``AttemptFailed`` past ``limits.max_response_bytes``: a huge
        answer must not be held whole in memory."""
        cap = self.max_response_bytes
        length = resp.content_length  # parsed from the header at every ask
        if length is not None:
            if length > cap:
                resp.close()
                raise AttemptFailed("too_large", f"an answer of {length} bytes")
            return await resp.read()
        body = bytearray()
        async for piece in resp.content.iter_chunked(256 * 1024):
            body += piece
            if len(body) > cap:
                resp.close()
                raise AttemptFailed("too_large", f"an answer of more than {cap} bytes")
        return bytes(body)

    async def _finish(self, resp: aiohttp.ClientResponse) -> Reply:
        try:
            length = resp.content_length  # parsed from the header at every ask
            if length is not None and length <= self.max_response_bytes:
                body = await resp.read()  # the usual answer: its length is known and fits
            else:
                body = await self._read(resp)
        except TimeoutError as exc:
            raise AttemptFailed("timeout", "the answer stopped coming") from exc
        except aiohttp.ClientError as exc:
            raise AttemptFailed("connect", type(exc).__name__) from exc
        finally:
            resp.release()
        # SECURITY: a key the upstream reflects is scrubbed from every answer, 200s too.
        body = self._scrub(body)
        if resp.status == 200 and not _looks_json(resp.headers.get("Content-Type", ""), body):
            # An HTML page or garbage with a 200 (a captive portal, a broken middlebox) is no
            # answer: a failed attempt, so the request rotates (502 if nothing else answers).
            raise AttemptFailed("bad_answer", "a 200 that is not JSON")
        return Reply(
            resp.status,
            body,
            resp.headers.get("Content-Type", "application/json"),
            retry_after=resp.headers.get("Retry-After"),
        )

    def _url(self, call: Call) -> str:
        if call.openai:  # Gemini's OpenAI-compatible endpoint: the model is in the body
            return f"{self.spec.base_url}/v1beta/openai/{openai_wire.PATHS[call.action]}"
        if call.action in INTERACTIONS:
            return f"{self.spec.base_url}/{call.version}/interactions"
        return f"{self.spec.base_url}/{call.version}/models/{call.model}:{call.action}"

    async def send(self, call: Call, key_index: int) -> Reply:
        url = self._url(call)
        # The client's query goes on as it came (``key`` already removed); a call the proxy
        # made itself (``/api/v6``) only needs ``alt=sse``.
        streaming = call.streaming
        query = call.query or ("alt=sse" if streaming and call.sse else "")
        if query:
            url = f"{url}?{query}"
        # The handler chose which client headers go on; then the trace, if any.
        headers = {"content-type": "application/json", **call.headers}
        if call.trace_headers:
            headers.update(call.trace_headers)
        if not streaming:
            # A client that leaves mid-call: the upstream has the call and counts it either
            # way. Letting it finish puts its connection back in the pool rather than closing
            # it; it is bounded by timeout_s.
            hold = call.hold
            if hold is None:  # no say from the server: a task of its own shields the call
                return await self._shielded(url, key_index, call.body, headers)
            hold.holding = True
            try:
                return await self._unary_call(url, key_index, call.body, headers)
            finally:
                hold.holding = False
                if hold.left:  # the client left meanwhile: stop as its cancel would have
                    raise asyncio.CancelledError
        resp = await self._request(
            "POST",
            url,
            key_index,
            body=call.body,
            headers=headers,
            params=None,
            limits=self._stream,
        )
        if resp.status == 200:
            ctype = resp.headers.get("Content-Type", "text/event-stream")
            if not ctype.startswith(("text/event-stream", "application/json")):
                resp.close()
                raise AttemptFailed("bad_answer", f"a 200 stream of {ctype[:40]}")
            chunks = _relay(resp, self._scrubbed)
            return Reply(200, content_type=ctype, chunks=chunks, release=resp.close)
        return await self._finish(resp)

    async def _shielded(
        self, url: str, key_index: int, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        task = asyncio.ensure_future(self._unary_call(url, key_index, body, headers))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_forget)
            raise

    async def _unary_call(
        self, url: str, key_index: int, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        return await self._finish(
            await self._request(
                "POST", url, key_index, body=body, headers=headers, params=None, limits=self._unary
            )
        )

    async def forward(
        self,
        method: str,
        url: str,
        key_index: int | None,
        *,
        headers: dict[str, str],
        body: bytes | AsyncIterator[bytes] | None = None,
        absolute: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send a request for a stateful resource (files, cached contents) and hand back the
        live response, for the caller to relay and ``release``. ``url`` is a path (with its
        query) under ``base_url``; with ``absolute``, an upload URL the upstream gave, never
        one a client wrote. ``key_index`` ``None`` sends no key (an upload piece)."""
        if not absolute:
            # Said by the caller, never read from the text: a client's query may hold "://".
            url = f"{self.spec.base_url}/{url}"
        return await self._request(
            method, url, key_index, body=body, headers=headers, params=None, limits=self._stream
        )

    async def live(
        self, version: str, key_index: int, max_frame: int = LIVE_MAX_FRAME, token: str = ""
    ) -> aiohttp.ClientWebSocketResponse:
        """Open Gemini's Live socket with key ``key_index`` (sent as a header, never in the URL);
        with an ephemeral ``token`` (made with that key), the constrained socket with the token.

        Raises ``aiohttp.WSServerHandshakeError`` when the upstream refuses the upgrade (its
        ``status`` says why: 429 for quota), ``AttemptFailed`` when nothing answered.
        """
        base = self.spec.base_url
        ws_base = "wss://" + base[8:] if base.startswith("https://") else "ws://" + base[7:]
        url = f"{ws_base}/ws/google.ai.generativelanguage.{version}.GenerativeService.{LIVE}"
        headers = {"x-goog-api-key": self.spec.api_keys[key_index]}
        if token:
            url += "Constrained"
            headers = {"x-goog-api-key": token, "authorization": f"Token {token}"}
        try:
            async with asyncio.timeout(self.spec.connect_timeout_s + self.spec.timeout_s):
                return await self.session.ws_connect(
                    url,
                    headers=headers,
                    max_msg_size=max_frame,
                    autoclose=False,
                    autoping=True,
                    ssl=self.tls,
                )
        except TimeoutError as exc:
            raise AttemptFailed("timeout", "the Live socket did not open") from exc
        except aiohttp.WSServerHandshakeError:
            raise
        except aiohttp.ClientError as exc:
            raise AttemptFailed("connect", type(exc).__name__) from exc

    def scrub(self, body: bytes) -> bytes:
        """``body`` with every upstream key replaced."""
        return self._scrub(body)

    def scrub_text(self, text: str) -> str:
        """``text`` (a header, a close reason) with every upstream key replaced."""
        return self._scrub(text.encode()).decode(errors="replace")

    async def fetch(
        self, version: str, path: str, query: Mapping[str, str], key_index: int
    ) -> Reply:
        url = f"{self.spec.base_url}/{version}/{path}"
        resp = await self._request(
            "GET", url, key_index, body=None, headers={}, params=query, limits=self._unary
        )
        return await self._finish(resp)


async def _relay(resp: aiohttp.ClientResponse, keys: list[bytes]) -> AsyncIterator[bytes]:
    """The stream's chunks with every key in ``keys`` scrubbed. A key cut in two by a network
    read is caught by holding back a chunk's tail only when it is the start of a key (so a
    whole event is never held back)."""
    carry = b""
    try:
        async for data in resp.content.iter_any():
            if carry:
                data, carry = carry + data, b""
            for key in keys:
                if key in data:
                    data = data.replace(key, REDACTED)
            cut = _key_start(data, keys) if keys else -1
            if cut >= 0:
                data, carry = data[:cut], data[cut:]
            if data:
                yield data
        if carry:
            yield carry
    except asyncio.CancelledError:
        resp.close()
        raise
    finally:
        resp.release()


def _key_start(data: bytes, keys: list[bytes]) -> int:
    """Where a tail of ``data`` that is the start of one of ``keys`` begins, or -1."""
    cut = -1
    for key in keys:
        i = data.find(key[:1], max(0, len(data) - len(key) + 1))
        while i != -1:
            if key.startswith(data[i:]):
                cut = i if cut < 0 else min(cut, i)
                break
            i = data.find(key[:1], i + 1)
    return cut


def _looks_json(ctype: str, body: bytes) -> bool:
    """A cheap check of a 200: a JSON content type and a body that opens as JSON does."""
    if not ctype.startswith("application/json"):
        return False
    head = body[:64].lstrip()
    return head[:1] in (b"{", b"[")


def build(
    name: str, spec: GeminiSpec, session: aiohttp.ClientSession, max_response_bytes: int
) -> GeminiResponder:
    return GeminiResponder(name, spec, session, max_response_bytes)


def _forget(task: asyncio.Future[Reply]) -> None:
    """A unary call nobody waits for any more: its outcome is dropped, never reported."""
    if not task.cancelled():
        task.exception()
