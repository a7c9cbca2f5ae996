"""The live status page: ``GET /`` (static HTML, CSS, JS), its JSON snapshot and its SSE feed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp_sse import sse_response

from proxy.state import LIVE, Runtime, runtime_of
from proxy.surfaces.ops import counts, model_states

STATIC = Path(__file__).parent.parent / "static"


def snapshot(runtime: Runtime, counts: dict[str, Any]) -> dict[str, Any]:
    """The page's state: the chains' members (the fleet's cooldowns with store.shared) and
    ``counts`` (see :func:`proxy.surfaces.ops.counts`)."""
    states = model_states(runtime)
    return {
        "chains": [
            {
                "name": chain.name,
                "members": [
                    {"label": m.label, "model": m.model, **states[m.model]} for m in chain.members
                ],
            }
            for chain in runtime.config.chains.values()
        ],
        "counts": counts,
        "auth": bool(runtime.config.clients),
    }


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def status(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    return web.Response(
        body=orjson.dumps(snapshot(runtime, await counts(runtime))),
        content_type="application/json",
    )


async def events(request: web.Request) -> web.StreamResponse:
    """State changes as the watchdog sees them, and the counts once a second."""
    runtime = runtime_of(request)
    queue = runtime.bus.subscribe()
    try:
        async with sse_response(request, ping_interval=15) as resp:
            await resp.send(json.dumps(snapshot(runtime, await counts(runtime))), event="snapshot")
            while resp.is_connected() and not request.app[LIVE].draining:
                try:
                    name, data = await asyncio.wait_for(queue.get(), 1.0)
                    await resp.send(json.dumps(data), event=name)
                except TimeoutError:
                    await resp.send(json.dumps(await counts(runtime)), event="counts")
        return resp
    finally:
        runtime.bus.unsubscribe(queue)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/api/v6/status", status)
    app.router.add_get("/api/v6/events", events)
    app.router.add_static("/static/", STATIC, append_version=False)
