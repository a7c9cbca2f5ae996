"""Cooldowns on an injected clock: no sleeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.routing.cooldown import Cooldowns
from tests.conftest import FakeClock


def test_cool_then_ready_after_the_time() -> None:
    clock = FakeClock()
    book = Cooldowns(clock)
    ref = ("up", "m1", 0)
    assert book.cool(ref, 23) == 23
    clock.advance(22.9)
    assert round(book.remaining(ref), 6) == 0.1
    clock.advance(0.1)
    assert book.remaining(ref) == 0.0
    assert ref not in book.until


@given(st.lists(st.floats(min_value=0.001, max_value=1e6), min_size=1, max_size=20))
def test_a_cooldown_only_ever_grows(waits: list[float]) -> None:
    book = Cooldowns(FakeClock())
    ref = ("up", "m1", 0)
    for w in waits:
        book.cool(ref, w)
    assert book.remaining(ref) == pytest.approx(max(waits), abs=1e-6)


def test_a_disabled_key_is_out_on_every_model_until_its_time_is_up() -> None:
    clock = FakeClock()
    book = Cooldowns(clock)
    assert book.disable("up", 1, 300) is True
    assert book.disable("up", 1, 300) is False  # already out: not news
    clock.advance(299)
    assert book.disabled_for("up", 1) == pytest.approx(1.0)
    assert book.disabled_for("up", 0) == 0.0
    clock.advance(1)
    assert book.disabled_for("up", 1) == 0.0
    assert book.disable("up", 1, 300) is True


def test_retire_is_reported_once() -> None:
    book = Cooldowns(FakeClock())
    assert book.retire("up", "old") is True
    assert book.retire("up", "old") is False
    assert book.is_retired("up", "old")


def test_half_open_lets_one_probe_through() -> None:
    clock = FakeClock()
    book = Cooldowns(clock)
    ref = ("up", "m1", 0)
    book.cool(ref, 10)
    clock.advance(10)
    assert book.peek(ref) == 0.0  # looking does not take the probe
    assert book.remaining(ref) == 0.0  # the first caller is the probe
    assert book.remaining(ref) > 0  # the others wait for its answer
    assert book.peek(ref) > 0
    book.answered(ref)
    assert book.remaining(ref) == 0.0
    book.answered(ref)


def test_a_probe_that_never_answers_frees_the_slot() -> None:
    clock = FakeClock()
    book = Cooldowns(clock)
    ref = ("up", "m1", 0)
    book.cool(ref, 1)
    clock.advance(1)
    assert book.remaining(ref) == 0.0
    clock.advance(29)
    assert book.remaining(ref) > 0
    clock.advance(1)
    assert book.remaining(ref) == 0.0


def test_listener_hears_every_cooldown() -> None:
    heard: list[tuple[tuple[str, str, int], float]] = []
    book = Cooldowns(FakeClock(), listener=lambda ref, left: heard.append((ref, left)))
    book.cool(("up", "m1", 0), 5)
    book.cool(("up", "m1", 0), 2)
    assert heard == [(("up", "m1", 0), 5.0), (("up", "m1", 0), 5.0)]
