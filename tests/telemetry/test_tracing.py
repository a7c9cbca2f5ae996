"""The provider follows the config and the standard OTEL_* variables."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from proxy.config import Tracing
from proxy.telemetry.tracing import build_provider, exporter_for, head_ratio


def test_none_builds_nothing() -> None:
    assert build_provider(Tracing(exporter="none"), {}) is None


def test_exporters_and_endpoints() -> None:
    assert isinstance(exporter_for(Tracing(exporter="console"), {}), ConsoleSpanExporter)
    otlp = exporter_for(Tracing(exporter="otlp", endpoint="http://127.0.0.1:9/"), {})
    assert isinstance(otlp, OTLPSpanExporter)
    assert otlp._endpoint == "http://127.0.0.1:9/v1/traces"
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:7/custom"}
    from_env = exporter_for(Tracing(exporter="otlp"), env)
    assert isinstance(from_env, OTLPSpanExporter)


def test_service_name_and_sampling() -> None:
    provider = build_provider(
        Tracing(exporter="console", service_name="mine", sample_ratio=0.25), {}
    )
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "mine"
    provider.shutdown()
    assert head_ratio(Tracing(sample_ratio=0.25), {}) == 0.25
    assert head_ratio(Tracing(sample_ratio=0.25), {"OTEL_TRACES_SAMPLER": "always_on"}) == 1.0
    provider = build_provider(
        Tracing(exporter="console", service_name="mine"), {"OTEL_SERVICE_NAME": "from-env"}
    )
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "from-env"
    provider.shutdown()
