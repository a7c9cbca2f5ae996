"""``vertex``: Gemini on Vertex AI, a second pool of quota behind the same chains.

The calls are the Gemini API's, sent to Vertex's paths
(``/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:{action}``, or the express form
``/v1/publishers/google/models/{m}:{action}``) with a service account's or ADC's bearer token
(:mod:`proxy.responders.vertex_auth`), or an express key. ``generateContent`` and
``streamGenerateContent`` pass byte for byte; ``countTokens`` loses the Gemini API's
``generateContentRequest`` wrapper; embeddings become Vertex's ``:predict`` and come back in the
Gemini API's shape. Files, caches, Live and interactions are the Gemini API's own: a Vertex
member is never asked for them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import orjson

from proxy.errors import AttemptFailed
from proxy.responders.base import Call, Reply
from proxy.responders.gemini import GeminiResponder
from proxy.responders.vertex_auth import TokenSource
from proxy.responders.vertex_spec import VertexSpec

EMBED_ACTIONS = frozenset({"embedContent", "batchEmbedContents"})
# Fields of a Gemini API body that Vertex refuses (google-genai's ``_*_to_vertex`` converters
# raise on them): such a body is not Vertex's to answer. A cheap look at the bytes; a field
# spelt with escapes only costs a Vertex 400, which rotates like any other.
_GEMINI_ONLY = re.compile(
    rb'"(?:toolCall|tool_call|toolResponse|tool_response|partMetadata|part_metadata'
    rb"|includeServerSideToolInvocations|include_server_side_tool_invocations"
    rb"|willContinue|will_continue|enableEnhancedCivicAnswers|enable_enhanced_civic_answers"
    rb'|fileSearch|file_search)"\s*:'
)
ACTIONS = frozenset({"generateContent", "streamGenerateContent", "countTokens", *EMBED_ACTIONS})


class VertexResponder(GeminiResponder):
    studio = False
    actions: frozenset[str] | None = ACTIONS

    def __init__(
        self,
        name: str,
        spec: VertexSpec,
        session: aiohttp.ClientSession,
        max_response_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        super().__init__(name, spec, session, max_response_bytes)
        self.vertex = spec
        self.tokens: TokenSource | None = (
            None if spec.express else TokenSource(spec.service_account, ca_file=spec.ca_file)
        )
        self.key_count = len(spec.api_keys) or 1
        place = "" if spec.express else f"projects/{spec.project}/locations/{spec.location}/"
        self._models = f"{spec.base_url}/{spec.api_version}/{place}publishers/google/models/"

    def _url(self, call: Call) -> str:
        return f"{self._models}{call.model}:{call.action}"

    async def _request(
        self,
        method: str,
        url: str,
        key_index: int | None,
        *,
        body: bytes | AsyncIterator[bytes] | None,
        headers: dict[str, str],
        params: Mapping[str, str] | None,
        limits: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        if self.tokens is not None:
            headers["authorization"] = f"Bearer {await self.tokens.token()}"
            key_index = None  # the token is the credential
        return await super()._request(
            method, url, key_index, body=body, headers=headers, params=params, limits=limits
        )

    async def send(self, call: Call, key_index: int) -> Reply:
        if call.action not in ACTIONS:
            raise AttemptFailed("unsupported", f"Vertex AI does not serve {call.action}")
        found = _GEMINI_ONLY.search(call.body)
        if found is not None:
            field = found.group(0).split(b'"')[1].decode()
            raise AttemptFailed("unsupported", f"'{field}' is the Gemini API's only")
        sent = _for_vertex(call)
        reply = await super().send(sent, key_index)
        if reply.status == 401 and self.tokens is not None:
            # A token revoked or expired early: refresh it once, then the answer stands.
            self.tokens.drop()
            reply = await super().send(sent, key_index)
        if reply.status == 200 and call.action in EMBED_ACTIONS:
            reply.body = _embeddings_back(call.action, reply.body)
        return reply

    async def fetch(
        self, version: str, path: str, query: Mapping[str, str], key_index: int
    ) -> Reply:
        """Vertex lists no Gemini API models: the models surface asks the Gemini API."""
        return Reply(404, b'{"error": {"code": 404, "message": "Not on Vertex AI."}}')


def _for_vertex(call: Call) -> Call:
    """The call as Vertex takes it: the same, but for counts and embeddings."""
    if call.action == "countTokens":
        data = orjson.loads(call.body)
        inner = data.get("generateContentRequest") if isinstance(data, dict) else None
        if isinstance(inner, dict):
            inner.pop("model", None)
            return replace(call, body=orjson.dumps(inner))
        return call
    if call.action in EMBED_ACTIONS:
        return replace(call, action="predict", body=_embeddings_to(call.action, call.body))
    return call


def _text_of(content: Any) -> str:
    """The text of an embedding request's content; ``AttemptFailed`` for anything Vertex's
    text embeddings cannot take faithfully (an image, a file)."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise AttemptFailed("unsupported", "an embedding of no text")
    texts = []
    for part in parts:
        if not isinstance(part, dict) or set(part) != {"text"}:
            raise AttemptFailed("unsupported", "Vertex embeds text only")
        texts.append(str(part["text"]))
    return "\n".join(texts)


def _instance(request: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    instance: dict[str, Any] = {"content": _text_of(request.get("content"))}
    task = request.get("taskType", request.get("task_type"))
    if isinstance(task, str):
        instance["task_type"] = task
    if isinstance(request.get("title"), str):
        instance["title"] = request["title"]
    size = request.get("outputDimensionality", request.get("output_dimensionality"))
    return instance, size if isinstance(size, int) else None


def _embeddings_to(action: str, body: bytes) -> bytes:
    data = orjson.loads(body)
    requests = data.get("requests") if action == "batchEmbedContents" else [data]
    if not isinstance(requests, list) or not requests:
        raise AttemptFailed("unsupported", "an embedding request with no content")
    made = [_instance(r if isinstance(r, dict) else {}) for r in requests]
    sizes = {size for _, size in made}
    if len(sizes) > 1:
        raise AttemptFailed("unsupported", "embeddings of different sizes in one request")
    out: dict[str, Any] = {"instances": [instance for instance, _ in made]}
    size = sizes.pop()
    if size is not None:
        out["parameters"] = {"outputDimensionality": size}
    return orjson.dumps(out)


def _embeddings_back(action: str, body: bytes) -> bytes:
    """Vertex's predictions as the Gemini API's embeddings."""
    predictions = orjson.loads(body).get("predictions") or []
    vectors = [{"values": (p.get("embeddings") or {}).get("values", [])} for p in predictions]
    if action == "embedContent":
        return orjson.dumps({"embedding": vectors[0] if vectors else {"values": []}})
    return orjson.dumps({"embeddings": vectors})


def build(
    name: str, spec: VertexSpec, session: aiohttp.ClientSession, max_response_bytes: int
) -> VertexResponder:
    return VertexResponder(name, spec, session, max_response_bytes)
