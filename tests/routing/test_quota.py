"""Reading 429 bodies and working out when the quota is back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from proxy.routing.quota import (
    QuotaSignal,
    cooldown_for,
    parse_duration,
    parse_retry_after,
    read_quota,
    until_daily_reset,
)
from proxy.wire import quota_error

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("23s", 23.0),
        ("23.2s", 23.2),
        ("0s", 0.0),
        (".5s", 0.5),
        ("23", None),
        ("s", None),
        (23, None),
        ("-1s", None),
        ("1e3s", None),
    ],
)
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_read_quota_from_geminis_body() -> None:
    minute = read_quota(quota_error("m", 23.2, per_day=False))
    assert minute == QuotaSignal(
        23.2, False, 20, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    )
    day = read_quota(quota_error("m", 23, per_day=True))
    assert day.per_day
    assert day.retry_delay_s == 23


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"error": 5}',
        b'{"error": {"details": "x"}}',
        b'{"error": {"details": [5, {"@type": 3}]}}',
    ],
)
def test_read_quota_tolerates_anything(body: bytes) -> None:
    assert read_quota(body) == QuotaSignal()


def test_per_day_wins_over_retry_delay_in_any_order() -> None:
    body = {
        "error": {
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"},
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"},
                        {
                            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                            "quotaValue": "250",
                        },
                    ],
                },
            ]
        }
    }
    signal = read_quota(json.dumps(body).encode())
    assert signal.per_day
    assert cooldown_for(signal, None, 60, NOW) == until_daily_reset(NOW)


def test_retry_after_header_as_seconds_or_date() -> None:
    assert parse_retry_after("12", NOW) == 12
    assert parse_retry_after("Wed, 25 Nov 2026 12:00:30 GMT", NOW) == 30
    assert parse_retry_after("garbage", NOW) is None
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize(
    ("signal", "header", "expected"),
    [
        (QuotaSignal(7.0), "99", 7.0),
        (QuotaSignal(), "99", 99.0),
        (QuotaSignal(), None, 60.0),
    ],
)
def test_cooldown_order_of_trust(signal: QuotaSignal, header: str | None, expected: float) -> None:
    assert cooldown_for(signal, header, 60.0, NOW) == expected


@pytest.mark.parametrize(
    ("now", "hours"),
    [
        (datetime(2026, 11, 25, 12, 0, tzinfo=UTC), 20.0),  # 04:00 PST -> 20 h to midnight
        (datetime(2026, 7, 1, 6, 0, tzinfo=UTC), 1.0),  # 23:00 PDT -> 1 h
        # 01:00 PDT on the 25-hour day DST ends: 24 real hours to midnight, not 23.
        (datetime(2026, 11, 1, 8, 0, tzinfo=UTC), 24.0),
        # 01:00 PST on the 23-hour day DST starts: 22 real hours, not 23.
        (datetime(2026, 3, 8, 9, 0, tzinfo=UTC), 22.0),
    ],
)
def test_daily_reset_is_midnight_pacific_across_dst(now: datetime, hours: float) -> None:
    assert until_daily_reset(now) == pytest.approx(hours * 3600)
