"""The SQLite database: opening (WAL, migrations), the ledger, state kept across restarts, and
housekeeping. Hot-path writes go through the :class:`~proxy.store.writer.Writer` queue."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from proxy.routing.cooldown import KeyRef
from proxy.store.journal import MARK_UPSERT, Journal
from proxy.store.schema import migrate
from proxy.store.writer import Writer, execute_writes

log = logging.getLogger("l104.store")

LEDGER_INSERT = (
    "INSERT INTO ledger (at, client, requested, served, attempts, status, input_tokens, "
    "output_tokens, latency_ms, ttfb_ms, trace_id, cached_tokens, thoughts_tokens, "
    "tool_use_tokens, audio_tokens, key_index, project, cost_usd, list_cost_usd) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SPENT_ADD = (
    "INSERT INTO spent (client, period, usd, tokens) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (client, period) DO UPDATE SET usd = usd + excluded.usd, "
    "tokens = tokens + excluded.tokens"
)
COOLDOWN_UPSERT = (
    "INSERT INTO cooldowns (responder, model, key_index, until) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (responder, model, key_index) DO UPDATE SET until = excluded.until"
)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    at: float
    client: str
    requested: str
    served: str
    attempts: int
    status: int
    input_tokens: int
    output_tokens: int
    latency_ms: float
    ttfb_ms: float | None
    trace_id: str
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    tool_use_tokens: int = 0
    audio_tokens: int = 0
    key_index: int = -1
    project: str = ""
    cost_usd: float | None = None  # what it costs the client (0 on a free tier)
    list_cost_usd: float | None = None  # what it would cost at the price list


class StoreError(Exception):
    """The store cannot be opened; the message names the path."""


class _Corrupt(Exception):
    """The file is no database, or fails its integrity check."""


async def _connect(path: str) -> aiosqlite.Connection:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the store at {path}: {exc}") from exc
    try:
        async with db.execute("PRAGMA quick_check") as cursor:
            verdict = await cursor.fetchone()
        if verdict is None or verdict[0] != "ok":
            raise _Corrupt(str(verdict[0] if verdict else "no answer to quick_check"))
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")  # WAL keeps this crash-safe
        await db.execute("PRAGMA busy_timeout = 5000")
        await migrate(db)
    except sqlite3.DatabaseError as exc:
        await db.close()
        if isinstance(exc, sqlite3.OperationalError):  # read-only, locked, no space: not corrupt
            raise StoreError(f"cannot open the store at {path}: {exc}") from exc
        raise _Corrupt(str(exc)) from exc
    except _Corrupt:
        await db.close()
        raise
    except RuntimeError as exc:  # a schema newer than this proxy knows
        await db.close()
        raise StoreError(f"cannot open the store at {path}: {exc}") from exc
    except BaseException:
        await db.close()
        raise
    return db


def _move_aside(path: str) -> str:
    aside = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, aside + suffix)
    return aside


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Store:
    def __init__(self, db: aiosqlite.Connection, writer: Writer, path: str = "") -> None:
        self.db = db
        self.writer = writer
        self.path = path
        self.identity = _identity(path) if path else None
        self.written_at_open = writer.written  # the writes before the file at the path

    def gone(self) -> str:
        """Why the file this store writes is no longer at its path ("" while it is): SQLite
        would go on writing to a deleted file's inode, and every row would be lost unseen."""
        if self.identity is None:
            return ""
        now = _identity(self.path)
        if now is None:
            return "the file was deleted"
        if now != self.identity:
            return "the file was replaced"
        return ""

    async def watch_file(self, on_corrupt: str) -> bool:
        """If the file was deleted or replaced: say so once (``writer.notice`` and the log),
        count the writes lost with it as dropped, then make the store again at the path
        (``move_aside``; True: ``self.db`` is new) or keep no rows (``refuse``)."""
        why = self.gone()
        writer = self.writer
        if not why or writer.refusing:
            return False
        # Writes since the file was opened went to a file nobody can read again.
        lost = writer.written - self.written_at_open
        writer.dropped += lost
        what = f"the store at {self.path}: {why} while serving ({lost} writes lost with it)"
        if on_corrupt == "refuse":
            writer.refusing = True
            writer.notice = f"{what}; store.on_corrupt is refuse: no rows are kept"
            log.error("%s", writer.notice)
            return False
        try:
            await self._reopen()
        except StoreError as exc:
            writer.refusing = True
            writer.notice = f"{what}; it could not be made again: {exc}"
            log.error("%s", writer.notice)
            return False
        writer.notice = f"{what}; a new store was made at the same path"
        log.warning("%s", writer.notice)
        return True

    async def _reopen(self) -> None:
        """A fresh database at the path (the old connection closed); the writer and the
        store write there from now on. Raises :class:`StoreError`."""
        old = self.db
        self.db = await _connect(self.path)
        self.identity = _identity(self.path)
        self.written_at_open = self.writer.written
        self.writer.db = self.db
        with contextlib.suppress(sqlite3.Error, ValueError):
            await old.close()

    @classmethod
    async def open(cls, path: str, writer: Writer, on_corrupt: str = "move_aside") -> Store:
        """Open, check (``PRAGMA quick_check``) and migrate the database.

        A corrupt file (or one that is no database) is renamed aside with a warning and a
        fresh store is made, or with ``on_corrupt="refuse"`` it is an error. Any error is a
        :class:`StoreError` naming the path, and the connection is closed first: its thread
        must not keep the process alive.
        """
        try:
            return cls(await _connect(path), writer, path)
        except _Corrupt as corrupt:
            if on_corrupt != "move_aside":
                raise StoreError(f"the store at {path} is corrupt: {corrupt}") from None
            aside = _move_aside(path)
            log.warning("the store at %s was corrupt (%s): moved to %s", path, corrupt, aside)
            try:
                return cls(await _connect(path), writer, path)
            except _Corrupt as again:
                raise StoreError(f"the store at {path} is corrupt: {again}") from None

    async def close(self) -> None:
        if self.writer.journal is not None:
            self.writer.journal.close()
        await self.db.close()

    async def replay(self, journal: Journal) -> int:
        """Write what ``journal`` holds past its committed mark (rows of a process that was
        killed), then start the journal afresh and hand it to the writer. Returns the count."""
        if not journal.claim():
            # Another live process has this journal (the same store.path and worker number):
            # its rows are not ours to replay, and its file is not ours to empty.
            log.error(
                "the store's journal %s is held by another process: this one runs without it "
                "(give each process its own store.path, or run them as --workers)",
                journal.path,
            )
            return 0
        async with self.db.execute("SELECT worker, epoch, offset FROM journal_mark") as cursor:
            marks = {int(w): (str(e), int(o)) for w, e, o in await cursor.fetchall()}
        pending, epoch, size = journal.pending(marks)
        if pending:
            await execute_writes(self.db, pending)
            await self.db.execute(MARK_UPSERT, (journal.worker, epoch, size))
            await self.db.commit()
        journal.start()
        self.writer.journal = journal
        return len(pending)

    def record(self, row: LedgerRow) -> bool:
        """Queue a ledger row; False if the queue was full (the drop is counted)."""
        return self.writer.put(
            LEDGER_INSERT,
            (
                row.at,
                row.client,
                row.requested,
                row.served,
                row.attempts,
                row.status,
                row.input_tokens,
                row.output_tokens,
                row.latency_ms,
                row.ttfb_ms,
                row.trace_id,
                row.cached_tokens,
                row.thoughts_tokens,
                row.tool_use_tokens,
                row.audio_tokens,
                row.key_index,
                row.project,
                row.cost_usd,
                row.list_cost_usd,
            ),
        )

    async def load_spent(self) -> list[tuple[str, str, float, float]]:
        """What each client spent per budget period."""
        rows = await self.rows("SELECT client, period, usd, tokens FROM spent")
        return [(str(c), str(p), float(u), float(t)) for c, p, u, t in rows]

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self.db.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    # State that outlives a restart.

    async def load_counters(self) -> dict[str, Any]:
        return {
            name: orjson.loads(value)
            for name, value in await self.rows("SELECT name, value FROM counters")
        }

    async def save_counters(self, values: dict[str, Any]) -> None:
        await self.db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [(name, orjson.dumps(value).decode()) for name, value in values.items()],
        )
        await self.db.commit()

    def save_cooldown(self, ref: KeyRef, until_wall: float) -> None:
        self.writer.put(COOLDOWN_UPSERT, (*ref, until_wall))

    async def load_cooldowns(self, now_wall: float | None = None) -> list[tuple[KeyRef, float]]:
        """Cooldowns still running: (ref, seconds left)."""
        now_wall = time.time() if now_wall is None else now_wall
        found = await self.rows(
            "SELECT responder, model, key_index, until FROM cooldowns WHERE until > ?",
            (now_wall,),
        )
        return [((r, m, int(k)), until - now_wall) for r, m, k, until in found]

    async def load_day_counts(self) -> list[tuple[KeyRef, str, int, int]]:
        """(ref, Pacific day, requests sent that day, learned per-day limit) as saved."""
        found = await self.rows(
            "SELECT responder, model, project, day, used, per_day FROM day_counts"
        )
        return [((r, m, int(p)), day, int(u), int(d)) for r, m, p, day, u, d in found]

    async def save_day_counts(self, counts: Iterable[tuple[KeyRef, str, int, int]]) -> None:
        await self.db.executemany(
            "INSERT INTO day_counts (responder, model, project, day, used, per_day) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (responder, model, project) DO UPDATE "
            "SET day = excluded.day, used = excluded.used, per_day = excluded.per_day",
            [(*ref, day, used, per_day) for ref, day, used, per_day in counts],
        )
        await self.db.commit()

    # Housekeeping.

    async def prune(self, retention_days: float, now_wall: float | None = None) -> int:
        """Delete ledger rows, turns and ended cooldowns older than the retention."""
        now_wall = time.time() if now_wall is None else now_wall
        edge = now_wall - retention_days * 86_400
        deleted = 0
        for sql in ("DELETE FROM ledger WHERE at < ?", "DELETE FROM turns WHERE at < ?"):
            async with self.db.execute(sql, (edge,)) as cursor:
                deleted += cursor.rowcount
        await self.db.execute("DELETE FROM cooldowns WHERE until < ?", (now_wall,))
        await self.db.commit()
        return deleted

    async def checkpoint(self) -> None:
        await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self.db.execute("PRAGMA optimize")
