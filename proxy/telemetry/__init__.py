"""Telemetry: OpenTelemetry traces (:mod:`.tracing`, :mod:`.attempts`) and Prometheus
metrics (:mod:`.prom`)."""
