"""The proxy's own surface: ``/health``, ``/ready``, ``/metrics`` and the front page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.middleware.admin import AdminGate
from proxy.responders import Responder
from proxy.responders.vertex import VertexResponder
from proxy.state import LIVE, Live, Runtime, runtime_of


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def key_state(runtime: Runtime, responder: Responder, model: str, key: int) -> dict[str, Any]:
    """One key's state for one model: ready, cooling (with the time left), paced, or disabled,
    with its project's quota (declared or learned: what is used and left of it). Keys are named
    by their position and project, never by their value; a project's cooldown, pace and quota
    are every one of its keys'."""
    name: dict[str, Any] = {"key": key}
    if len(responder.project_names) != responder.key_count:
        name["project"] = responder.project_names[responder.projects[key]]
    off = runtime.cooldowns.disabled_for(responder.name, key)
    if off > 0:
        return {**name, "state": "disabled", "for_s": round(off, 1)}
    ref = (responder.name, model, responder.projects[key])
    budget = runtime.rotator.budget
    quota = budget.describe(ref)
    if quota is not None:
        name["quota"] = quota
    left = runtime.cooldowns.peek(ref)
    full, why = budget.wait_for(ref, 1)
    if "per-day" in why:  # the day's quota is used up: it rests until the daily reset
        left = max(left, full)
    if left > 0:
        return {**name, "state": "cooling", "cooldown_s": round(left, 1)}
    paced = max(runtime.pacer.wait_for(ref), full)
    if paced > 0:
        return {**name, "state": "paced", "wait_s": round(paced, 1)}
    return {**name, "state": "ready"}


def _wait_of(key: dict[str, Any]) -> float:
    return float(key.get("cooldown_s") or key.get("for_s") or key.get("wait_s") or 0.0)


