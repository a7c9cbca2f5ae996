"""Spans and counts for what the rotation loop does: one CLIENT span per upstream attempt, with
the GenAI semantic conventions, and a span event per rotation.

Spans carry no prompt or answer text unless ``tracing.capture_content`` is on, and never a key.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy.config import Member
from proxy.exchange import Exchange
from proxy.responders import Call
from proxy.telemetry.prom import Prom

PROPAGATOR = TraceContextTextMapPropagator()

OPERATIONS = {
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "countTokens": "count_tokens",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
    "openai.chat": "chat",
    "openai.chat.stream": "chat",
    "openai.embeddings": "embeddings",
}


class Observer:
    """What the rotation loop reports to; cheap no-ops when tracing is off."""

    def __init__(
        self, tracer: trace.Tracer, prom: Prom, *, tracing: bool, capture_content: bool = False
    ) -> None:
        self.tracer = tracer
        self.prom = prom
        self.tracing = tracing
        self.capture_content = capture_content

    def start_attempt(self, member: Member, key: int, call: Call) -> Span:
        """A CLIENT span for one attempt; its ``traceparent`` goes upstream with the call."""
        if not self.tracing:
            return trace.INVALID_SPAN
        parent = trace.get_current_span()
        if not parent.is_recording():
            # An unsampled trace: pass a client's context on upstream; make no span of our own.
            if parent.get_span_context().is_valid:
                carrier: dict[str, str] = {}
                PROPAGATOR.inject(carrier)
                call.trace_headers = carrier
            return trace.INVALID_SPAN
        operation = OPERATIONS.get(call.action, call.action)
        span = self.tracer.start_span(
            f"{operation} {member.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": "gcp.gemini",
                "gen_ai.system": "gemini",
                "gen_ai.request.model": member.model,
                "l104.responder": member.responder,
                "l104.key_index": key,
            },
        )
        if self.capture_content:
            span.set_attribute("gen_ai.input.messages", call.body[:16384].decode(errors="replace"))
        carried: dict[str, str] = {}
        PROPAGATOR.inject(carried, context=trace.set_span_in_context(span))
        call.trace_headers = carried
        return span

    def attempt_failed(self, span: Span, member: Member, outcome: str) -> None:
        """End an attempt that did not answer 200: ``outcome`` is a status or a failure kind."""
        self.prom.tallies.attempts[member.model, outcome] += 1
        if outcome == "429":
            self.prom.child(self.prom.quota_429, member.model).inc()
        if span.is_recording():
            span.set_attribute("error.type", outcome)
            if outcome.isdigit():
                span.set_attribute("http.response.status_code", int(outcome))
            span.set_status(Status(StatusCode.ERROR))
            span.end()

    def skipped(self, member: Member, why: str) -> None:
        """A member passed by without an attempt, for a reason the span should say."""
        current = trace.get_current_span()
        if current.is_recording():
            current.add_event("l104.skip", {"l104.member": member.label, "l104.reason": why})

    def signature_repair(self, span: Span, member: Member) -> None:
        """The member refused the turn's thought signatures; the step goes again, repaired."""
        self.prom.child(self.prom.signature_repairs, member.model).inc()
        if span.is_recording():
            span.add_event("l104.signature_repair", {"gen_ai.request.model": member.model})

    def attempt_answered(self, member: Member) -> None:
        self.prom.tallies.attempts[member.model, "200"] += 1

    def finish(self, span: Span, exchange: Exchange, output: bytes = b"") -> None:
        """End the winning attempt once its answer is out (a stream: at its end)."""
        if not self.tracing or not span.is_recording():
            return
        span.set_attribute("http.response.status_code", exchange.status)
        span.set_attribute("gen_ai.response.model", exchange.response_model or exchange.served)
        span.set_attribute("gen_ai.usage.input_tokens", exchange.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", exchange.output_tokens)
        if exchange.first_byte_s is not None:
            span.set_attribute(
                "l104.time_to_first_chunk_ms", round(exchange.first_byte_s * 1000, 3)
            )
        if self.capture_content and output:
            span.set_attribute("gen_ai.output.messages", output[:16384].decode(errors="replace"))
        if exchange.status != 200:
            span.set_attribute("error.type", str(exchange.status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def rotation(self, left: Member, to: Member, reason: str, cooldown_s: float) -> None:
        self.prom.rotations.inc()
        current = trace.get_current_span()
        if current.is_recording():
            current.add_event(
                "l104.rotation",
                {
                    "l104.rotation.from": left.label,
                    "l104.rotation.to": to.label,
                    "l104.rotation.reason": reason,
                    "l104.rotation.cooldown_s": round(cooldown_s, 3),
                },
            )
