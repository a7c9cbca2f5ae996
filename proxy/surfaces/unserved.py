"""What the proxy does not serve: a 404 that says so, and names the base URL a client needs
when the path shows which client it is and how its base URL is wrong.

A client should learn that the proxy lacks the endpoint, or that its base URL is wrong, not
meet a bare 404. Nothing here is ever forwarded.
"""

from __future__ import annotations

from aiohttp import web

from proxy.errors import NotFound
from proxy.middleware import Handler
from proxy.middleware.errors import OPENAI_PREFIX
from proxy.state import runtime_of
from proxy.surfaces import VERSIONS
from proxy.surfaces.origin import public_base

OPENAI_ENDPOINTS = ("chat/completions", "completions", "embeddings")


def misdirected(path: str, base: str) -> str | None:
    """Why ``path`` is no endpoint of the proxy, and the base URL its client needs; ``None``
    when the path does not show a known mistake. ``base`` is the proxy's ``scheme://host``."""
    trail = path.strip("/")
    segments = trail.split("/")
    if trail.endswith("responses") or "/responses/" in path:
        return (
            "L104 Proxy does not serve the OpenAI Responses API. Use chat completions: base URL "
            f"{base}{OPENAI_PREFIX} (in openai-agents, OpenAIChatCompletionsModel, or "
            "set_default_openai_api('chat_completions'))."
        )
    served = next((end for end in OPENAI_ENDPOINTS if trail.endswith(end)), None)
    if served is not None and not path.startswith(OPENAI_PREFIX):
        return (
            f"An OpenAI client's base URL is {base}{OPENAI_PREFIX} (it then calls "
            f"{OPENAI_PREFIX}{served})."
        )
    if len(segments) > 1 and segments[0] in VERSIONS and segments[1] in VERSIONS:
        return (
            f"The path holds two API versions (/{segments[0]}/{segments[1]}/): the client's "
            f"base URL ends in a version. Give the google-genai SDK the base URL {base} with no "
            "version; it adds the version itself."
        )
    if segments[0] in ("models", "files", "cachedContents", "tunedModels", "batches"):
        return (
            f"The path has no API version: the google-genai SDK's base URL is {base} (it adds "
            f"/v1beta); a raw HTTP call goes to {base}/v1beta/{trail[:100]}."
        )
    if segments[0] == "openai":
        return f"An OpenAI client's base URL is {base}{OPENAI_PREFIX} (the path lacks /v1beta)."
    return None


def not_served(request: web.Request, why: str = "it is no endpoint the proxy knows") -> NotFound:
    """The 404 for a path no surface serves: the hint of :func:`misdirected` if there is one,
    else ``why``."""
    hint = misdirected(request.path, public_base(request, runtime_of(request).config.listen))
    where = f"{request.method} {request.path[:200]}"
    return NotFound(f"L104 Proxy does not serve {where}" + (f". {hint}" if hint else f": {why}."))


def _refuse(what: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise NotFound(f"L104 Proxy does not serve {what} ({request.path[:200]}).")

    return handler


async def anything_else(request: web.Request) -> web.StreamResponse:
    raise not_served(request)


def add_routes(app: web.Application) -> None:
    # Paths under a version are the registry's (:mod:`proxy.surfaces.resources_api`).
    other_live = _refuse("this Live API endpoint (only BidiGenerateContent)")
    app.router.add_route("*", "/ws/{tail:.*}", other_live)


def add_last_route(app: web.Application) -> None:
    """The catch-all of the whole server: registered after every other route."""
    app.router.add_route("*", "/{tail:.*}", anything_else)
