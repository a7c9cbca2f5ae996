"""The fake upstream's Vertex AI, as Vertex answers: its paths, its credentials, its quota.

- ``/{v1,v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{m}:{action}`` with
  ``Authorization: Bearer`` (a token from ``POST /token``), and the express form
  ``/{v}/publishers/google/models/{m}:{action}`` with an express key (``x-goog-api-key``
  starting ``vx-``). No or a bad credential: 401 UNAUTHENTICATED.
- ``POST /token``: the OAuth2 JWT-bearer grant a service account makes. The JWT is checked as
  Google checks it: RS256 by the public key the test gave (``POST /_vertex``), ``aud``
  Google's token endpoint, ``iss`` the account, the cloud-platform scope, not expired. Tokens
  last an hour unless told; ``{"revoke": true}`` revokes every token issued so far (the next
  call is a 401).
- A 429 is Vertex's dynamic shared quota: no ``RetryInfo``, no details.
- ``countTokens`` takes the request itself (no ``generateContentRequest``); embeddings are
  ``:predict`` with ``instances``; a thought signature the Gemini API issued is corrupted here.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.common import error, record

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, no secret)


@dataclass
class Vertex:
    public_keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)  # by account
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch)
    expires_in: int = 3600
    grants: int = 0


VERTEX: web.AppKey[Vertex] = web.AppKey("vertex", Vertex)


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(request: web.Request, assertion: str) -> dict[str, Any] | None:
    """The JWT's claims if Google would accept it, else None."""
    try:
        head, body, signature = assertion.split(".")
        claims = json.loads(_b64(body))
        key = request.app[VERTEX].public_keys[claims["iss"]]
        key.verify(_b64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, KeyError, InvalidSignature):
        return None
    # google-auth names Google's token endpoint as the audience, whatever token_uri says.
    audiences = (f"{request.scheme}://{request.host}/token", GOOGLE_TOKEN_URI)
    fresh = claims.get("exp", 0) > time.time() - 5
    if claims.get("aud") not in audiences or SCOPE not in str(claims.get("scope")) or not fresh:
        return None
    return dict(claims)


async def token(request: web.Request) -> web.Response:
    form = await request.post()
    vertex = request.app[VERTEX]
    claims = _claims(request, str(form.get("assertion", "")))
    record(request, "", "vertex.token", b"", ok=claims is not None)
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not claims:
        return web.json_response(
            {"error": "invalid_grant", "error_description": "Invalid JWT."}, status=400
        )
    issued = f"ya29.fake-{secrets.token_urlsafe(16)}"
    vertex.tokens[issued] = time.time() + vertex.expires_in
    vertex.grants += 1
    return web.json_response(
        {"access_token": issued, "expires_in": vertex.expires_in, "token_type": "Bearer"}
    )


def _credential(request: web.Request) -> str | None:
    """The caller's token or express key if Vertex would take it, else None."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        bearer = auth[7:]
        expiry = request.app[VERTEX].tokens.get(bearer)
        return bearer if expiry is not None and expiry > time.time() else None
    key = request.headers.get("x-goog-api-key", "")
    express = "projects" not in request.path
    return key if express and key.startswith("vx-") else None


def _embeddings(data: dict[str, Any]) -> web.Response:
    instances = data.get("instances")
    if not isinstance(instances, list) or not all(
        isinstance(i, dict) and isinstance(i.get("content"), str) for i in instances
    ):
        return error(400, "Invalid instances.", "INVALID_ARGUMENT")
    size = (data.get("parameters") or {}).get("outputDimensionality", 3)
    return web.json_response(
        {
            "predictions": [
                {
                    "embeddings": {
                        "values": [float(len(i["content"]))] * size,
                        "statistics": {"token_count": 2, "truncated": False},
                    }
                }
                for i in instances
            ],
            "metadata": {"billableCharacterCount": 4},
        }
    )


async def model_call(request: web.Request) -> web.StreamResponse:
    from tests.fakes.upstream import serve_model  # the Gemini API's answers, Vertex's way

    model, _, action = request.match_info["target"].rpartition(":")
    body = await request.read()
    credential = _credential(request)
    record(
        request,
        model,
        action,
        body,
        vertex=True,
        project=request.match_info.get("project", ""),
        location=request.match_info.get("location", ""),
        credential=credential or "",
    )
    if credential is None:
        return error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            "UNAUTHENTICATED",
        )
    data = json.loads(body or b"{}")
    if action == "predict":
        return _embeddings(data)
    if action == "countTokens" and "generateContentRequest" in data:
        return error(
            400,
            'Invalid JSON payload received. Unknown name "generateContentRequest".',
            "INVALID_ARGUMENT",
        )
    if action in ("embedContent", "batchEmbedContents"):
        return error(404, f"Method {action} is not on Vertex AI.", "NOT_FOUND")
    return await serve_model(request, model, action, body, endpoint="vertex")


async def control(request: web.Request) -> web.Response:
    """``POST /_vertex``: ``{"account", "public_key"}`` trusts a service account's key;
    ``{"revoke": true}`` revokes every token; ``{"expires_in": N}`` sets new tokens' life."""
    vertex = request.app[VERTEX]
    data = await request.json()
    if "public_key" in data:
        key = serialization.load_pem_public_key(data["public_key"].encode())
        assert isinstance(key, rsa.RSAPublicKey)
        vertex.public_keys[data["account"]] = key
    if data.get("revoke"):
        vertex.tokens.clear()
    if "expires_in" in data:
        vertex.expires_in = int(data["expires_in"])
    return web.json_response({"grants": vertex.grants, "tokens": len(vertex.tokens)})


def add_routes(app: web.Application) -> None:
    app[VERTEX] = Vertex()
    version = "{version:v1|v1beta1}"
    base = "/{version}/projects/{project}/locations/{location}/publishers/google/models"
    app.router.add_post(base.replace("{version}", version) + "/{target}", model_call)
    app.router.add_post(f"/{version}/publishers/google/models/{{target}}", model_call)
    app.router.add_post("/token", token)
    app.router.add_post("/_vertex", control)


def reset(app: web.Application) -> None:
    vertex = app[VERTEX]
    vertex.tokens.clear()
    vertex.expires_in = 3600
    vertex.grants = 0
