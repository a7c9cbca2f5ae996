"""A fake Gemini with real rolling quotas, for ``make bench-quota``.

Per (project, model) it keeps the send times of the last minute and a count for the day. Over
a quota it answers Gemini's real 429 body: ``QuotaFailure`` with the ``quotaId`` and
``quotaValue`` of the quota that ran out, and ``RetryInfo`` with the true wait. Vertex AI's
express paths (``/v1/publishers/google/models/{m}:{action}``) answer for the models it serves
there, with Vertex's 429: no ``RetryInfo``, no details (dynamic shared quota). It can also say,
at any moment, how long a router would truly have to wait for room (:meth:`true_wait`), so the
``Retry-After`` the proxy tells can be checked against it.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web

from proxy.wire import quota_error

MINUTE = 60.0


@dataclass(frozen=True)
class Quota:
    rpm: int
    rpd: int = 0  # 0: none


@dataclass
class QuotaUpstream:
    quotas: dict[str, Quota]
    projects: dict[str, str]  # key -> project
    vertex: frozenset[str] = frozenset()  # the models served on Vertex's paths only
    sent: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    day: dict[tuple[str, str], int] = field(default_factory=dict)
    calls: int = 0
    rejected: int = 0
    # (project, model, "minute" or "day") -> when each 429 was given
    rejected_by: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    accepted: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # every time

    def _window(self, lane: tuple[str, str], now: float) -> deque[float]:
        window = self.sent.setdefault(lane, deque())
        while window and window[0] <= now - MINUTE:
            window.popleft()
        return window

    def room_in(self, project: str, model: str, now: float) -> float:
        """Seconds until (project, model) has room (0: now; inf: not today)."""
        quota = self.quotas[model]
        if quota.rpd and self.day.get((project, model), 0) >= quota.rpd:
            return math.inf
        window = self._window((project, model), now)
        if len(window) < quota.rpm:
            return 0.0
        return window[len(window) - quota.rpm] + MINUTE - now

    def true_wait(self, at: float, horizon: float) -> float:
        """How long a request at ``at`` truly had to wait for room on any (project, model),
        given every call accepted up to ``at + horizon`` (calls the router had already let
        through were still on their way at ``at``). Read after the run."""
        waits = []
        for project, model in self.lanes():
            quota = self.quotas[model]
            times = [t for t in self.accepted.get((project, model), []) if t <= at + horizon]
            if quota.rpd and sum(1 for t in times if t <= at + horizon) >= quota.rpd:
                waits.append(math.inf)
                continue
            recent = sorted((t for t in times if t > at - MINUTE), reverse=True)
            if len(recent) < quota.rpm:
                waits.append(0.0)
            else:
                waits.append(max(0.0, recent[quota.rpm - 1] + MINUTE - at))
        return min(waits)

    def _refuse(self, project: str, model: str, now: float) -> web.Response:
        quota = self.quotas[model]
        self.rejected += 1
        per_day = bool(quota.rpd) and self.day.get((project, model), 0) >= quota.rpd
        kind = "day" if per_day else "minute"
        self.rejected_by.setdefault((project, model, kind), []).append(now)
        wait = 86_400.0 if per_day else self.room_in(project, model, now)
        value = quota.rpd if per_day else quota.rpm
        if model in self.vertex:
            vague = {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}
            return web.json_response({"error": vague}, status=429)
        return web.Response(
            body=quota_error(model, wait, per_day, value),
            status=429,
            content_type="application/json",
        )

    async def handle(self, request: web.Request) -> web.Response:
        model = request.match_info["target"].rpartition(":")[0]
        key = request.headers.get("x-goog-api-key") or request.query.get("key", "")
        project = self.projects.get(key, "")
        on_vertex = "/publishers/" in request.path
        if model not in self.quotas or not project or on_vertex != (model in self.vertex):
            return web.json_response({"error": {"code": 404, "message": model}}, status=404)
        await request.read()
        self.calls += 1
        now = time.monotonic()
        if self.room_in(project, model, now) > 0:
            return self._refuse(project, model, now)
        self._window((project, model), now).append(now)
        self.accepted.setdefault((project, model), []).append(now)
        self.day[(project, model)] = self.day.get((project, model), 0) + 1
        answer = {
            "candidates": [
                {"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}
            ],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 1,
                "totalTokenCount": 5,
            },
            "modelVersion": model,
        }
        return web.Response(body=json.dumps(answer), content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{version}/models/{target}", self.handle)
        app.router.add_post("/{version}/publishers/google/models/{target}", self.handle)
        return app

    def lanes(self) -> list[tuple[str, str]]:
        """Every (project, model) that exists: Vertex's models in Vertex's projects only."""
        out = []
        for key, project in self.projects.items():
            for model in self.quotas:
                if (model in self.vertex) == key.startswith("vx-"):
                    out.append((project, model))
        return list(dict.fromkeys(out))


def best_possible(
    send_times: Iterable[float], quotas: dict[str, Quota], lanes: list[tuple[str, str]]
) -> int:
    """The most requests any router could serve at these send times (it serves a request when
    any (project, model) of ``lanes`` has room at that moment)."""
    sent: dict[tuple[str, str], deque[float]] = {}
    day: dict[tuple[str, str], int] = {}
    served = 0
    for t in sorted(send_times):
        for lane in lanes:
            quota = quotas[lane[1]]
            window = sent.setdefault(lane, deque())
            while window and window[0] <= t - MINUTE:
                window.popleft()
            if len(window) < quota.rpm and (not quota.rpd or day.get(lane, 0) < quota.rpd):
                window.append(t)
                day[lane] = day.get(lane, 0) + 1
                served += 1
                break
    return served
