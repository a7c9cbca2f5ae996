"""A fast fake Gemini upstream for the benchmarks: canned bytes, optional slow streams.

``streamGenerateContent`` sends ``BENCH_CHUNKS`` chunks ``BENCH_CHUNK_MS`` apart. A model whose
name starts with ``cold`` answers 429 with an hour-long ``RetryInfo``, so the proxy cools it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

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


async def handle(request: web.Request) -> web.StreamResponse:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/{version}/models/{target}", handle)
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        app, host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop, backlog=4096
    )


if __name__ == "__main__":
    main()
