"""The pacer: learned quotas and AIMD, on an injected clock."""

from __future__ import annotations

import aiohttp
import pytest

from proxy.routing.pacing import Pacer
from tests.conftest import FakeClock, StartProxy, Upstream, base_yaml

REF = ("up", "m1", 0)


def test_quota_value_sets_the_pace() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    for _ in range(3):
        pacer.sent(REF)
    pacer.limited(REF, 3)
    assert pacer.wait_for(REF) == pytest.approx(60.0)
    clock.advance(60.0)
    assert pacer.wait_for(REF) == 0.0
    assert pacer.describe([REF]) == {
        "requests_per_minute": 3.0,
        "sent_last_minute": 0,
        "source": "quota",
    }


def test_aimd_halves_on_429_and_adds_back_slowly() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    for _ in range(10):
        pacer.sent(REF)
        clock.advance(1)
    pacer.limited(REF, None)
    assert pacer.lanes[REF].pace == 5.0
    pacer.limited(REF, None)
    assert pacer.lanes[REF].pace == 2.5
    for _ in range(3):
        pacer.succeeded(REF)
    assert pacer.lanes[REF].pace == pytest.approx(2.5 + 0.4 + 1 / 2.9 + 1 / (2.9 + 1 / 2.9))
    assert pacer.wait_for(REF) > 0  # 10 sent in the last minute, pace about 3


def test_an_unpaced_lane_counts_in_constant_memory_and_a_429_still_sees_every_call() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    for _ in range(100_000):  # 1,000 a second for 100 s
        pacer.sent(REF)
        clock.advance(0.001)
    lane = pacer.lanes[REF]
    assert len(lane.sent) == 0  # no time kept a call while nothing is learned
    assert 59_000 <= lane.recent.total(clock()) <= 60_000
    pacer.limited(REF, None)  # AIMD halves what was sent in the last minute
    assert 29_500 <= (lane.pace or 0) <= 30_000
    # The calls of the last minute became times, each at the end of its second: the pace
    # holds at once, and frees a slot no earlier than the call it stands for leaves the minute.
    wait = pacer.wait_for(REF)
    assert 0 < wait <= 60


def test_a_refused_call_leaves_the_count() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    stamps = [pacer.sent(REF) for _ in range(5)]
    pacer.refused(REF, stamps[-1])
    assert pacer.lanes[REF].recent.total(clock()) == 4


def test_disabled_pacer_never_holds_back() -> None:
    pacer = Pacer(FakeClock(), enabled=False)
    pacer.sent(REF)
    pacer.limited(REF, 1)
    assert pacer.wait_for(REF) == 0.0
    assert pacer.describe([REF]) is None


@pytest.mark.parametrize(("adaptive", "expected_429s"), [(True, 1), (False, 2)])
async def test_a_burst_of_6n_sees_one_upstream_429(
    start_proxy: StartProxy, upstream: Upstream, adaptive: bool, expected_429s: int
) -> None:
    """Quota N=5 a minute on m1, whose 429 asks for only a 1 s rest: the cooldown alone would
    let the proxy burn a second 429 after that second; the learned pace does not."""
    limits = f"limits: {{adaptive: {'true' if adaptive else 'false'}}}"
    proxy = await start_proxy(base_yaml(upstream.url, keys=("only-key",), extra=limits))
    upstream.quota("m1", 5, delay="1s")
    served = []
    for i in range(30):
        if i == 15:
            proxy.clock.advance(2)  # the cooldown is over; the minute is not
        response = await proxy.client().aio.models.generate_content(model="default", contents="x")
        served.append(response.model_version)
    m1 = upstream.requests("m1")
    assert len(m1) == 5 + expected_429s
    assert served.count("m1") == 5
    assert served.count("m2") == 25
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/health") as r:
        health = await r.json()
    if adaptive:
        assert health["models"]["m1"]["pace"]["requests_per_minute"] == 5.0
