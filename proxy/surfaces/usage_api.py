"""``GET /api/v6/usage``: the ledger aggregated, for the status page's charts and for anyone's
own bookkeeping.

``by=client|model|key|project`` groups the rows; ``step=hour|day`` adds time buckets (UTC);
``from`` and ``to`` bound them (Unix seconds or ISO 8601, ``to`` excluded). Each group has its
requests, tokens by kind, cost (to the client, and at the price list), 429s and rotations. JSON,
or CSV with ``format=csv``. A client key sees its own rows only; the admin key sees them all.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from proxy.middleware.admin import AdminGate
from proxy.middleware.auth import ClientAuth, presented_key
from proxy.state import LIVE

GROUPS = {
    "client": "client",
    "model": "served",
    "project": "project",
    "key": "project || ' #' || key_index",
}
STEPS = {"hour": 3600, "day": 86_400}
COLUMNS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "thoughts_tokens",
    "tool_use_tokens",
    "audio_tokens",
    "cost_usd",
    "list_cost_usd",
    "rate_limited",
    "rotations",
)
_SUMS = (
    "COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens), SUM(thoughts_tokens), "
    "SUM(tool_use_tokens), SUM(audio_tokens), SUM(cost_usd), SUM(list_cost_usd), "
    "SUM(status = 429), SUM(MAX(attempts - 1, 0))"
)


def _when(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"'{name}' must be Unix seconds or an ISO 8601 time.") from None


def _caller(request: web.Request) -> str | None:
    """None for the admin (every client's rows), else the client whose rows are shown."""
    generation = request.app[LIVE].generation
    assert generation is not None
    gate = generation.layers.find(AdminGate)
    if gate is not None and gate.presented(request):
        return None
    auth = generation.layers.find(ClientAuth)
    if auth is None or not auth.clients:
        return None if gate is None else "anonymous"  # an open proxy: its one caller
    key = presented_key(request)
    if key is None:
        raise Unauthenticated("The usage API takes a client key, or the admin key.")
    name = auth.identify(key)
    if name is None:
        raise PermissionDenied("API key not valid. Please pass a valid API key.")
    return name


async def usage(request: web.Request) -> web.StreamResponse:
    live = request.app[LIVE]
    store = live.runtime.store
    if store is None:
        raise NotFound("The usage API reads the ledger: the store is off (store.path).")
    query = request.query
    by = query.get("by", "client")
    if by not in GROUPS:
        raise InvalidArgument(f"'by' must be one of {', '.join(GROUPS)}.")
    step = query.get("step", "")
    if step and step not in STEPS:
        raise InvalidArgument("'step' must be hour or day.")
    start = _when(query["from"], "from") if "from" in query else 0.0
    end = _when(query["to"], "to") if "to" in query else 1e12
    client = _caller(request)
    bucket = f"CAST(at / {STEPS[step]} AS INTEGER) * {STEPS[step]}" if step else "0"
    where = "at >= ? AND at < ?" + (" AND client = ?" if client is not None else "")
    params: tuple[Any, ...] = (start, end, client) if client is not None else (start, end)
    sql = (
        f"SELECT {bucket} AS bucket, {GROUPS[by]} AS grp, {_SUMS} FROM ledger "  # noqa: S608
        f"WHERE {where} GROUP BY bucket, grp ORDER BY bucket, grp"
    )
    rows = await store.rows(sql, params)
    out = [
        {
            **({"at": int(row[0])} if step else {}),
            by: row[1],
            **{name: _number(value) for name, value in zip(COLUMNS, row[2:], strict=True)},
        }
        for row in rows
    ]
    if query.get("format") == "csv":
        text = io.StringIO()
        fields = [*(["at"] if step else []), by, *COLUMNS]
        writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(out)
        return web.Response(text=text.getvalue(), content_type="text/csv")
    body = {"by": by, "step": step or None, "from": start, "to": end, "rows": out}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def budgets(request: web.Request) -> web.StreamResponse:
    """``GET /api/v6/budgets``: each visible client's budgets and what it spent this period."""
    runtime = request.app[LIVE].runtime
    caller = _caller(request)
    spending = runtime.spending
    rows = []
    if spending is not None:
        day, month = spending.periods()
        for client in runtime.config.clients:
            if (caller is not None and client.name != caller) or not client.budget.any:
                continue
            budget = client.budget
            for name, limit, period, index in (
                ("usd_per_day", budget.usd_per_day, day, 0),
                ("usd_per_month", budget.usd_per_month, month, 0),
                ("tokens_per_day", float(budget.tokens_per_day), day, 1),
            ):
                if limit:
                    spent = spending.of(client.name, period)[index]
                    rows.append(
                        {"client": client.name, "budget": name, "limit": limit, "spent": spent}
                    )
    return web.Response(body=orjson.dumps({"budgets": rows}), content_type="application/json")


def _number(value: Any) -> Any:
    """Sums of costs to the micro-dollar (floating sums carry noise past it); None stays."""
    return round(value, 6) if isinstance(value, float) else value


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v6/usage", usage)
    app.router.add_get("/api/v6/budgets", budgets)
