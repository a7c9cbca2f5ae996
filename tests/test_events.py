"""The event bus: every subscriber gets events; a slow one loses its oldest."""

from __future__ import annotations

from proxy.events import Bus


async def test_fan_out_and_drop_oldest() -> None:
    bus = Bus(depth=2)
    fast, slow = bus.subscribe(), bus.subscribe()
    bus.publish("a", {"n": 1})
    assert fast.get_nowait() == ("a", {"n": 1})
    bus.publish("b", {"n": 2})
    bus.publish("c", {"n": 3})
    assert [slow.get_nowait()[0] for _ in range(slow.qsize())] == ["b", "c"]
    bus.unsubscribe(slow)
    bus.publish("d", {})
    assert slow.empty()
    assert [fast.get_nowait()[0] for _ in range(2)] == ["c", "d"]  # "b" made room for "d"
