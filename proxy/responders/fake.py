"""``fake``: deterministic answers with configurable size and pace, and scripted statuses.

``script`` maps a model name (or ``"*"``) to statuses answered in turn; the last one repeats.
``[429, 200]`` answers one quota error, then succeeds for ever. A scripted 429 carries Gemini's
``QuotaFailure`` and ``RetryInfo`` (``retry_delay_s``; ``quota: day`` makes it a per-day quota).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.reader import Reader
from proxy.responders.base import Call, Reply
from proxy.responders.local import LocalResponder, Pace, parse_pace
from proxy.wire import quota_error, status_error

DEFAULT_TEXT = "This is L104 Proxy's fake responder answering as {model}."


@dataclass(frozen=True, slots=True)
class FakeSpec:
    pace: Pace
    text: str = DEFAULT_TEXT
    script: dict[str, tuple[int, ...]] = field(default_factory=dict)
    retry_delay_s: float = 30.0
    per_day: bool = False


def parse(r: Reader) -> FakeSpec:
    script: dict[str, tuple[int, ...]] = {}
    raw = r.raw("script", {})
    if not isinstance(raw, dict):
        r.bad("script", raw, "must map a model name to a list of HTTP statuses")
    else:
        for model, statuses in raw.items():
            items = statuses if isinstance(statuses, list) else [statuses]
            if not items or not all(
                isinstance(s, int) and not isinstance(s, bool) and 200 <= s <= 599 for s in items
            ):
                r.bad("script", statuses, f"'{model}' needs a list of HTTP statuses (200-599)")
                continue
            script[str(model)] = tuple(items)
    return FakeSpec(
        pace=parse_pace(r, chunks=3),
        text=r.text("text", DEFAULT_TEXT),
        script=script,
        retry_delay_s=r.number("retry_delay_s", 30.0, high=86_400 * 2),
        per_day=r.choice("quota", "minute", ("minute", "day")) == "day",
    )


class FakeResponder(LocalResponder):
    def __init__(self, name: str, spec: FakeSpec) -> None:
        super().__init__(name, spec.pace, self._text)
        self.spec = spec
        self.turns: dict[str, int] = {}

    def _text(self, call: Call, data: dict[str, Any]) -> str:
        return self.spec.text.replace("{model}", call.model)

    def _scripted(self, model: str) -> int:
        statuses = self.spec.script.get(model) or self.spec.script.get("*")
        if not statuses:
            return 200
        turn = self.turns.get(model, 0)
        self.turns[model] = turn + 1
        return statuses[min(turn, len(statuses) - 1)]

    async def send(self, call: Call, key_index: int) -> Reply:
        status = self._scripted(call.model)
        if status == 429:
            body = quota_error(call.model, self.spec.retry_delay_s, self.spec.per_day)
            return Reply(429, body)
        if status != 200:
            return Reply(status, status_error(status, call.model))
        return await super().send(call, key_index)


def build(name: str, spec: FakeSpec) -> FakeResponder:
    return FakeResponder(name, spec)
