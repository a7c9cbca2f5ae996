"""Each middleware layer's own CPU a request, measured in one process with no network.

The layer budget of ``make bench`` reads a server's CPU under load, where a shared machine moves
a row by tens of µs. Here every layer of the proxy's real app (built from a config, started as
``serve`` starts it) runs alone around a handler that answers at once, for thousands of mocked
requests, and the CPU of the handler alone is taken off: the figures repeat within a µs, so
they say which layer is worth a look.

``python -m bench.inprocess --config FILE [--requests N]``
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.app import create_app
from proxy.config import load_config
from proxy.exchange import EXCHANGE, Exchange
from proxy.generation import Current
from proxy.middleware import Handler, Middleware
from proxy.state import LIVE, REQUEST_RUNTIME, Runtime

BODY = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}'


async def _answer(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"{}")


async def _requests(app: web.Application, runtime: Runtime, key: str, n: int) -> list[web.Request]:
    headers = {
        "x-goog-api-key": key,
        "Content-Type": "application/json",
        "Content-Length": str(len(BODY)),
    }
    path = "/v1beta/models/default:generateContent"
    # The mocked protocol, transport and writer of a first request serve them all: a fresh set
    # of mocks costs a millisecond a request to make.
    first = make_mocked_request("POST", path, headers=headers, app=app)
    out: list[web.Request] = []
    for _ in range(n):
        request = make_mocked_request(
            "POST",
            path,
            headers=headers,
            app=app,
            protocol=first.protocol,
            transport=first.transport,
            writer=first.writer,
        )
        # The route the router finds, as a served request has (not the mock's stand-in,
        # whose attributes cost more than any layer).
        request._match_info = await app.router.resolve(request)
        request[EXCHANGE] = Exchange()
        request[REQUEST_RUNTIME] = runtime
        out.append(request)
    return out


async def _cpu_us(
    run: Callable[[web.Request], object],
    fresh: Callable[[], Awaitable[list[web.Request]]],
    rounds: int = 3,
) -> float:
    """The least CPU µs a request over ``rounds`` passes (each over fresh requests)."""
    best = float("inf")
    for _ in range(rounds):
        requests = await fresh()
        started = time.process_time()
        for request in requests:
            await run(request)  # type: ignore[misc]
        best = min(best, (time.process_time() - started) / len(requests) * 1e6)
        await asyncio.sleep(0.3)  # the ledger's writer drains what the pass queued
    return best


async def measure(config_path: str, n: int) -> list[tuple[str, float]]:
    """(layer, µs of CPU it adds a request), outermost first."""
    config = load_config(config_path)
    key = config.clients[0].key if config.clients else ""
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()  # the runtime, the store's writer and the tracer start as in serve
    try:
        generation = app[LIVE].generation
        assert generation is not None
        runtime = generation.runtime

        def fresh() -> Awaitable[list[web.Request]]:
            return _requests(app, runtime, key, n)

        alone = await _cpu_us(_answer, fresh)
        layers: list[Middleware] = [
            m for m in app.middlewares if isinstance(m, Middleware) and not isinstance(m, Current)
        ]
        layers += list(generation.layers.layers)
        out = []
        for layer in layers:

            def through(request: web.Request, layer: Middleware = layer) -> object:
                handler: Handler = _answer
                return layer(request, handler)

            out.append((type(layer).__name__, await _cpu_us(through, fresh) - alone))

        def everything(request: web.Request) -> object:
            return generation.layers(request, _answer)

        out.append(("all config layers together", await _cpu_us(everything, fresh) - alone))
        return out
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rows = uvloop.run(measure(args.config, args.requests))
    print("| layer (alone, in process) | µs CPU / request |\n|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")


if __name__ == "__main__":
    main()
