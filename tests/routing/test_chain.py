"""Which members a requested name walks."""

from __future__ import annotations

from pathlib import Path

from proxy.config import Member
from proxy.routing.chain import Resolver
from tests.conftest import base_yaml, config_from


def test_resolution_table(tmp_path: Path) -> None:
    config = config_from(
        tmp_path,
        base_yaml(
            "http://127.0.0.1:9",
            chains='fast: ["up:m2", "up:m4"]\n  default: ["up:m1", "up:m2", "up:m3"]',
        ),
    )
    resolver = Resolver(config)
    names = {
        "default": ["m1", "m2", "m3"],
        "fast": ["m2", "m4"],
        "m1": ["m1", "m2", "m3"],
        "m2": ["m2", "m3"],  # the default chain is searched first
        "m4": ["m4"],
    }
    for name, models in names.items():
        plan = resolver.resolve(name)
        assert [m.model for m in plan.members] == models, name
        assert not plan.passthrough
    other = resolver.resolve("gemini-other")
    assert other.passthrough
    assert other.members == (Member("up", "gemini-other"),)
