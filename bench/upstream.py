"""A fast fake Gemini upstream for the benchmarks: canned bytes, optional slow streams.

``streamGenerateContent`` sends ``BENCH_CHUNKS`` chunks ``BENCH_CHUNK_MS`` apart. A model whose
name starts with ``cold`` answers 429 with an hour-long ``RetryInfo``, so the proxy cools it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl

from aiohttp import web

ANSWER = json.dumps(
    {
        "candidates": [
            {
                "content": {"parts": [{"text": "Hello from the bench upstream."}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 6, "totalTokenCount": 14},
        "modelVersion": "bench",
        "responseId": "bench-1",
    }
).encode()
CHUNK = b"data: " + ANSWER + b"\r\n\r\n"
QUOTA = json.dumps(
    {
        "error": {
            "code": 429,
            "message": "Quota exceeded.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3600s"}
            ],
        }
    }
).encode()
CHUNKS = int(os.environ.get("BENCH_CHUNKS", "5"))
CHUNK_S = float(os.environ.get("BENCH_CHUNK_MS", "5")) / 1000


# The connections this upstream has seen, by the client's port (a new connection has a new
# one): over TLS each is a full handshake.
CONNECTIONS = web.AppKey("connections", set)


async def handle(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        request.app[CONNECTIONS].add(transport.get_extra_info("peername"))
    target = request.match_info["target"]
    await request.read()
    if target.startswith("cold"):
        return web.Response(status=429, body=QUOTA, content_type="application/json")
    if target.endswith(":streamGenerateContent"):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(CHUNKS):
            if i:
                await asyncio.sleep(CHUNK_S)
            await resp.write(CHUNK)
        await resp.write_eof()
        return resp
    return web.Response(body=ANSWER, content_type="application/json")


async def connections(request: web.Request) -> web.Response:
    return web.json_response({"connections": len(request.app[CONNECTIONS])})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="serve HTTPS: certificate chain and key, one PEM file")
    args = parser.parse_args()
    app = web.Application()
    app[CONNECTIONS] = set()
    app.router.add_post("/{version}/models/{target}", handle)
    app.router.add_get("/_connections", connections)
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert)
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
        loop=loop,
        backlog=4096,
        ssl_context=context,
    )


if __name__ == "__main__":
    main()
