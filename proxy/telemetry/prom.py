"""Prometheus metrics, in a registry of the app's own (no process-global registry).

What every request updates is counted in :class:`~proxy.telemetry.tallies.Tallies` (no lock per
update); rare events (rotations, 429s) are prometheus_client Counters. Cooldown and pace gauges
are read from the live state at scrape time by a collector, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from proxy.telemetry.tallies import Tallies

# (model, state, cooldown_s, learned requests per minute or None)
StateRows = Callable[[], Iterable[tuple[str, str, float, float | None]]]
# (client, period, USD left of its budget)
BudgetRows = Callable[[], Iterable[tuple[str, str, float]]]


class _BudgetCollector(Collector):
    def __init__(self, rows: BudgetRows) -> None:
        self.rows = rows

    def collect(self) -> Iterable[Metric]:
        left = GaugeMetricFamily(
            "l104_budget_remaining_usd",
            "USD left of a client's budget for the period (day or month)",
            labels=["client", "period"],
        )
        for client, period, usd in self.rows():
            left.add_metric([client, period], usd)
        return [left]


class _StateCollector(Collector):
    def __init__(self, rows: StateRows) -> None:
        self.rows = rows

    def collect(self) -> Iterable[Metric]:
        cooldown = GaugeMetricFamily(
            "l104_cooldown_seconds",
            "Seconds until a cooling model may be called again",
            labels=["model"],
        )
        ready = GaugeMetricFamily(
            "l104_model_ready",
            "1 while the model may be called, 0 while cooling or retired",
            labels=["model"],
        )
        pace = GaugeMetricFamily(
            "l104_learned_pace_requests_per_minute",
            "The pace learned from the upstream's 429s",
            labels=["model"],
        )
        for model, state, left, rpm in self.rows():
            cooldown.add_metric([model], left)
            ready.add_metric([model], 1.0 if state == "ready" else 0.0)
            if rpm is not None:
                pace.add_metric([model], rpm)
        return [cooldown, ready, pace]


class Prom:
    """The proxy's Prometheus metrics. ``l104_`` prefix; counts keyed by upstream model name."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tallies = Tallies()
        r.register(self.tallies)
        self.rotations = Counter("l104_rotations", "Moves from one member to the next", registry=r)
        self.signature_repairs = Counter(
            "l104_signature_repairs",
            "Steps answered again with Gemini's stand-in after a thought-signature 400",
            ["model"],
            registry=r,
        )
        self.quota_429 = Counter(
            "l104_upstream_429", "429 answers from the upstream", ["model"], registry=r
        )
        self.cost = Counter(
            "l104_cost_usd",
            "What answers cost the clients, in USD",
            ["model", "client"],
            registry=r,
        )
        ProcessCollector(registry=r)  # process_start_time_seconds, RSS, CPU, open fds
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Counter, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the lookup takes a lock and builds a key."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch_state(self, rows: StateRows) -> None:
        self.registry.register(_StateCollector(rows))

    def watch_budgets(self, rows: BudgetRows) -> None:
        self.registry.register(_BudgetCollector(rows))
