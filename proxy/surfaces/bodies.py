"""What the proxy reads of a Gemini request: a JSON check, the body's model fields, the query.

Bodies pass through as bytes. They are parsed only to refuse what is not a JSON object (it
never goes upstream) and, for the actions whose body names the model, to make one body per
member: Gemini requires ``embedContent.model``, ``batchEmbedContents.requests[].model``,
``countTokens.generateContentRequest.model`` and a batch's ``model`` (and its inline requests')
to match the model in the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from proxy.errors import InvalidArgument
from proxy.wire import parse_body

# The model actions that make a batch: the body may name the model again.
BATCH_ACTIONS = frozenset({"batchGenerateContent", "asyncBatchEmbedContent"})


def check_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; ``InvalidArgument`` (400) for anything else, an empty body
    included (Gemini's actions all take one)."""
    if not body.strip():
        raise InvalidArgument("Invalid JSON payload received. The request has no body.")
    return parse_body(body)


def _refs(action: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects whose ``model`` key names the model, for ``action``."""
    if action == "embedContent":
        return [data] if "model" in data else []
    if action == "batchEmbedContents":
        requests = data.get("requests")
        if not isinstance(requests, list):
            return []
        return [r for r in requests if isinstance(r, dict) and "model" in r]
    if action == "countTokens":
        inner = data.get("generateContentRequest")
        return [inner] if isinstance(inner, dict) and "model" in inner else []
    if action in BATCH_ACTIONS:
        return _batch_refs(data)
    return []


def _batch_refs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A batch's ``model`` and its inline requests' (where a client wrote them)."""
    batch = data.get("batch")
    if not isinstance(batch, dict):
        return []
    refs = [batch] if "model" in batch else []
    config = batch.get("inputConfig", batch.get("input_config"))
    requests = config.get("requests") if isinstance(config, dict) else None
    inner = requests.get("requests") if isinstance(requests, dict) else None
    for item in inner if isinstance(inner, list) else []:
        request = item.get("request") if isinstance(item, dict) else None
        if isinstance(request, dict) and "model" in request:
            refs.append(request)
    return refs


def model_setter(action: str, data: dict[str, Any]) -> Callable[[str], bool] | None:
    """A function pointing the body's model fields at a member model, or ``None`` if the body
    names none."""
    refs = _refs(action, data)
    if not refs:
        return None

    def set_model(model: str) -> bool:
        for ref in refs:
            ref["model"] = f"models/{model}"
        return True

    return set_model


def without_key(raw_query: str) -> str:
    """The raw query string without its ``key`` parameter (however the name is encoded).

    Everything else is passed on as the client wrote it (``$alt=json;enum-encoding=int``).
    """
    # SECURITY: the name is decoded before the comparison, so ``%6Bey=`` cannot smuggle
    # the client's key upstream.
    return "&".join(
        part
        for part in raw_query.split("&")
        if part and unquote_plus(part.partition("=")[0]) != "key"
    )
