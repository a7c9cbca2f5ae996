"""Helpers to read spans the same way whether they came from memory or from a collector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan


@dataclass
class SpanView:
    name: str
    kind: str  # SERVER | CLIENT | INTERNAL
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: str = "UNSET"

    def text(self) -> str:
        return repr(self)


def from_sdk(span: ReadableSpan) -> SpanView:
    ctx = span.get_span_context()
    assert ctx is not None
    return SpanView(
        name=span.name,
        kind=span.kind.name,
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_id=f"{span.parent.span_id:016x}" if span.parent else "",
        attributes=dict(span.attributes or {}),
        events=[(e.name, dict(e.attributes or {})) for e in span.events],
        status=span.status.status_code.name,
    )


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"
