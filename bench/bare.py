"""aiohttp's own floor: a bare pass-through with none of the proxy's layers.

The same aiohttp, uvloop and upstream session (connector settings and all) as the proxy, one
handler that sends the body on and relays the answer (streams chunk by chunk). ``proxy / bare``
is the headline ratio of ``make bench``: what the proxy's layers cost above what aiohttp costs.
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

from proxy.lifecycle import upstream_session


async def forward(request: web.Request) -> web.StreamResponse:
    session = request.app[UPSTREAM]
    context = request.app.get(TLS)
    target = request.match_info["target"].replace("default", "m1", 1)
    url = f"{request.app[BASE]}/{request.match_info['version']}/models/{target}"
    body = await request.read()
    async with session.post(
        url,
        data=body,
        params=request.query,
        headers={"Content-Type": "application/json", "x-goog-api-key": "bench-upstream-key"},
        ssl=context if context is not None else True,
    ) as upstream:
        if ":stream" not in target:
            return web.Response(
                body=await upstream.read(),
                status=upstream.status,
                content_type=upstream.content_type,
            )
        response = web.StreamResponse(status=upstream.status)
        response.content_type = upstream.content_type
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


UPSTREAM = web.AppKey("upstream", aiohttp.ClientSession)
BASE = web.AppKey("base", str)
TLS = web.AppKey("tls", ssl.SSLContext)


async def app(base: str, ca_file: str | None) -> web.Application:
    application = web.Application()
    application[BASE] = base
    if ca_file:
        application[TLS] = ssl.create_default_context(cafile=ca_file)

    async def ctx(a: web.Application) -> AsyncIterator[None]:
        session = upstream_session()
        a[UPSTREAM] = session
        yield
        await session.close()

    application.cleanup_ctx.append(ctx)
    application.router.add_post("/{version}/models/{target}", forward)
    return application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, http:// or https://")
    parser.add_argument("--ca-file", help="the CA that signs a TLS upstream's certificate")
    args = parser.parse_args()
    web.run_app(
        app(args.upstream, args.ca_file),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
