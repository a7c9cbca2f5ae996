"""``echo``: answers with the last user text, unchanged."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.reader import Reader
from proxy.responders.local import LocalResponder, Pace, parse_pace
from proxy.wire import last_user_text


@dataclass(frozen=True, slots=True)
class EchoSpec:
    pace: Pace


def parse(r: Reader) -> EchoSpec:
    return EchoSpec(pace=parse_pace(r))


def build(name: str, spec: EchoSpec) -> LocalResponder:
    return LocalResponder(name, spec.pace, lambda call, data: last_user_text(data))
