"""Vertex AI's paths as a surface, so that code written for ``genai.Client(vertexai=True, …)``
can point at the proxy: ``/{v1,v1beta1}/projects/{p}/locations/{l}/publishers/google/models/
{m}:{action}``, and the express form ``/{v}/publishers/google/models/{m}:{action}``.

``{m}`` is a chain or a member, as on the Gemini surface, and any member answers (the Gemini
API's or Vertex's). ``{p}`` and ``{l}`` are not checked (the chain decides where a request
goes); they are noted on the request's span. ``generateContent``, ``streamGenerateContent`` and
``countTokens`` are the same on both APIs; ``:predict`` (Vertex's text embeddings) goes through
the chain as ``batchEmbedContents`` and comes back as Vertex's predictions. A client presents
its client key as ``Authorization: Bearer`` (static credentials) or, express, as
``x-goog-api-key``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from opentelemetry import trace

from proxy.errors import InvalidArgument, NotFound
from proxy.surfaces.bodies import check_body
from proxy.surfaces.gemini_api import serve, split_target

VERSIONS = ("v1", "v1beta1")
SERVED = frozenset({"generateContent", "streamGenerateContent", "countTokens", "predict"})
# The members are asked in the Gemini API's terms, whichever API the client spoke.
GEMINI_VERSION = "v1beta"
MODELS = "publishers/google/models/{target}"


async def vertex_action(request: web.Request) -> web.StreamResponse:
    model, action = split_target(request.match_info["target"])
    if action not in SERVED:
        raise NotFound(f"L104 Proxy does not serve {action} on the Vertex AI surface.")
    span = trace.get_current_span()
    span.set_attribute("l104.vertex.project", request.match_info.get("project", ""))
    span.set_attribute("l104.vertex.location", request.match_info.get("location", ""))
    body = await request.read()
    if action == "predict":
        requests = _embed_requests(model, check_body(body))
        return await serve(
            request, model, "batchEmbedContents", requests, GEMINI_VERSION, _predictions
        )
    return await serve(request, model, action, body, GEMINI_VERSION)


def _embed_requests(model: str, data: dict[str, Any]) -> bytes:
    """Vertex's ``{"instances": [{"content", "task_type", "title"}], "parameters"}`` as the
    Gemini API's ``batchEmbedContents``."""
    instances = data.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidArgument("An embedding request needs 'instances'.")
    parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    size = parameters.get("outputDimensionality") if parameters else None
    out = []
    for instance in instances:
        if not isinstance(instance, dict) or not isinstance(instance.get("content"), str):
            raise InvalidArgument("Each instance must have a text 'content'.")
        request: dict[str, Any] = {
            "model": f"models/{model}",
            "content": {"parts": [{"text": instance["content"]}]},
        }
        if isinstance(instance.get("task_type"), str):
            request["taskType"] = instance["task_type"]
        if isinstance(instance.get("title"), str):
            request["title"] = instance["title"]
        if isinstance(size, int):
            request["outputDimensionality"] = size
        out.append(request)
    return orjson.dumps({"requests": out})


def _predictions(body: bytes) -> bytes:
    """The Gemini API's embeddings as Vertex's predictions."""
    embeddings = orjson.loads(body).get("embeddings") or []
    return orjson.dumps(
        {
            "predictions": [
                {
                    "embeddings": {
                        "values": e.get("values", []),
                        "statistics": {"truncated": False, "token_count": 0},
                    }
                }
                for e in embeddings
            ],
            "metadata": {"billableCharacterCount": 0},
        }
    )


async def unserved(request: web.Request) -> web.StreamResponse:
    raise NotFound(
        f"L104 Proxy does not serve {request.method} {request.path[:200]}: on the Vertex AI "
        "surface it serves generateContent, streamGenerateContent, countTokens and predict."
    )


def add_routes(app: web.Application) -> None:
    for version in VERSIONS:
        place = f"/{version}/projects/{{project}}/locations/{{location}}/"
        app.router.add_post(place + MODELS, vertex_action)
        app.router.add_post(f"/{version}/{MODELS}", vertex_action)
    # v1 is the Gemini API's too: its other paths are the resources surface's.
    app.router.add_route("*", "/v1beta1/{tail:.*}", unserved)
