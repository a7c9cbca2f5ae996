"""Which members a requested name walks."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import Config, ConfigError, Member
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


def _with_aliases(tmp_path: Path, extra: str = "") -> Config:
    return config_from(
        tmp_path,
        """
responders:
  up: {type: gemini, base_url: "http://127.0.0.1:9", api_keys: [k]}
chains:
  default: ["up:m1"]
  agents:
    members: ["up:gemini-3-flash-preview", {member: "up:gemma-3", tools: false}]
    aliases: ["gemini-3.8-flash", "gemini-*-flash*"]
    sticky_turn: true
"""
        + extra,
    )


def test_aliases_exact_and_glob_walk_their_chain(tmp_path: Path) -> None:
    resolver = Resolver(_with_aliases(tmp_path))
    for name in ("gemini-3.8-flash", "gemini-3.5-flash-lite", "gemini-2.5-flash"):
        plan = resolver.resolve(name)
        assert plan.name == "agents", name
        assert not plan.passthrough
        assert plan.sticky_turn
    assert resolver.resolve("gemini-2.5-pro").passthrough  # claimed by no chain
    assert [m.tools for m in resolver.resolve("agents").members] == [True, False]


def test_a_name_claimed_by_two_chains_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _with_aliases(tmp_path, '  other: {members: ["up:m2"], aliases: ["gemini-3.8-flash"]}\n')
    assert "claims 'gemini-3.8-flash', which chain 'agents' claims too" in str(info.value)
    with pytest.raises(ConfigError):
        _with_aliases(tmp_path, '  other: {members: ["up:m2"], aliases: ["gemini-9-flash"]}\n')
