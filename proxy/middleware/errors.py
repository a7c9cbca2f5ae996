"""The outermost layer: every error becomes Gemini's JSON body, so the SDK raises as usual."""

from __future__ import annotations

import logging
import math

from aiohttp import web

from proxy.errors import ProxyError, error_body
from proxy.exchange import exchange_of
from proxy.middleware import Handler, Middleware

log = logging.getLogger("l104.errors")


def gemini_error(code: int, message: str, retry_after_s: float | None = None) -> web.Response:
    resp = web.Response(
        status=code, body=error_body(code, message), content_type="application/json"
    )
    if retry_after_s is not None:
        resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return resp


_HTTP_MESSAGES = {
    404: "The requested URL was not found on this server.",
    405: "The requested URL was not found on this server.",
    413: "Request payload size exceeds the limit.",
}


class ErrorMiddleware(Middleware):
    """Turns ``ProxyError``, aiohttp's HTTP exceptions and crashes into Gemini errors.

    A stream that has started is never answered twice: ``relay`` reports its own failures
    in-band, and a client that went away simply ends the request.
    """

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ProxyError as exc:
            exchange_of(request).status = exc.code
            return gemini_error(exc.code, exc.message, exc.retry_after_s)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            # Anything outside the Gemini surface is simply not found: never forwarded.
            code = 404 if exc.status == 405 else exc.status
            exchange_of(request).status = code
            message = _HTTP_MESSAGES.get(exc.status) or exc.text or exc.reason
            return gemini_error(code, message)
        except ConnectionResetError:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            exchange_of(request).status = 500
            return gemini_error(500, "Internal error in the proxy.")
