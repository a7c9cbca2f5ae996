"""``GET /{version}/models`` and ``GET /{version}/models/{model}``.

The list shows the chains (and the models of local responders) first, then the upstream's own
models, page by page. A page token is ours and opaque: ``c:<offset>`` while listing the chains,
``u:<upstream token>`` once on the upstream's pages.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from aiohttp import web

from proxy.config import Chain
from proxy.errors import (
    AttemptFailed,
    InvalidArgument,
    NotFound,
    UpstreamBadAnswer,
    UpstreamUnavailable,
)
from proxy.responders import Reply, Responder
from proxy.state import Runtime, runtime_of
from proxy.surfaces.gemini_api import api_version, check_model
from proxy.surfaces.relay import whole

METHODS = [
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
]


def _entry(name: str, description: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "l104",
        "displayName": name,
        "description": description,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": METHODS,
    }


def local_entries(runtime: Runtime) -> list[dict[str, Any]]:
    """The chains, then each model of a local responder, once."""
    out = [
        _entry(c.name, "L104 Proxy chain: " + " -> ".join(m.label for m in c.members) + _also(c))
        for c in runtime.config.chains.values()
    ]
    seen = {c.name for c in runtime.config.chains.values()}
    for chain in runtime.config.chains.values():
        for alias in chain.aliases:  # an exact alias is a model a client may ask for
            if alias not in seen and not any(ch in alias for ch in "*?["):
                seen.add(alias)
                out.append(_entry(alias, f"L104 Proxy: an alias of the chain '{chain.name}'."))
    for chain in runtime.config.chains.values():
        for m in chain.members:
            if m.model not in seen and not runtime.responders[m.responder].remote:
                seen.add(m.model)
                out.append(_entry(m.model, f"Served by the local responder '{m.responder}'."))
    return out


def _also(chain: Chain) -> str:
    return f" (also answers for: {', '.join(chain.aliases)})" if chain.aliases else ""


def upstream_of(runtime: Runtime) -> Responder | None:
    for responder in runtime.responders.values():
        if responder.studio and responder.key_count:
            return responder
    return None


def _token(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _read_token(token: str) -> tuple[str, str]:
    try:
        kind, _, value = (
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
        )
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("Invalid page token.") from None
    if kind not in ("c", "u"):
        raise InvalidArgument("Invalid page token.")
    return kind, value


async def fetch_upstream(
    responder: Responder, version: str, path: str, query: dict[str, str]
) -> Reply:
    """GET from the upstream, trying each key until one is not out of quota."""
    reply = Reply(503, b"")
    for key in range(responder.key_count):
        try:
            reply = await responder.fetch(version, path, query, key)
        except AttemptFailed as failed:
            raise UpstreamUnavailable(f"The upstream did not answer: {failed.kind}.") from None
        if reply.status != 429:
            break
    return reply


async def list_models(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    version = api_version(request)
    size_text = request.query.get("pageSize", "50")
    if not size_text.isdigit():
        raise InvalidArgument(f"Invalid value for pageSize: '{size_text[:20]}'.")
    size = min(max(int(size_text), 1), 1000)
    kind, value = (
        _read_token(request.query["pageToken"]) if request.query.get("pageToken") else ("c", "0")
    )
    upstream = upstream_of(runtime)
    if kind == "u":
        if upstream is None:
            raise InvalidArgument("Invalid page token.")
        reply = await fetch_upstream(upstream, version, "models", _upstream_query(size, value))
        if reply.status != 200:
            return whole(reply, {})
        return _json(_upstream_page(reply))
    entries = local_entries(runtime)
    start = int(value) if value.isdigit() else 0
    page: dict[str, Any] = {"models": entries[start : start + size]}
    room = size - len(page["models"])
    if start + size < len(entries):
        page["nextPageToken"] = _token("c", str(start + size))
    elif upstream is not None and room == 0:
        page["nextPageToken"] = _token("u", "")
    elif upstream is not None:
        # The page's room goes to the upstream's first models: a client that reads one page
        # sees what it can call beside the chains, not the chains alone.
        try:
            reply = await fetch_upstream(upstream, version, "models", _upstream_query(room, ""))
            more = _upstream_page(reply) if reply.status == 200 else None
        except (UpstreamUnavailable, UpstreamBadAnswer):
            more = None
        if more is not None:
            page["models"] += more.get("models", [])
            if "nextPageToken" in more:
                page["nextPageToken"] = more["nextPageToken"]
        else:
            # The chains are still worth answering; the next page asks the upstream again.
            page["nextPageToken"] = _token("u", "")
    return _json(page)


def _upstream_query(size: int, token: str) -> dict[str, str]:
    return {"pageSize": str(size), **({"pageToken": token} if token else {})}


def _upstream_page(reply: Reply) -> dict[str, Any]:
    try:
        data = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("models", []), list):
        raise UpstreamBadAnswer("The upstream's list of models is not one.")
    if data.get("nextPageToken"):
        data["nextPageToken"] = _token("u", data["nextPageToken"])
    else:
        data.pop("nextPageToken", None)
    return data


def _json(data: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


async def get_model(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    name = request.match_info["target"]
    if ":" in name:
        raise NotFound(f"Method not found: models/{name}.")
    check_model(name)
    for entry in local_entries(runtime):
        if entry["name"] == f"models/{name}":
            return web.Response(body=orjson.dumps(entry), content_type="application/json")
    member = runtime.resolver.resolve(name).members[0]
    responder = runtime.responders[member.responder]
    if not responder.remote or not responder.key_count:
        entry = _entry(name, f"Served by the local responder '{responder.name}'.")
        return web.Response(body=orjson.dumps(entry), content_type="application/json")
    reply = await fetch_upstream(responder, api_version(request), f"models/{name}", {})
    return whole(reply, {})
