"""The outermost layer: one SERVER span per request, and the request metrics.

It wraps the handler without touching the body, so streams pass through unbuffered. A client's
``traceparent`` continues its trace; the span ends when the response (a stream included) is done.
It also makes the request's :class:`~proxy.exchange.Exchange`, which the inner layers fill in.
"""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from proxy.exchange import EXCHANGE, Exchange
from proxy.metrics import Counters
from proxy.middleware import Handler, Middleware, is_open
from proxy.telemetry.attempts import PROPAGATOR
from proxy.telemetry.prom import Prom


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


class Telemetry(Middleware):
    def __init__(
        self,
        tracer: trace.Tracer,
        prom: Prom,
        counters: Counters,
        *,
        tracing: bool,
        head_ratio: float = 1.0,
    ) -> None:
        self.tracer = tracer
        self.prom = prom
        self.counters = counters
        self.tracing = tracing
        self.head_ratio = head_ratio

    def _start(self, request: web.Request, route: str) -> trace.Span:
        if not self.tracing:
            return trace.INVALID_SPAN
        headers = request.headers
        parent = None
        if "traceparent" in headers:
            parent = PROPAGATOR.extract(headers)
        elif self.head_ratio < 1.0 and random.random() >= self.head_ratio:
            return trace.INVALID_SPAN  # not sampled: no span, no context, no cost
        return self.tracer.start_span(
            f"{request.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "http.route": route,
                "url.path": request.path,
                "url.scheme": request.scheme,
                "server.address": request.host.rsplit(":", 1)[0],
                "network.protocol.version": f"{request.version.major}.{request.version.minor}",
                "user_agent.original": headers.get("User-Agent", ""),
            },
        )

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request):
            return await handler(request)
        route = route_of(request)
        exchange = request[EXCHANGE] = Exchange()
        self.counters.requests_total += 1
        status = 500
        self.prom.tallies.in_flight += 1
        span = self._start(request, route)
        if span is trace.INVALID_SPAN:  # most requests (1 % are sampled): nothing to ask it
            try:
                response = await handler(request)
                status = response.status
                return response
            except (asyncio.CancelledError, ConnectionResetError):
                status = 499
                raise
            finally:
                self._count(exchange, route, status)
        try:
            context = span.get_span_context()
            if span.is_recording():
                exchange.trace_id = f"{context.trace_id:032x}"
            if context.is_valid:
                # Current for the attempts: a recorded span is their parent; a client's
                # unsampled trace makes no spans here, but its context still goes upstream.
                with trace.use_span(span, end_on_exit=False):
                    response = await handler(request)
            else:
                response = await handler(request)
            status = response.status
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            status = 499  # the client went away
            raise
        finally:
            self._finish(exchange, route, status, span)

    def _count(self, exchange: Exchange, route: str, status: int) -> None:
        """The request's metrics, traced or not."""
        tallies = self.prom.tallies
        tallies.in_flight -= 1
        tallies.requests[route, status] += 1
        tallies.latency[route].observe(time.perf_counter() - exchange.started)
        if exchange.first_byte_s is not None:
            tallies.ttfb[route].observe(exchange.first_byte_s)
        if exchange.rate_limited:
            tallies.rate_limited[exchange.client, exchange.rate_limited] += 1

    def _finish(self, exchange: Exchange, route: str, status: int, span: trace.Span) -> None:
        self._count(exchange, route, status)
        if not span.is_recording():  # tracing off, or this trace not sampled
            return
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("l104.client", exchange.client)
        span.set_attribute("l104.rate_limited", exchange.rate_limited or "no")
        if exchange.requested:
            span.set_attribute("l104.requested_model", exchange.requested)
        if exchange.served:
            span.set_attribute("l104.served_model", exchange.served)
            span.set_attribute("l104.attempts", exchange.attempts)
        if exchange.first_byte_s is not None:
            span.set_attribute("l104.time_to_first_byte_ms", round(exchange.first_byte_s * 1000, 3))
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))
        span.end()
