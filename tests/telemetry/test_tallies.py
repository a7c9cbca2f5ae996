"""Tallies expose what prometheus_client's own Counter and Histogram would, for the same values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy.telemetry.tallies import LATENCY_BUCKETS, Tallies

# On a bound, between bounds, below the first and past the last.
VALUES = (0.0005, 0.0007, 0.001, 0.3, 0.0001, 500.0, 2.5)


def samples(text: bytes, family: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for metric in text_string_to_metric_families(text.decode()):
        if metric.name == family:
            for s in metric.samples:
                if not s.name.endswith("_created"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def registries() -> tuple[CollectorRegistry, Tallies, CollectorRegistry]:
    """Ours (with the tallies in it), and an empty one for prometheus_client's own metric."""
    ours = CollectorRegistry()
    tallies = Tallies()
    ours.register(tallies)
    return ours, tallies, CollectorRegistry()


def test_a_histogram_matches_prometheus_clients_own() -> None:
    ours, tallies, theirs = registries()
    reference = Histogram(
        "l104_request_duration_seconds",
        "Time to the last byte",
        ["route"],
        buckets=LATENCY_BUCKETS,
        registry=theirs,
    )
    for value in VALUES:
        tallies.latency["/r"].observe(value)
        reference.labels("/r").observe(value)
    got = samples(generate_latest(ours), "l104_request_duration_seconds")
    want = samples(generate_latest(theirs), "l104_request_duration_seconds")
    assert got == want
    assert got[("l104_request_duration_seconds_bucket", (("le", "0.0005"), ("route", "/r")))] == 2
    assert got[("l104_request_duration_seconds_count", (("route", "/r"),))] == len(VALUES)


def test_counts_and_the_gauge_read_as_prometheus_counters_do() -> None:
    ours, tallies, theirs = registries()
    reference = Counter(
        "l104_requests", "Requests by route and status", ["route", "status"], registry=theirs
    )
    for status in (200, 200, 429):
        tallies.requests["/r", status] += 1
        reference.labels("/r", str(status)).inc()
    tallies.in_flight += 2
    tallies.in_flight -= 1
    text = generate_latest(ours)
    assert samples(text, "l104_requests") == samples(generate_latest(theirs), "l104_requests")
    assert samples(text, "l104_requests_in_flight") == {("l104_requests_in_flight", ()): 1.0}
