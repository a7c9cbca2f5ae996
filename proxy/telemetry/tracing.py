"""The tracer provider: exporter, resource and sampling from the config and ``OTEL_*``.

``tracing.exporter`` is ``otlp`` (OTLP/HTTP to ``tracing.endpoint``), ``console`` or ``none``.
The standard variables win over the file: ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER(_ARG)``,
``OTEL_SDK_DISABLED``. Spans go through a batch processor, flushed when the app stops. The
provider is not installed globally: it is handed to the layers that use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from proxy import __version__
from proxy.config import Tracing

SCOPE = "l104-proxy"


def exporter_for(tracing: Tracing, env: Mapping[str, str]) -> SpanExporter | None:
    if tracing.exporter == "console":
        return ConsoleSpanExporter()
    if tracing.exporter != "otlp":
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return OTLPSpanExporter()  # it reads the variables itself
    return OTLPSpanExporter(endpoint=tracing.endpoint.rstrip("/") + "/v1/traces")


def build_provider(tracing: Tracing, env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A provider with a batch processor, or None when nothing is exported."""
    env = os.environ if env is None else env
    exporter = exporter_for(tracing, env)
    if exporter is None:
        return None
    name = env.get("OTEL_SERVICE_NAME") or tracing.service_name
    resource = Resource.create({SERVICE_NAME: name, "service.version": __version__})
    # With no OTEL_TRACES_SAMPLER the SDK samples ParentBased(AlwaysOn): roots were already
    # chosen by head_ratio() before any span existed, and a client's sampled flag is kept.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider


def head_ratio(tracing: Tracing, env: Mapping[str, str] | None = None) -> float:
    """The share of requests without a ``traceparent`` that start a trace.

    Deciding this before making any span keeps an unsampled request free of tracing work. A
    request that carries a ``traceparent`` always follows its parent's sampled flag.
    ``OTEL_TRACES_SAMPLER`` hands the decision to the SDK's sampler instead (ratio 1 here).
    """
    env = os.environ if env is None else env
    return 1.0 if env.get("OTEL_TRACES_SAMPLER") else tracing.sample_ratio


def tracer_of(provider: TracerProvider | None) -> trace.Tracer:
    if provider is None:
        return trace.NoOpTracer()
    return provider.get_tracer(SCOPE, __version__)
