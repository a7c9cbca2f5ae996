"""Conversation memory: the turns of a session, read back within a turn and token budget."""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy.store.db import Store


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # user | model
    text: str
    tokens: int
    at: float


class Memory:
    def __init__(self, store: Store, max_turns: int, max_tokens: int) -> None:
        self.store = store
        self.max_turns = max_turns
        self.max_tokens = max_tokens

    async def all(self, session: str) -> list[Turn]:
        rows = await self.store.rows(
            "SELECT role, text, tokens, at FROM turns WHERE session = ? ORDER BY seq", (session,)
        )
        return [Turn(r, t, int(n), float(a)) for r, t, n, a in rows]

    async def recent(self, session: str) -> list[Turn]:
        """The latest turns that fit both budgets, oldest first, starting on a user turn."""
        rows = await self.store.rows(
            "SELECT role, text, tokens, at FROM turns WHERE session = ? ORDER BY seq DESC LIMIT ?",
            (session, self.max_turns),
        )
        kept: list[Turn] = []
        spent = 0
        for role, text, tokens, at in rows:
            if spent + tokens > self.max_tokens:
                break
            spent += tokens
            kept.append(Turn(role, text, int(tokens), float(at)))
        kept.reverse()
        while kept and kept[0].role != "user":  # Gemini wants a conversation to open with the user
            kept.pop(0)
        return kept

    async def add(self, session: str, turns: list[tuple[str, str, int]]) -> None:
        now = time.time()
        async with self.store.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE session = ?", (session,)
        ) as cursor:
            row = await cursor.fetchone()
        seq = int(row[0]) if row else 0
        await self.store.db.executemany(
            "INSERT INTO turns (session, seq, role, text, tokens, at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (session, seq + i + 1, role, text, tokens, now)
                for i, (role, text, tokens) in enumerate(turns)
            ],
        )
        await self.store.db.commit()

    async def forget(self, session: str) -> int:
        async with self.store.db.execute("DELETE FROM turns WHERE session = ?", (session,)) as c:
            deleted = c.rowcount
        await self.store.db.commit()
        return deleted
