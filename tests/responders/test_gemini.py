"""The gemini responder against the fake upstream: keys, headers, timeouts, scrubbing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import trustme

from proxy.errors import AttemptFailed
from proxy.responders import Call
from proxy.responders.gemini import GeminiResponder
from proxy.responders.gemini_spec import GeminiSpec
from tests.conftest import ROOT, Upstream, free_port, key_shaped


async def test_key_goes_only_as_header_and_is_scrubbed_from_error_bodies(
    upstream: Upstream,
) -> None:
    secret = key_shaped("k")
    async with aiohttp.ClientSession() as session:
        responder = GeminiResponder(
            "up", GeminiSpec(base_url=upstream.url, api_keys=(secret,)), session
        )
        upstream.script("m1", {"status": 400, "echo_key": True})
        reply = await responder.send(
            Call("generateContent", "m1", headers={"user-agent": "sdk/1"}), 0
        )
    assert reply.status == 400
    assert secret.encode() not in reply.body
    assert b"[redacted]" in reply.body
    sent = upstream.requests("m1")[0]
    assert sent["headers"]["x-goog-api-key"] == secret
    assert sent["headers"]["user-agent"] == "sdk/1"
    assert sent["query"] == {}
    assert "key=" not in sent["path"]
    assert secret not in repr(responder.spec)


@pytest.mark.parametrize(
    ("action", "query"),
    [("generateContent", ""), ("streamGenerateContent", "alt=sse"), ("streamGenerateContent", "")],
)
async def test_a_key_the_upstream_reflects_in_a_200_or_a_stream_is_scrubbed(
    upstream: Upstream, action: str, query: str
) -> None:
    """Even cut in two by a network read (the fake writes each event in two pieces, split in
    the middle of the key)."""
    secret = key_shaped("r")
    async with aiohttp.ClientSession() as session:
        responder = GeminiResponder(
            "up", GeminiSpec(base_url=upstream.url, api_keys=(secret,)), session
        )
        upstream.script("m1", {"echo_key": True})
        reply = await responder.send(Call(action, "m1", query=query, sse=bool(query)), 0)
        assert reply.status == 200
        if reply.chunks is None:
            body = reply.body
        else:
            body = b"".join([chunk async for chunk in reply.chunks])
            reply.release()
    assert secret.encode() not in body
    assert secret[:20].encode() not in body
    assert body.count(b"[redacted]") == (1 if reply.chunks is None else 3)
    assert b"part2 from m1" in body or b"Hello from m1" in body


async def test_no_answer_is_an_attempt_failure(upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as session:
        dead = GeminiResponder(
            "up", GeminiSpec(base_url=f"http://127.0.0.1:{free_port()}", api_keys=("k",)), session
        )
        with pytest.raises(AttemptFailed) as info:
            await dead.send(Call("generateContent", "m1"), 0)
        assert info.value.kind == "connect"
        slow = GeminiResponder(
            "up", GeminiSpec(base_url=upstream.url, api_keys=("k",), timeout_s=0.2), session
        )
        upstream.script("m1", {"hang": 3})
        with pytest.raises(AttemptFailed) as info:
            await slow.send(Call("generateContent", "m1"), 0)
        assert info.value.kind == "timeout"


async def test_an_https_upstream_is_trusted_through_its_ca_file(tmp_path: Path) -> None:
    """The fake upstream over TLS with a CA the test makes: trusted through ``ca_file``, and
    refused (a connect failure, never an unverified answer) without it."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    port = free_port()
    server = await asyncio.to_thread(tls_upstream, port, tmp_path / "server.pem")
    try:
        base = f"https://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            trusted = GeminiResponder(
                "up",
                GeminiSpec(base_url=base, api_keys=("k",), ca_file=str(tmp_path / "ca.pem")),
                session,
            )
            reply = await trusted.send(Call("generateContent", "m1"), 0)
            assert reply.status == 200
            assert b"Hello from m1." in reply.body
            stranger = GeminiResponder("up", GeminiSpec(base_url=base, api_keys=("k",)), session)
            with pytest.raises(AttemptFailed) as refused:
                await stranger.send(Call("generateContent", "m1"), 0)
            assert refused.value.kind == "connect"
            assert "certificate" in str(refused.value).lower()
    finally:
        server.terminate()
        server.wait(5)


def tls_upstream(port: int, pem: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.fakes.upstream", "--port", str(port)),
            *("--cert", str(pem), "--key", str(pem)),
        ],
        cwd=ROOT,
    )
    wait_port(port)
    return server


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        time.sleep(0.05)
    raise AssertionError("the TLS upstream did not start")


async def test_a_unary_call_whose_client_left_finishes_and_its_connection_is_reused(
    upstream: Upstream,
) -> None:
    async with aiohttp.ClientSession() as session:
        responder = GeminiResponder(
            "up", GeminiSpec(base_url=upstream.url, api_keys=("k",)), session
        )
        upstream.script("m1", {"hang": 0.4})
        call = asyncio.create_task(responder.send(Call("generateContent", "m1"), 0))
        await asyncio.sleep(0.1)
        call.cancel()  # the client left while the upstream was answering
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(0.6)  # the upstream's answer came, and was read to the end
        reply = await responder.send(Call("generateContent", "m1"), 0)
        assert reply.status == 200
    first, second = upstream.requests("m1")
    assert first["peer_port"] == second["peer_port"]  # the same connection, back in the pool
