"""The outer error layer: every failure leaves as Gemini's JSON."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.errors import ChainExhausted, InvalidArgument, UpstreamTimeout
from proxy.middleware.errors import ErrorMiddleware


def app_raising(exc: BaseException) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[ErrorMiddleware()])
    app.router.add_get("/x", handler)
    return app


@pytest.mark.parametrize(
    ("exc", "code", "status", "retry_after"),
    [
        (InvalidArgument("bad field"), 400, "INVALID_ARGUMENT", None),
        (ChainExhausted("all out", retry_after_s=16.2), 429, "RESOURCE_EXHAUSTED", "17"),
        (UpstreamTimeout("slow"), 504, "DEADLINE_EXCEEDED", None),
        (RuntimeError("secret internals"), 500, "INTERNAL", None),
        (web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2), 413, "INVALID_ARGUMENT", None),
    ],
)
async def test_errors_become_gemini_json(
    exc: BaseException, code: int, status: str, retry_after: str | None
) -> None:
    async with TestClient(TestServer(app_raising(exc), host="127.0.0.1")) as client:
        resp = await client.get("/x")
        assert resp.status == code
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers.get("Retry-After") == retry_after
        body = await resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    assert "secret internals" not in body["error"]["message"]


async def test_a_started_response_is_never_answered_twice() -> None:
    import aiohttp

    from proxy.middleware.errors import mark_started

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"data: first\r\n\r\n")
        raise InvalidArgument("too late to say so")

    app = web.Application(middlewares=[ErrorMiddleware()])
    app.on_response_prepare.append(mark_started)
    app.router.add_get("/x", handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/x")
        assert resp.status == 200  # the status line that went out stays the only one
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
