"""Sends an answer to the client: whole, or streamed chunk by chunk as it arrives.

Once the first byte of a stream is out, the status can no longer change: a failure after that
is reported in-band (a ``data: {"error": …}`` event, which makes the SDK raise, or an error
element in a JSON array), and then the connection is cut with no clean end of the chunked body,
as a broken upstream would. Clients that ignore the in-band event (the Vercel AI SDK) still see
a broken stream.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

import aiohttp
import orjson
from aiohttp import web

from proxy import openai_wire
from proxy.errors import AttemptFailed, error_body, status_name
from proxy.exchange import Exchange
from proxy.responders import Reply
from proxy.responders.base import Hold
from proxy.wire import SSE_END

log = logging.getLogger("l104.relay")


BROKEN = (AttemptFailed, aiohttp.ClientError, TimeoutError)
# How much of a chunk's end is read again with the next one, so that a usageMetadata object
# cut in two by the network still counts (it is about 120 bytes).
SEAM = 512


def broken_stream(exc: BaseException) -> tuple[int, str]:
    """The code and message for an upstream stream that broke after its first byte."""
    timed_out = isinstance(exc, TimeoutError) or getattr(exc, "kind", "") == "timeout"
    return 504 if timed_out else 503, f"The upstream stream broke: {type(exc).__name__}."


def _error_frame(code: int, message: str, sse: bool, frames: str) -> bytes:
    """The in-band error: an SSE event (OpenAI's shape, or an Interactions ``error`` event, on
    those surfaces) or an array element."""
    if frames == "openai":
        return b"data: " + openai_wire.error_body(code, message) + b"\n\n"
    if frames == "interactions":
        event = {"event_type": "error", "error": {"code": status_name(code), "message": message}}
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
    frame = error_body(code, message)
    return b"data: " + frame + SSE_END if sse else b"\r\n," + frame


def abort(request: web.BaseRequest) -> None:
    """End the connection with no terminating chunk: the client sees a broken body.

    What was written is flushed first (``close``, not ``abort``); aiohttp's own ``write_eof``
    afterwards meets a closing transport and counts the response as cut short.
    """
    transport = request.transport
    if transport is not None:
        transport.close()


def hold_of(request: web.BaseRequest) -> Hold | None:
    """The client connection's :class:`Hold`, when the proxy's own server runs it."""
    hold = getattr(request.protocol, "hold", None)
    return hold if isinstance(hold, Hold) else None


def whole(
    reply: Reply, headers: Mapping[str, str], exchange: Exchange | None = None
) -> web.Response:
    if exchange is not None:
        exchange.status = reply.status
        exchange.mark_first_byte()
        if reply.status == 200:
            exchange.sniff_usage(reply.body)
    resp = web.Response(status=reply.status, body=reply.body, headers=headers)
    resp.headers["Content-Type"] = reply.content_type
    return resp


async def stream(
    request: web.Request,
    reply: Reply,
    headers: Mapping[str, str],
    sse: bool,
    exchange: Exchange,
    *,
    frames: str = "gemini",
) -> web.StreamResponse:
    """Relay ``reply.chunks`` unbuffered; the upstream is released however this ends. ``frames``
    (``gemini``, ``openai``, ``interactions``) is the shape of an in-band error."""
    assert reply.chunks is not None
    resp = web.StreamResponse(status=reply.status, headers=headers)
    resp.headers["Content-Type"] = reply.content_type
    resp.headers["Cache-Control"] = "no-cache"
    try:
        await resp.prepare(request)
        exchange.status = reply.status
        chunks = aiter(reply.chunks)
        tail = b""
        while True:
            try:
                data = await anext(chunks)
            except StopAsyncIteration:
                break
            except BROKEN as exc:  # the upstream broke: say so in-band, then cut
                code, message = broken_stream(exc)
                exchange.status = code
                log.warning("upstream stream broke after the first byte: %s", type(exc).__name__)
                with contextlib.suppress(ConnectionError):
                    await resp.write(_error_frame(code, message, sse, frames))
                abort(request)
                return resp
            exchange.mark_first_byte()
            try:
                await resp.write(data)
            except ConnectionError:  # the client left: nothing is wrong upstream
                exchange.status = 499
                log.debug("the client left a stream of %s", exchange.served or "?")
                return resp
            finally:
                # The chunk goes on first, its usage is read after: the client waits for none
                # of this (what the upstream counted still counts if the client left).
                if tail:  # usage cut by a network read: read across the boundary too
                    exchange.sniff_usage(tail + data[:SEAM])
                exchange.sniff_usage(data)
                tail = data[-SEAM:]
        await resp.write_eof()
    finally:
        reply.release()
    return resp
