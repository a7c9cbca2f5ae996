"""Schema migrations, versioned with ``PRAGMA user_version``.

Each entry of :data:`MIGRATIONS` takes the schema from version ``i`` to ``i + 1``; a database is
brought forward one step at a time, each step in its own transaction.
"""

from __future__ import annotations

import aiosqlite

MIGRATIONS: tuple[str, ...] = (
    # 1: the ledger, conversation turns, saved counters and cooldowns.
    """
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        client TEXT NOT NULL,
        requested TEXT NOT NULL,
        served TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        status INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        latency_ms REAL NOT NULL,
        ttfb_ms REAL,
        trace_id TEXT NOT NULL
    );
    CREATE INDEX ledger_at ON ledger (at);
    CREATE TABLE turns (
        session TEXT NOT NULL,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (session, seq)
    );
    CREATE INDEX turns_at ON turns (at);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE cooldowns (
        responder TEXT NOT NULL,
        model TEXT NOT NULL,
        key_index INTEGER NOT NULL,
        until REAL NOT NULL,
        PRIMARY KEY (responder, model, key_index)
    );
    """,
    # 2: who holds each stateful upstream resource (files, cached contents). ``key_id`` is a
    # digest naming the key, never the key itself.
    """
    CREATE TABLE resources (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        responder TEXT NOT NULL,
        key_id TEXT NOT NULL,
        client TEXT NOT NULL,
        model TEXT NOT NULL,
        expires REAL NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX resources_client ON resources (client, kind, created);
    """,
    # 3: requests sent per (responder, model, project) on a Pacific day, and the per-day limit
    # learned for it, so a restart keeps counting where it was.
    """
    CREATE TABLE day_counts (
        responder TEXT NOT NULL,
        model TEXT NOT NULL,
        project INTEGER NOT NULL,
        day TEXT NOT NULL,
        used INTEGER NOT NULL,
        per_day INTEGER NOT NULL,
        PRIMARY KEY (responder, model, project)
    );
    """,
    # 4: how far each worker's journal is committed (see proxy.store.journal).
    """
    CREATE TABLE journal_mark (
        worker INTEGER PRIMARY KEY,
        epoch TEXT NOT NULL,
        offset INTEGER NOT NULL
    );
    """,
    # 5: a finished batch's usage is read into the ledger once: ``settled`` says it was.
    """
    ALTER TABLE resources ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: what each answer cost: the token kinds that price differently, the key and project
    # that answered, and the cost (NULL: rows from before, or a model with no price).
    """
    ALTER TABLE ledger ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN thoughts_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN tool_use_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN audio_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN key_index INTEGER NOT NULL DEFAULT -1;
    ALTER TABLE ledger ADD COLUMN project TEXT NOT NULL DEFAULT '';
    ALTER TABLE ledger ADD COLUMN cost_usd REAL;
    ALTER TABLE ledger ADD COLUMN list_cost_usd REAL;
    """,
    # 7: what each client spent per budget period (``day:2026-12-03``, ``month:2026-12``).
    """
    CREATE TABLE spent (
        client TEXT NOT NULL,
        period TEXT NOT NULL,
        usd REAL NOT NULL,
        tokens INTEGER NOT NULL,
        PRIMARY KEY (client, period)
    );
    """,
)

VERSION = len(MIGRATIONS)


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring ``db`` to :data:`VERSION`; returns the version it was at."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    start = int(row[0]) if row else 0
    if start > VERSION:
        raise RuntimeError(f"the store has schema version {start}; this proxy knows {VERSION}")
    for version in range(start, VERSION):
        await db.executescript(
            f"BEGIN; {MIGRATIONS[version]}; PRAGMA user_version = {version + 1}; COMMIT;"
        )
    return start
