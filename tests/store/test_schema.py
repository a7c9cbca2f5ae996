"""Migrations with PRAGMA user_version."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from proxy.store.schema import VERSION, migrate


async def test_migrates_a_new_database_once(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "s.db") as db:
        assert await migrate(db) == 0
        async with db.execute("PRAGMA user_version") as c:
            assert (await c.fetchone()) == (VERSION,)
        assert await migrate(db) == VERSION  # nothing left to do
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as c:
            tables = {row[0] for row in await c.fetchall()}
    assert {"ledger", "turns", "counters", "cooldowns"} <= tables


async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "s.db") as db:
        await db.execute(f"PRAGMA user_version = {VERSION + 1}")
        with pytest.raises(RuntimeError, match="schema version"):
            await migrate(db)
