"""``template``: fixed text with ``{prompt}``, ``{model}`` and ``{retry_after}`` filled in.

The placeholders are plain braces, so they never meet ``${VAR}`` from the environment.
``{retry_after}`` is the whole seconds until the soonest cooldown of the chain ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from proxy.reader import Reader
from proxy.responders.base import Call
from proxy.responders.local import LocalResponder, Pace, parse_pace
from proxy.wire import last_user_text


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    text: str
    pace: Pace


def parse(r: Reader) -> TemplateSpec:
    return TemplateSpec(text=r.text("text", required=True), pace=parse_pace(r))


def render(text: str, call: Call, data: dict[str, Any]) -> str:
    return (
        text.replace("{prompt}", last_user_text(data))
        .replace("{model}", call.model)
        .replace("{retry_after}", str(math.ceil(call.retry_after_s)))
    )


def build(name: str, spec: TemplateSpec) -> LocalResponder:
    return LocalResponder(name, spec.pace, lambda call, data: render(spec.text, call, data))
