"""What a 429 says about when the quota is back.

Order of trust: a per-day ``quotaId`` cools until the daily reset (midnight US Pacific), whatever
``retryDelay`` says; else ``RetryInfo.retryDelay``; else the ``Retry-After`` header; else the
configured default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

PACIFIC = ZoneInfo("America/Los_Angeles")
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)s\s*")


@dataclass(frozen=True, slots=True)
class QuotaSignal:
    """The parts of a 429 body that matter for rotation and pacing."""

    retry_delay_s: float | None = None
    per_day: bool = False
    quota_value: int | None = None
    quota_id: str = ""

    @property
    def tokens(self) -> bool:
        """A token quota (``…InputTokensPerModelPerMinute…``): paced by tokens, not requests."""
        return "Token" in self.quota_id


def parse_duration(text: Any) -> float | None:
    """A protobuf JSON ``Duration`` such as ``"23s"`` or ``"23.2s"`` in seconds."""
    if not isinstance(text, str):
        return None
    match = _DURATION.fullmatch(text)
    return float(match.group(1)) if match else None


def read_quota(body: bytes) -> QuotaSignal:
    """Read ``RetryInfo`` and ``QuotaFailure`` from a Gemini error body; tolerant of anything.

    Gemini's OpenAI-compatible endpoint sends the same error wrapped in a JSON array
    (``[{"error": …}]``): that shape is read too.
    """
    try:
        data = orjson.loads(body)
        if isinstance(data, list) and data:
            data = data[0]
        details = data["error"].get("details") or []
    except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
        return QuotaSignal()
    delay: float | None = None
    per_day = False
    value: int | None = None
    quota_id = ""
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.RetryInfo"):
            delay = parse_duration(detail.get("retryDelay"))
        elif kind.endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or []:
                if not isinstance(violation, dict):
                    continue
                qid = str(violation.get("quotaId", ""))
                quota_id = quota_id or qid
                if "PerDay" in qid:
                    per_day, quota_id = True, qid
                raw = violation.get("quotaValue")
                if value is None and isinstance(raw, str | int) and str(raw).isdigit():
                    value = int(raw)
    return QuotaSignal(delay, per_day, value, quota_id)


def parse_retry_after(header: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date."""
    if not header:
        return None
    text = header.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def until_daily_reset(now: datetime) -> float:
    """Seconds from ``now`` to the next midnight in US Pacific time, when daily quotas reset."""
    local = now.astimezone(PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PACIFIC)
    # Same-tzinfo subtraction ignores DST offsets, so compare in UTC.
    return (midnight.astimezone(UTC) - now.astimezone(UTC)).total_seconds()


def cooldown_for(
    signal: QuotaSignal, retry_after: str | None, default_s: float, now: datetime
) -> float:
    """How long a member that answered 429 must rest, in seconds."""
    if signal.per_day:
        return until_daily_reset(now)
    if signal.retry_delay_s is not None:
        return signal.retry_delay_s
    header = parse_retry_after(retry_after, now)
    return header if header is not None else default_s
