"""Conversation memory: budgets and separate sessions."""

from __future__ import annotations

from pathlib import Path

from proxy.store.db import Store
from proxy.store.memory import Memory
from proxy.store.writer import Writer


async def test_recent_turns_within_budgets(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "s.db"), Writer())
    memory = Memory(store, max_turns=4, max_tokens=50)
    for i in range(4):
        await memory.add("a", [("user", f"q{i}", 10), ("model", f"a{i}", 10)])
    await memory.add("b", [("user", "other", 1), ("model", "reply", 1)])
    recent = await memory.recent("a")
    assert [t.text for t in recent] == ["q2", "a2", "q3", "a3"]
    tight = Memory(store, max_turns=10, max_tokens=35)
    # 35 tokens hold three turns, but a conversation must open on a user turn.
    assert [t.text for t in await tight.recent("a")] == ["q3", "a3"]
    assert [t.text for t in await memory.all("b")] == ["other", "reply"]
    assert await memory.forget("a") == 8
    assert await memory.all("a") == []
    assert len(await memory.all("b")) == 2
    await store.close()
