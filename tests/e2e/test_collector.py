"""Traces from the proxy process, through a real OTLP collector (rotel), into a receiver here.

proxy --OTLP/HTTP--> rotel-agent --OTLP/HTTP (gzip)--> this test's receiver, which decodes
``ExportTraceServiceRequest`` and keeps the spans.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import rotel
from aiohttp import web
from aiohttp.test_utils import TestServer
from google.genai import types
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.conftest import ProxyProcess, Upstream, base_yaml, free_port, key_shaped
from tests.telemetry.spans import SpanView, traceparent

AGENT = Path(rotel.__file__).parent / "rotel-agent"
KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def _value(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Receiver:
    def __init__(self) -> None:
        self.spans: list[SpanView] = []
        self.services: set[str] = set()

    async def traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())  # aiohttp has already gunzipped it
        for resource_spans in export.resource_spans:
            for attr in resource_spans.resource.attributes:
                if attr.key == "service.name":
                    self.services.add(str(_value(attr.value)))
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(
                        SpanView(
                            name=s.name,
                            kind=KINDS.get(s.kind, "UNSPECIFIED"),
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            events=[
                                (e.name, {a.key: _value(a.value) for a in e.attributes})
                                for e in s.events
                            ],
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, Receiver]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.traces)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    grpc, http = free_port(), free_port()
    agent = await asyncio.create_subprocess_exec(
        *[
            str(AGENT),
            "--log-format",
            "json",
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http}",
            "--exporter",
            "otlp",
            "--otlp-exporter-protocol",
            "http",
            "--otlp-exporter-endpoint",
            f"http://127.0.0.1:{server.port}",
            "--batch-timeout",
            "50ms",
        ],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", http)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{http}", receiver
    finally:
        agent.terminate()
        await asyncio.wait_for(agent.wait(), 10)
        await server.close()


async def test_traces_arrive_in_a_real_collector(
    collector: tuple[str, Receiver],
    upstream: Upstream,
    proxy_process: Callable[..., ProxyProcess],
) -> None:
    endpoint, receiver = collector
    secret = key_shaped("c")
    text = base_yaml(
        upstream.url,
        keys=(secret,),
        extra=(f'tracing: {{exporter: otlp, endpoint: "{endpoint}", service_name: l104-test}}'),
    )
    proxy = await asyncio.to_thread(proxy_process, text)
    upstream.script("m1", {"status": 429, "delay": "30s"})
    client = proxy.client()
    options = types.GenerateContentConfig(
        http_options=types.HttpOptions(
            headers={"traceparent": traceparent(CLIENT_TRACE, CLIENT_SPAN)}
        )
    )
    response = await client.aio.models.generate_content(
        model="default", contents="a secret prompt", config=options
    )
    assert response.text == "Hello from m2."
    deadline = time.monotonic() + 15
    # The spans come from another process's batch exporter: poll, bounded in time.
    while time.monotonic() < deadline and len(receiver.spans) < 3:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    await client.aio.aclose()
    assert receiver.services == {"l104-test"}
    server = [s for s in receiver.spans if s.kind == "SERVER"]
    attempts = sorted(
        (s for s in receiver.spans if s.kind == "CLIENT"),
        key=lambda s: str(s.attributes["gen_ai.request.model"]),
    )
    assert len(server) == 1
    assert len(attempts) == 2
    root = server[0]
    assert (root.trace_id, root.parent_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert all(a.parent_id == root.span_id and a.trace_id == CLIENT_TRACE for a in attempts)
    failed, won = attempts
    assert failed.attributes["error.type"] == "429"
    assert won.attributes["gen_ai.response.model"] == "m2"
    assert won.attributes["gen_ai.usage.input_tokens"] == 8
    assert won.attributes["gen_ai.usage.output_tokens"] == 3
    assert won.attributes["gen_ai.operation.name"] == "generate_content"
    assert root.events[0][0] == "l104.rotation"
    assert root.events[0][1]["l104.rotation.to"] == "up:m2"
    sent = {r["model"]: r["headers"]["traceparent"] for r in upstream.requests()}
    assert sent == {
        "m1": traceparent(CLIENT_TRACE, failed.span_id),
        "m2": traceparent(CLIENT_TRACE, won.span_id),
    }
    everything = repr(receiver.spans)
    assert secret not in everything
    assert "client-key" not in everything
    assert "a secret prompt" not in everything
