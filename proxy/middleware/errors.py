"""The outer error layer: every error becomes Gemini's JSON body (OpenAI's on the
OpenAI-compatible surface), so the client's SDK raises as usual."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from aiohttp import web

from proxy import openai_wire
from proxy.errors import ProxyError, error_body
from proxy.exchange import exchange_of
from proxy.middleware import Handler, Middleware

log = logging.getLogger("l104.errors")


# The OpenAI-compatible surface answers errors in OpenAI's shape, which its SDKs parse.
OPENAI_PREFIX = "/v1beta/openai/"


def error_response(
    path: str,
    code: int,
    message: str,
    retry_after_s: float | None = None,
    details: list[Any] | None = None,
) -> web.Response:
    """The error in the shape of the surface ``path`` is on: Gemini's, or OpenAI's."""
    body = (
        openai_wire.error_body(code, message)
        if path.startswith(OPENAI_PREFIX)
        else error_body(code, message, details=details)
    )
    resp = web.Response(status=code, body=body, content_type="application/json")
    if retry_after_s is not None:
        resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return resp


_HTTP_MESSAGES = {
    404: "The requested URL was not found on this server.",
    405: "The requested URL was not found on this server.",
    413: "Request payload size exceeds the limit.",
}


STARTED = web.RequestKey("l104_response_started", bool)


def note_started(request: web.BaseRequest) -> None:
    """From here on, the status line has gone out: an error is no longer answered."""
    request[STARTED] = True


async def mark_started(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: :func:`note_started`."""
    note_started(request)


class ErrorMiddleware(Middleware):
    """Turns ``ProxyError``, aiohttp's HTTP exceptions and crashes into Gemini errors.

    A response that has started is never answered twice (the status line is out): such a
    failure is logged and the connection ends. Streams report their own failures in-band.
    """

    def __init__(self, max_body_bytes: int = 0) -> None:
        self.max_body_bytes = max_body_bytes

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = request.content_length
        if (
            declared is not None
            and self.max_body_bytes
            and declared > self.max_body_bytes
            and not request.path.startswith("/upload/")  # uploads have their own limit
        ):
            # Refused from the headers, at once: never wait for a body that would be refused,
            # and close the connection once the answer is out rather than drain the body.
            exchange_of(request).status = 413
            resp = error_response(request.path, 413, _HTTP_MESSAGES[413])
            resp.force_close()
            await resp.prepare(request)
            await resp.write_eof()
            if request.transport is not None:
                request.transport.close()
            return resp
        try:
            return await handler(request)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            if request.get(STARTED):
                log.warning(
                    "error after the response started on %s %s: %s",
                    request.method,
                    request.path,
                    type(exc).__name__,
                )
                raise
            return self.answer(request, exc)

    def answer(self, request: web.Request, exc: Exception) -> web.Response:
        exchange = exchange_of(request)
        if isinstance(exc, ProxyError):
            exchange.status = exc.code
            return error_response(
                request.path, exc.code, exc.message, exc.retry_after_s, exc.details
            )
        if isinstance(exc, web.HTTPException):
            if exc.status < 400:
                raise exc
            # Anything outside the Gemini surface is simply not found: never forwarded.
            code = 404 if exc.status == 405 else exc.status
            exchange.status = code
            message = _HTTP_MESSAGES.get(exc.status) or exc.text or exc.reason
            return error_response(request.path, code, message)
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        exchange.status = 500
        return error_response(request.path, 500, "Internal error in the proxy.")
