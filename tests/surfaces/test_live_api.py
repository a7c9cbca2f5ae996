"""The Live API through the proxy: a plain WebSocket client (aiohttp) for the protocol's edges,
the real Python SDK over TLS (it always dials ``wss://``), and ``@google/genai`` over ``ws://``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import websockets
from google import genai
from google.genai import types

from tests.conftest import (
    ProxyProcess,
    StartProxy,
    Upstream,
    base_yaml,
    key_shaped,
    ledger_rows,
    run_node,
)

LIVE = "/ws/google.ai.generativelanguage.{v}.GenerativeService.BidiGenerateContent"
TURN = {
    "client_content": {
        "turns": [{"role": "user", "parts": [{"text": "hi"}]}],
        "turn_complete": True,
    }
}


async def wait_until(check: Callable[[], bool], limit_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if check():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError("not in time")


async def session(
    url: str, model: str = "default", key: str = "client-key"
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    s = aiohttp.ClientSession()
    ws = await s.ws_connect(url + LIVE.format(v="v1beta"), headers={"x-goog-api-key": key})
    await ws.send_str(json.dumps({"setup": {"model": f"models/{model}"}}))
    first = await ws.receive()
    return s, ws, json.loads(first.data) if first.type != aiohttp.WSMsgType.CLOSE else {}


async def test_a_text_session_rotates_at_connect(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    upstream.script("m1", {"status": 429})
    s, ws, first = await session(proxy.url)
    assert first == {"setupComplete": {}}
    await ws.send_str(json.dumps(TURN))
    answer = json.loads((await ws.receive()).data)
    assert answer["serverContent"]["modelTurn"]["parts"][0]["text"] == "Hello from m2."
    done = json.loads((await ws.receive()).data)
    assert done["usageMetadata"]["totalTokenCount"] == 8
    audio = bytes(range(256)) * 64  # not JSON: passes both ways as it is
    await ws.send_bytes(audio)
    echoed = await ws.receive()
    assert (echoed.type, echoed.data) == (aiohttp.WSMsgType.BINARY, audio)
    await ws.close()
    await s.close()
    setups = [r for r in upstream.requests() if r["action"] == "live.setup"]
    assert [json.loads(r["body"])["model"] for r in setups] == ["models/m1", "models/m2"]
    async with aiohttp.ClientSession() as c, c.get(proxy.url + "/health") as r:
        assert (await r.json())["models"]["m1"]["state"] == "cooling"


async def test_an_upgrade_refused_for_quota_moves_to_the_next_key(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    upstream.script("live-upgrade", {"status": 429})
    s, ws, first = await session(proxy.url)
    assert first == {"setupComplete": {}}
    upgrades = [r["key"] for r in upstream.requests() if r["action"] == "live.upgrade"]
    assert upgrades == ["key-a-upstream", "key-b-upstream"]
    await ws.close()
    await s.close()


async def test_every_member_out_of_quota_closes_with_1011(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",)))
    for model in ("m1", "m2", "m3"):
        upstream.script(model, {"status": 429})
    s, ws, first = await session(proxy.url)
    assert first == {}
    assert ws.close_code == 1011
    await s.close()


async def test_a_client_that_leaves_closes_the_upstream_within_a_second(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    s, ws, _ = await session(proxy.url)
    await ws.close(code=4000, message=b"bye")
    took = await wait_until(lambda: upstream.state().get("live_closed") == 1, 1.0)
    assert took < 1.0
    assert upstream.state()["live_close_code"] == 4000  # the client's own code went on
    await s.close()


async def test_live_sessions_per_client_are_capped(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = await start_proxy(base_yaml(upstream.url, extra="limits: {max_live_sessions: 1}"))
    s, ws, first = await session(proxy.url)
    assert first == {"setupComplete": {}}
    async with aiohttp.ClientSession() as other:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await other.ws_connect(proxy.url + LIVE.format(v="v1beta"))
        assert refused.value.status == 429
    async with aiohttp.ClientSession() as c, c.get(proxy.url + "/metrics") as r:
        assert (await r.json())["resources"]["live_sessions"] == 1
    await ws.close()
    await s.close()


async def say_hi(client: genai.Client, config: types.LiveConnectConfig) -> list[str]:
    """One turn of the SDK's Live session on ``default``: the texts that came back."""
    texts: list[str] = []
    async with client.aio.live.connect(model="default", config=config) as live:
        await live.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="hi")]), turn_complete=True
        )
        async for message in live.receive():
            if message.text:
                texts.append(message.text)
    return texts


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA made here, and a certificate for 127.0.0.1 that it signed."""
    root = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = {"ca": root / "ca.pem", "cert": root / "cert.pem", "key": root / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(files["cert"]), append=True)
    return files


async def test_the_python_sdk_over_tls(
    proxy_process: Callable[..., ProxyProcess],
    upstream: Upstream,
    tls_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tls = f"tls: {{cert_file: '{tls_files['cert']}', key_file: '{tls_files['key']}'}}"
    yaml = base_yaml(upstream.url, keys=("only-key",)).replace(
        "listen: {host: 127.0.0.1, port: 0}", f"listen: {{host: 127.0.0.1, port: 0, {tls}}}"
    )
    upstream.script("m1", {"status": 429})
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files["ca"]))
    proxy = proxy_process(yaml, scheme="https")
    assert proxy.url.startswith("https://")
    client = genai.Client(
        api_key="client-key",
        http_options=types.HttpOptions(base_url=proxy.url, api_version="v1beta"),
    )
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    assert await say_hi(client, config) == ["Hello from m2."]
    frames = [json.loads(r["body"]) for r in upstream.requests() if r["action"] == "live.frame"]
    assert "client_content" in frames[0]  # the SDK's snake_case frame went on as it was
    await client.aio.aclose()


async def test_the_js_sdk_over_ws(start_proxy: StartProxy, upstream: Upstream) -> None:
    proxy = await start_proxy(base_yaml(upstream.url))
    got = await run_node("live_session.mjs", proxy.url, "client-key", "default")
    assert got == {"texts": ["Hello from m1."], "error": None}


async def test_a_session_is_one_ledger_row_with_its_usage(
    start_proxy: StartProxy, upstream: Upstream, tmp_path: Path
) -> None:
    db = tmp_path / "l104.db"
    proxy = await start_proxy(base_yaml(upstream.url, store=str(db)))
    s, ws, first = await session(proxy.url)
    assert first == {"setupComplete": {}}
    for _ in range(2):  # two turns in one session
        await ws.send_str(json.dumps(TURN))
        await ws.receive()
        await ws.receive()
    await ws.close()
    await s.close()
    rows = await ledger_rows(db, "requested, served, status, input_tokens, output_tokens")
    assert rows == [("default", "m1", 200, 5, 3)]


async def test_a_frame_past_the_cap_closes_with_1009_and_one_under_it_passes(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    extra = "limits: {max_live_frame_bytes: 65536}"
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), extra=extra))
    s, ws, first = await session(proxy.url)
    try:
        assert first == {"setupComplete": {}}
        await ws.send_bytes(b"a" * 60_000)
        echoed = await ws.receive()
        assert echoed.data == b"a" * 60_000
        await ws.send_bytes(b"b" * 70_000)
        closed = await ws.receive()
        assert closed.type == aiohttp.WSMsgType.CLOSE
        assert closed.data == 1009
    finally:
        await ws.close()
        await s.close()


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


async def test_many_sessions_of_large_frames_stay_within_the_memory_bound(
    proxy_process: Callable[..., ProxyProcess], upstream: Upstream
) -> None:
    """The attack that reached 2.85 GB: two clients, 16 sessions each, large frames both ways
    (the fake upstream echoes them), and frames far past the cap. The proxy's peak RSS stays
    bounded: frames are capped at 4 MiB and at most 64 MiB are in flight."""
    extra = "clients: [{name: a, key: key-a}, {name: b, key: key-b}]"
    proxy = proxy_process(base_yaml(upstream.url, keys=("only-key",), extra=extra))
    frame = b"x" * (4 * 1024 * 1024 - 1024)
    huge = b"y" * (16 * 1024 * 1024)  # under the old 32 MiB cap, far over the new one

    async def one(key: str, big: bool) -> int:
        s, ws, first = await session(proxy.url, key=key)
        try:
            assert first == {"setupComplete": {}}
            if big:
                # The proxy may close while the frame is still being sent: the close frame
                # (1009) arrived first, or the socket was cut mid-frame.
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    await ws.send_bytes(huge)
                msg = await ws.receive()
                return int(msg.data) if msg.type == aiohttp.WSMsgType.CLOSE else -1
            for _ in range(3):
                await ws.send_bytes(frame)
                assert len((await ws.receive()).data) == len(frame)
            return 1000
        finally:
            await ws.close()
            await s.close()

    codes = await asyncio.gather(
        *(one(key, i % 2 == 0) for key in ("key-a", "key-b") for i in range(16))
    )
    assert codes.count(1009) + codes.count(-1) == 16
    assert codes.count(1000) == 16
    peak = _peak_rss_mb(proxy.proc.pid)
    print(f"proxy peak RSS under 32 Live sessions of large frames: {peak:.0f} MB")
    assert peak < 400


async def test_a_key_the_upstream_reflects_in_a_close_reason_is_scrubbed(
    start_proxy: StartProxy, upstream: Upstream
) -> None:
    secret = key_shaped("L")
    proxy = await start_proxy(base_yaml(upstream.url, keys=(secret,), chains="default: [up:m1]"))
    upstream.script("m1", {"status": 403})  # the upstream closes, quoting the key
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(proxy.url + LIVE.format(v="v1beta"))
        await ws.send_str(json.dumps({"setup": {"model": "models/default"}}))
        closed = await ws.receive()
        await ws.close()
    assert closed.type == aiohttp.WSMsgType.CLOSE
    reason = str(closed.extra)
    assert "bad key [redacted]" in reason
    assert secret[:12] not in reason


# The SDK calls ephemeral tokens experimental: that warning, by name, and no other.
@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
async def test_an_ephemeral_token_opens_live_on_its_own_key(
    proxy_process: Callable[..., ProxyProcess],
    upstream: Upstream,
    tls_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auth_tokens.create`` through the proxy, then the SDK's Live on that token: the token
    stands for the client that made it, and the session goes to the key that made it."""
    tls = f"tls: {{cert_file: '{tls_files['cert']}', key_file: '{tls_files['key']}'}}"
    clients = "clients: [{name: alice, key: alice-key}]"
    yaml = base_yaml(upstream.url, extra=clients).replace(
        "listen: {host: 127.0.0.1, port: 0}", f"listen: {{host: 127.0.0.1, port: 0, {tls}}}"
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files["ca"]))
    proxy = proxy_process(yaml, scheme="https")
    options = types.HttpOptions(base_url=proxy.url, api_version="v1alpha")
    maker = genai.Client(api_key="alice-key", http_options=options)
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    token = await maker.aio.auth_tokens.create(
        config=types.CreateAuthTokenConfig(
            uses=1,
            live_connect_constraints=types.LiveConnectConstraints(model="default", config=config),
        )
    )
    assert token.name is not None
    assert token.name.startswith("auth_tokens/")
    made = [r for r in upstream.requests() if r["action"] == "auth_tokens.create"][-1]
    assert json.loads(made["body"])["bidiGenerateContentSetup"]["model"] == "models/m1"

    browser = genai.Client(api_key=token.name, http_options=options)
    assert await say_hi(browser, config) == ["Hello from m1."]
    upgrade = [r for r in upstream.requests() if r["action"] == "live.upgrade"][-1]
    assert upgrade["path"].endswith("BidiGenerateContentConstrained")
    assert upgrade["key"] == token.name  # the token went on; the key stayed in the proxy
    setup = [r for r in upstream.requests() if r["action"] == "live.setup"][-1]
    assert setup["key"] == token.name

    # A token the proxy never made opens nothing, and reaches nothing.
    before = len(upstream.requests())
    stranger = genai.Client(api_key="auth_tokens/made-up", http_options=options)
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with stranger.aio.live.connect(model="default", config=config):
            pass
    assert refused.value.response.status_code == 403
    assert len(upstream.requests()) == before
    await maker.aio.aclose()
    await browser.aio.aclose()
    await stranger.aio.aclose()
