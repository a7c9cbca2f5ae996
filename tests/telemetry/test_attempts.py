"""Spans through the SDK into an in-memory exporter: the tree, GenAI attributes, rotations,
context in and out, privacy."""

from __future__ import annotations

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import StartProxy, Upstream, base_yaml, key_shaped
from tests.telemetry.spans import SpanView, from_sdk, traceparent

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
ALL = "tracing: {sample_ratio: 1.0}"  # the default samples 10 % of requests without traceparent


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def provider_for(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def spans(exporter: InMemorySpanExporter) -> list[SpanView]:
    return [from_sdk(s) for s in exporter.get_finished_spans()]


async def test_tree_attributes_rotation_and_context(
    start_proxy: StartProxy, upstream: Upstream, exporter: InMemorySpanExporter
) -> None:
    secret = key_shaped("t")
    proxy = await start_proxy(
        base_yaml(upstream.url, keys=(secret,)), provider=provider_for(exporter)
    )
    upstream.script("m1", {"status": 429, "delay": "23s"})
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/default:generateContent",
            headers={
                "traceparent": traceparent(CLIENT_TRACE, CLIENT_SPAN),
                "x-goog-api-key": "client-secret-key",
            },
            json={"contents": [{"role": "user", "parts": [{"text": "private prompt"}]}]},
        ) as r,
    ):
        assert r.status == 200
        await r.read()
    found = spans(exporter)
    server = [s for s in found if s.kind == "SERVER"]
    client = [s for s in found if s.kind == "CLIENT"]
    assert len(server) == 1
    assert len(client) == 2
    root = server[0]
    # The client's trace continues: same trace, the server span is the child of its span.
    assert (root.trace_id, root.parent_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert root.name == "POST /v1beta/models/{target}"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["http.request.method"] == "POST"
    assert root.attributes["l104.client"] == "anonymous"
    assert root.attributes["l104.served_model"] == "m2"
    for attempt in client:
        assert attempt.trace_id == CLIENT_TRACE
        assert attempt.parent_id == root.span_id
        assert attempt.attributes["gen_ai.operation.name"] == "generate_content"
        assert attempt.attributes["gen_ai.provider.name"] == "gcp.gemini"
    failed, won = sorted(client, key=lambda s: s.attributes["gen_ai.request.model"])
    assert failed.name == "generate_content m1"
    assert failed.attributes["error.type"] == "429"
    assert failed.status == "ERROR"
    assert won.attributes["gen_ai.request.model"] == "m2"
    assert won.attributes["gen_ai.response.model"] == "m2"
    assert won.attributes["gen_ai.usage.input_tokens"] == 8
    assert won.attributes["gen_ai.usage.output_tokens"] == 3
    assert "error.type" not in won.attributes
    assert root.events == [
        (
            "l104.rotation",
            {
                "l104.rotation.from": "up:m1",
                "l104.rotation.to": "up:m2",
                "l104.rotation.reason": "429",
                "l104.rotation.cooldown_s": 23.0,
            },
        )
    ]
    # Every upstream request carried the traceparent of its own attempt span.
    sent = {r["model"]: r["headers"]["traceparent"] for r in upstream.requests()}
    assert sent["m1"] == traceparent(CLIENT_TRACE, failed.span_id)
    assert sent["m2"] == traceparent(CLIENT_TRACE, won.span_id)
    everything = repr(found)
    assert secret not in everything
    assert "client-secret-key" not in everything
    assert "private prompt" not in everything


async def test_content_is_captured_only_when_asked(
    start_proxy: StartProxy, upstream: Upstream, exporter: InMemorySpanExporter
) -> None:
    text = base_yaml(upstream.url, extra="tracing: {capture_content: true, sample_ratio: 1.0}")
    proxy = await start_proxy(text, provider=provider_for(exporter))
    await proxy.client().aio.models.generate_content(model="default", contents="shown prompt")
    attempt = next(s for s in spans(exporter) if s.kind == "CLIENT")
    assert "shown prompt" in attempt.attributes["gen_ai.input.messages"]
    assert "Hello from m1." in attempt.attributes["gen_ai.output.messages"]


async def test_stream_spans_end_with_the_stream(
    start_proxy: StartProxy, upstream: Upstream, exporter: InMemorySpanExporter
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=ALL), provider=provider_for(exporter))
    upstream.script("m1", {"chunks": 3, "gate": True})
    stream = await proxy.client().aio.models.generate_content_stream(model="default", contents="x")
    await anext(stream)
    assert [s for s in spans(exporter) if s.kind == "CLIENT"] == []  # still streaming
    upstream.release()
    _ = [c async for c in stream]
    attempt = next(s for s in spans(exporter) if s.kind == "CLIENT")
    root = next(s for s in spans(exporter) if s.kind == "SERVER")
    assert attempt.attributes["l104.time_to_first_chunk_ms"] > 0
    assert root.attributes["l104.time_to_first_byte_ms"] > 0
    assert attempt.attributes["gen_ai.usage.output_tokens"] == 3


async def test_rate_limit_decision_is_an_attribute(
    start_proxy: StartProxy, upstream: Upstream, exporter: InMemorySpanExporter
) -> None:
    clients = 'clients:\n  - {name: tiny, key: "tiny-key", requests_per_minute: 1}\n' + ALL
    proxy = await start_proxy(
        base_yaml(upstream.url, extra=clients), provider=provider_for(exporter)
    )
    client = proxy.client(key="tiny-key")
    await client.aio.models.generate_content(model="default", contents="x")
    with pytest.raises(Exception, match="429"):
        await client.aio.models.generate_content(model="default", contents="x")
    roots = [s for s in spans(exporter) if s.kind == "SERVER"]
    assert [r.attributes["l104.rate_limited"] for r in roots] == ["no", "requests-per-minute"]
    assert all(r.attributes["l104.client"] == "tiny" for r in roots)
    assert "tiny-key" not in repr(roots)


async def test_head_sampling_skips_unsampled_requests_entirely(
    start_proxy: StartProxy, upstream: Upstream, exporter: InMemorySpanExporter
) -> None:
    proxy = await start_proxy(
        base_yaml(upstream.url, extra="tracing: {sample_ratio: 0.0}"),
        provider=provider_for(exporter),
    )
    for _ in range(5):
        await proxy.client().aio.models.generate_content(model="default", contents="x")
    assert spans(exporter) == []
    assert all("traceparent" not in r["headers"] for r in upstream.requests())
    # A client that traces is always followed, whatever the ratio.
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/default:generateContent",
            headers={"traceparent": traceparent(CLIENT_TRACE, CLIENT_SPAN)},
            json={"contents": []},
        ) as r,
    ):
        assert r.status == 200
    assert {s.trace_id for s in spans(exporter)} == {CLIENT_TRACE}


async def test_a_clients_unsampled_trace_goes_upstream_without_spans(
    start_proxy: StartProxy, upstream: Upstream, exporter: InMemorySpanExporter
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra=ALL), provider=provider_for(exporter))
    unsampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{proxy.url}/v1beta/models/default:generateContent",
            headers={"traceparent": unsampled},
            json={"contents": []},
        ) as r,
    ):
        assert r.status == 200
    assert spans(exporter) == []  # the client chose not to sample: nothing is recorded
    # W3C Trace Context: the trace goes on, still unsampled, so the upstream's spans (if it
    # makes any) join the client's trace.
    sent = upstream.requests()[-1]["headers"]["traceparent"]
    version, trace_id, parent, flags = sent.split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "00")
    assert len(parent) == 16
    assert parent != "0" * 16
