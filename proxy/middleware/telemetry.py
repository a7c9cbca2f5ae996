"""The outermost layer: one SERVER span per request, and the request metrics.

It wraps the handler without touching the body, so streams pass through unbuffered. A client's
``traceparent`` continues its trace; the span ends when the response (a stream included) is done.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from proxy.exchange import EXCHANGE
from proxy.middleware import Handler, Middleware, is_open
from proxy.telemetry.attempts import PROPAGATOR
from proxy.telemetry.prom import Prom


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


class Telemetry(Middleware):
    def __init__(self, tracer: trace.Tracer, prom: Prom, *, tracing: bool) -> None:
        self.tracer = tracer
        self.prom = prom
        self.tracing = tracing

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request):
            return await handler(request)
        route = route_of(request)
        started = time.perf_counter()
        status = 500
        self.prom.in_flight.inc()
        span: trace.Span = trace.INVALID_SPAN
        if self.tracing:
            span = self.tracer.start_span(
                f"{request.method} {route}",
                context=PROPAGATOR.extract(request.headers),
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": request.method,
                    "http.route": route,
                    "url.path": request.path,
                    "url.scheme": request.scheme,
                    "server.address": request.host.rsplit(":", 1)[0],
                    "network.protocol.version": f"{request.version.major}.{request.version.minor}",
                    "user_agent.original": request.headers.get("User-Agent", ""),
                },
            )
        try:
            with trace.use_span(span, end_on_exit=False):
                response = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            self._finish(request, route, status, started, span)

    def _finish(
        self, request: web.Request, route: str, status: int, started: float, span: trace.Span
    ) -> None:
        elapsed = time.perf_counter() - started
        exchange = request.get(EXCHANGE)
        prom = self.prom
        prom.in_flight.dec()
        prom.requests.labels(route, str(status)).inc()
        prom.latency.labels(route).observe(elapsed)
        if exchange is not None and exchange.first_byte_s is not None:
            prom.ttfb.labels(route).observe(exchange.first_byte_s)
        if exchange is not None and exchange.rate_limited:
            prom.rate_limited.labels(exchange.client, exchange.rate_limited).inc()
        if not self.tracing:
            return
        span.set_attribute("http.response.status_code", status)
        if exchange is not None:
            span.set_attribute("l104.client", exchange.client)
            span.set_attribute("l104.rate_limited", exchange.rate_limited or "no")
            if exchange.requested:
                span.set_attribute("l104.requested_model", exchange.requested)
            if exchange.served:
                span.set_attribute("l104.served_model", exchange.served)
                span.set_attribute("l104.attempts", exchange.attempts)
            if exchange.first_byte_s is not None:
                span.set_attribute(
                    "l104.time_to_first_byte_ms", round(exchange.first_byte_s * 1000, 3)
                )
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))
        span.end()
