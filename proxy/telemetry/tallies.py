"""The per-request metrics as plain counts, made into Prometheus families when scraped.

A ``prometheus_client`` Counter or Histogram takes a lock on every update, and a Histogram
walks its buckets in Python: a request made eight such updates (requests, latency, time to first
byte, attempts, in flight up and down). Every update happens on the event loop's thread, and so
does a scrape, so plain integers need no lock; a bucket is found by bisection.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
_LE = [*(f"{bound}" for bound in LATENCY_BUCKETS), "+Inf"]


class Spread:
    """One histogram's counts: ``counts[i]`` holds the values in bucket ``i`` alone (the
    last is past every bound); Prometheus's cumulative form is made when scraped."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: the first bound >= the value, as Prometheus's ``le`` counts it.
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for le, count in zip(_LE, self.counts, strict=True):
            running += count
            out.append((le, float(running)))
        return out


class Tallies(Collector):
    """``l104_requests_total``, the latency and first-byte histograms, upstream attempts,
    rate-limit refusals and requests in flight: counted as requests pass, exposed by
    :meth:`collect`."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.latency: defaultdict[str, Spread] = defaultdict(Spread)
        self.ttfb: defaultdict[str, Spread] = defaultdict(Spread)
        self.attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.rate_limited: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.in_flight = 0

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "l104_requests", "Requests by route and status", labels=["route", "status"]
        )
        for (route, status), count in self.requests.items():
            requests.add_metric([route, str(status)], count)
        yield requests
        yield _histogram("l104_request_duration_seconds", "Time to the last byte", self.latency)
        yield _histogram("l104_time_to_first_byte_seconds", "Time to the first byte", self.ttfb)
        attempts = CounterMetricFamily(
            "l104_upstream_attempts", "Upstream attempts by outcome", labels=["model", "outcome"]
        )
        for (model, outcome), count in self.attempts.items():
            attempts.add_metric([model, outcome], count)
        yield attempts
        limited = CounterMetricFamily(
            "l104_rate_limited", "Requests refused by a rate limit", labels=["client", "limit"]
        )
        for (client, limit), count in self.rate_limited.items():
            limited.add_metric([client, limit], count)
        yield limited
        yield GaugeMetricFamily(
            "l104_requests_in_flight", "Requests being served", value=self.in_flight
        )


def _histogram(name: str, documentation: str, spreads: dict[str, Spread]) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=["route"])
    for route, spread in spreads.items():
        family.add_metric([route], spread.buckets(), sum_value=spread.total)
    return family