def model_states(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Each member model's state, keyed by the upstream model name, with each key's state.

    A model is ``cooling`` while none of its keys can take a request, ``partial`` while some
    cannot, ``retired`` once it answered 404, else ``ready``."""
    out: dict[str, dict[str, Any]] = {}
    for chain in runtime.config.chains.values():
        for m in chain.members:
            if m.model in out:
                continue
            responder = runtime.responders[m.responder]
            keys = [key_state(runtime, responder, m.model, k) for k in range(responder.key_count)]
            resting = [k for k in keys if k["state"] != "ready"]
            name, cooldown = "ready", 0.0
            if runtime.cooldowns.is_retired(m.responder, m.model):
                name = "retired"
            elif resting and len(resting) == len(keys):
                name, cooldown = "cooling", min(_wait_of(k) for k in keys)
            elif resting:
                name = "partial"
            out[m.model] = {"state": name, "cooldown_s": cooldown, "keys": keys}
            projects = sorted(set(responder.projects))
            pace = runtime.pacer.describe([(m.responder, m.model, p) for p in projects])
            if pace is not None:
                out[m.model]["pace"] = pace
    return out


def vertex_states(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Each Vertex AI responder: where, how it signs in, when its token ends (never the token),
    and each of its models' keys, with the back-off a 429 without a wait has set."""
    out: dict[str, dict[str, Any]] = {}
    for responder in runtime.responders.values():
        if not isinstance(responder, VertexResponder):
            continue
        spec = responder.vertex
        tokens = responder.tokens
        expiry = tokens.expiry if tokens is not None else None
        models: dict[str, Any] = {}
        for chain in runtime.config.chains.values():
            for m in chain.members:
                if m.responder != responder.name or m.model in models:
                    continue
                keys = [
                    key_state(runtime, responder, m.model, k) for k in range(responder.key_count)
                ]
                for key in keys:
                    ref = (responder.name, m.model, responder.projects[key["key"]])
                    if runtime.rotator.blind.get(ref):
                        key["backoff"] = f"{runtime.rotator.blind[ref]} 429s without a wait"
                models[m.model] = keys
        out[responder.name] = {
            "project": spec.project,
            "location": spec.location,
            "auth": "express keys" if spec.express else "adc" if spec.adc else "service account",
            "token_expires_at": expiry.isoformat() if expiry is not None else None,
            "models": models,
        }
    return out


def state_rows(runtime: Runtime) -> Iterator[tuple[str, str, float, float | None]]:
    """(model, state, cooldown_s, learned pace) for the Prometheus gauges."""
    for model, row in model_states(runtime).items():
        pace = row.get("pace")
        yield model, row["state"], row["cooldown_s"], pace["requests_per_minute"] if pace else None


async def prometheus(request: web.Request) -> web.Response:
    body = generate_latest(runtime_of(request).prom.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health(request: web.Request) -> web.Response:
    live = request.app[LIVE]
    models = model_states(live.runtime)
    ok = all(m["state"] == "ready" for m in models.values())
    gate = live.generation.layers.find(AdminGate) if live.generation is not None else None
    admin = gate is not None and gate.presented(request)
    body: dict[str, Any] = {
        "status": "ok" if ok else "degraded",
        "models": models,
        "chains": {
            c.name: {
                "members": [m.label for m in c.members],
                "aliases": list(c.aliases),
                "sticky_turn": c.sticky_turn,
            }
            for c in live.runtime.config.chains.values()
        },
        "config": _config(live, admin),
    }
    vertex = vertex_states(live.runtime)
    if vertex:
        body["vertex"] = vertex
    writer = live.runtime.writer
    if writer is not None and writer.notice:
        # The store's file was lost under the running proxy (said once in the log too).
        body["store"] = {
            "state": "refusing" if writer.refusing else "reopened",
            "note": writer.notice,
        }
        if writer.refusing:
            body["status"] = "degraded"
        body["ledger_dropped"] = writer.dropped
    shared = live.runtime.shared
    if shared is not None:
        # The models' states above are the fleet's: cooldowns reach every replica.
        body["shared"] = shared.link.describe()
        if not shared.link.up:
            body["status"] = "degraded"
    return _json(body)


def _config(live: Live, admin: bool) -> dict[str, Any]:
    """Which config is running: its version (1 at start, +1 a reload), the digest of its
    file, when it was loaded, and the errors of the last reload refused since: their count and
    lines for anyone, their text only for a request with the admin key (``/health`` is open
    to probes, and an error may name what the file holds)."""
    generation = live.generation
    assert generation is not None
    out: dict[str, Any] = {
        "file": generation.runtime.config.file,
        "version": generation.version,
        "digest": generation.digest,
        "loaded_at": datetime.fromtimestamp(generation.loaded_at, UTC).isoformat(),
    }
    if live.reload_error:
        out["reload_error"] = {
            "count": len(live.reload_error),
            "lines": sorted(set(live.reload_error_lines)),
        }
        if admin:
            out["reload_error"]["messages"] = live.reload_error
    return out


async def ready(request: web.Request) -> web.Response:
    if request.app[LIVE].draining:
        return _json({"status": "draining"}, 503)
    return _json({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    body = await counts(runtime)
    # Files and cached contents held (with their keys), and Live sessions open.
    body["resources"] = {
        **runtime.owners.counts(),
        "live_sessions": sum(runtime.live_sessions.values()),
    }
    if runtime.writer is not None:
        # Ledger rows dropped because the write queue was full: counted, never silent.
        body["ledger_dropped"] = runtime.writer.dropped
    return _json(body)


async def counts(runtime: Runtime) -> dict[str, Any]:
    """The counters: with store.shared, every replica's (this one's pushed at most a second
    ago) and ``scope: fleet``; Redis away, this replica's own and ``scope: replica``."""
    body = runtime.counters.as_json()
    if runtime.shared is not None:
        totals = await runtime.shared.fleet.totals()
        if totals is not None:
            body.update(totals)
        body["scope"] = "fleet" if totals is not None else "replica"
    return body


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/metrics/prometheus", prometheus)
