"""The sliding window on an injected clock: exact limits and exact waits."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.routing.window import BUCKETS, SlidingWindow
from tests.conftest import FakeClock

steps = st.lists(
    st.tuples(st.floats(min_value=0, max_value=30), st.integers(min_value=1, max_value=5)),
    max_size=200,
)


@example(ops=[(1.4549121249134824, 1), (30.0, 1), (30.0, 1)], limit=1)  # one ulp at the edge
@given(steps, st.integers(min_value=1, max_value=20))
def test_never_admits_more_than_the_limit_in_any_window(
    ops: list[tuple[float, int]], limit: int
) -> None:
    clock = FakeClock()
    window = SlidingWindow(limit, 60.0, clock)
    admitted: list[tuple[float, int]] = []
    for advance, amount in ops:
        clock.advance(advance)
        entry, wait = window.take(amount)
        if entry is not None:
            admitted.append((clock(), amount))
        else:
            assert wait > 0
    for t, _ in admitted:
        inside = [a for (u, a) in admitted if t < u + 60.0 and u <= t]
        assert sum(inside) <= limit or len(inside) == 1


@given(st.integers(min_value=1, max_value=10), st.floats(min_value=0.01, max_value=59))
def test_the_wait_is_exact(limit: int, gap: float) -> None:
    clock = FakeClock()
    window = SlidingWindow(limit, 60.0, clock)
    for _ in range(limit):
        assert window.take(1)[0] is not None
        clock.advance(gap / limit)
    entry, wait = window.take(1)
    assert entry is None
    clock.advance(wait - 1e-6)
    assert window.take(1)[0] is None
    clock.advance(2e-6)
    assert window.take(1)[0] is not None


def test_settle_replaces_the_estimate() -> None:
    clock = FakeClock()
    window = SlidingWindow(100, 60.0, clock)
    entry, _ = window.take(90)
    assert entry is not None
    assert window.take(20)[0] is None
    window.settle(entry, 30)
    assert window.used() == 30
    assert window.take(20)[0] is not None
    clock.advance(61)
    window.settle(entry, 1000)  # already out of the window: changes nothing
    assert window.used() == 0


def test_one_request_larger_than_the_limit_fits_an_empty_window() -> None:
    window = SlidingWindow(10, 60.0, FakeClock())
    assert window.take(50)[0] is not None
    assert window.take(1)[1] == pytest.approx(60.0)


@given(steps, st.integers(min_value=1, max_value=20))
def test_count_if_room_agrees_with_asking_then_counting(
    ops: list[tuple[float, int]], limit: int
) -> None:
    # The one-call form used on the hot path must admit and wait exactly as the two calls do.
    clock = FakeClock()
    one, two = SlidingWindow(limit, 60.0, clock), SlidingWindow(limit, 60.0, clock)
    for advance, amount in ops:
        clock.advance(advance)
        expected = two.wait_for(amount)
        if expected <= 0:
            two.count(amount)
        assert one.count_if_room(amount) == expected
        assert one.used() == two.used()


@given(st.lists(st.floats(min_value=0, max_value=5), max_size=400))
def test_what_left_the_window_goes_even_when_nothing_needs_a_wait(advances: list[float]) -> None:
    # Far under its limit, a window never has to look at what left it to admit; it must still
    # let it go, or a busy window would keep a bucket for every second it ever saw.
    clock = FakeClock()
    window = SlidingWindow(10**9, 60.0, clock)
    for advance in advances:
        clock.advance(advance)
        assert window.count_if_room(1) == 0
        assert len(window.buckets) <= BUCKETS + 2
    used = window.used()
    assert used == sum(b.amount for b in window.buckets)
    # What it still counts: every admission in the window, and at most a bucket's width more
    # (a bucket leaves with its last admission).
    times = _times(1000.0, advances)
    assert sum(1 for t in times if t + 60.0 > clock()) <= used
    assert used <= sum(1 for t in times if t + 60.0 + 1.0 > clock())


def _times(start: float, advances: list[float]) -> list[float]:
    out, now = [], start
    for advance in advances:
        now += advance
        out.append(now)
    return out
