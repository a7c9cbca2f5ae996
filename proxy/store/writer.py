"""Writes off the hot path: a bounded queue drained in batched transactions.

When the queue is full a write is dropped and *counted* (``ledger_dropped`` in ``/metrics``),
never lost silently and never allowed to slow a request. On stop, everything queued is written.
With a :class:`~proxy.store.journal.Journal`, each write is also appended to it as it is queued,
so a SIGKILL loses nothing that was queued (the next start writes it).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

import aiosqlite

from proxy.store.journal import COMPACT_BYTES, MARK_UPSERT, Journal

log = logging.getLogger("l104.store")

Write = tuple[str, tuple[Any, ...], int]  # sql, params, the journal's offset past it
BATCH = 512
# Rows a multi-row INSERT carries at most: 128 of the ledger's 11 columns stay far under
# SQLite's limit of 32,766 bound values.
ROWS_A_STATEMENT = 128
_PLAIN_INSERT = re.compile(r"INSERT INTO \w+ \([\w, ]+\) VALUES (\((?:\?, )*\?\))")


def statements(sql: str, rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, list[Any]]]:
    """``sql`` over ``rows`` as few statements: a plain ``INSERT … VALUES (?, …)`` becomes
    multi-row INSERTs of :data:`ROWS_A_STATEMENT` rows and then of halving sizes (64, 32 … 1)
    for the rest, anything else one statement a row.

    Why not ``executemany``: it releases and retakes the GIL around every row, and while the
    event loop is busy each retake waits for a switch interval; measured with a busy loop, 65
    µs of CPU a row and seconds of wall time a batch, against 5 µs for one statement. Why the
    halving sizes: a statement of any other row count is new text that SQLite parses again
    (the parse of a batch's odd-sized tail cost about 3,000 instructions a row); eight sizes
    stay in the connection's statement cache.
    """
    plain = _PLAIN_INSERT.fullmatch(sql)
    if plain is None:
        for row in rows:
            yield sql, list(row)
        return
    one = plain.group(1)
    start, size = 0, ROWS_A_STATEMENT
    while start < len(rows):
        if len(rows) - start < size:
            size //= 2
            continue
        chunk = rows[start : start + size]
        start += size
        values = ", ".join([one] * size)
        yield f"{sql[: plain.start(1)]}{values}", list(chain.from_iterable(chunk))


async def execute_writes(
    db: aiosqlite.Connection, writes: Iterable[tuple[str, tuple[Any, ...]]]
) -> None:
    """``writes`` (sql, params), grouped by statement and sent as :func:`statements` makes
    them; the caller commits."""
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for sql, params in writes:
        groups.setdefault(sql, []).append(params)
    for sql, rows in groups.items():
        for statement, values in statements(sql, rows):
            await db.execute(statement, values)


class Writer:
    # A batch gathers for up to a quarter of a second: the SQLite thread then competes with
    # the event loop for the GIL five times a second rather than twenty, which the layer
    # budget measured at 104 -> 32 µs of CPU a request. The journal keeps what waits safe.
    def __init__(self, size: int = 10_000, linger_s: float = 0.25) -> None:
        self.linger_s = linger_s
        self.size = size
        # A plain deque: the writer is the only reader, and asyncio.Queue's put and get (half a
        # dozen Python calls each) cost more than the rest of a row's way to the journal.
        self.queue: deque[Write] = deque()
        self.dropped = 0
        self.written = 0
        self.stopping = False
        self.failing = False  # the last batch failed: said once, until a batch works again
        self._wake = asyncio.Event()
        self._asleep = False  # the writer waits on _wake: a put must set it
        self.journal: Journal | None = None  # set once the store is open
        self.db: aiosqlite.Connection | None = None  # where batches go (a reopen changes it)
        self.refusing = False  # the store's file was lost and not reopened: rows are dropped
        self.notice = ""  # what happened to the store's file, for /health

    def put(self, sql: str, params: tuple[Any, ...]) -> bool:
        """Queue a write (and journal it); False if the queue was full (the drop is counted)."""
        if len(self.queue) >= self.size:  # dropped: so not journaled either
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("store queue full: %d writes dropped so far", self.dropped)
            return False
        end = self.journal.append(sql, params) if self.journal is not None else 0
        self.queue.append((sql, params, end))
        if self._asleep:
            self._asleep = False
            self._wake.set()
        return True

    def _batch(self) -> list[Write]:
        take = self.queue.popleft
        return [take() for _ in range(min(BATCH, len(self.queue)))]

    async def _write(self, db: aiosqlite.Connection, batch: list[Write]) -> None:
        journal = self.journal
        try:
            await execute_writes(db, ((sql, params) for sql, params, _ in batch))
            if journal is not None:
                # In the same transaction: the rows and how far the journal is committed.
                await db.execute(MARK_UPSERT, (journal.worker, journal.epoch, batch[-1][2]))
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        self.written += len(batch)
        if journal is None:
            return
        if not self.queue and journal.size == batch[-1][2]:
            journal.rotate()  # everything in it is committed (and nothing ran in between)
        elif journal.size > COMPACT_BYTES:
            self._compact(journal)

    def _compact(self, journal: Journal) -> None:
        """Rewrite the journal with only what is still queued: under a steady load the queue
        never runs empty, and the file would otherwise grow for as long as the load lasts."""
        queued = list(self.queue)
        ends = journal.rewrite([(sql, params) for sql, params, _ in queued])
        self.queue = deque(
            (sql, params, end) for (sql, params, _), end in zip(queued, ends, strict=True)
        )

    async def run(self, db: aiosqlite.Connection) -> None:
        """Write batches as they come; after :meth:`stop`, write what is queued and return.

        It is stopped, never cancelled, so no batch is cut off half-written.
        """
        self.db = db
        while True:
            if not self.queue:
                if self.stopping:
                    return
                self._wake.clear()
                self._asleep = True
                await self._wake.wait()
                continue
            if len(self.queue) < BATCH and not self.stopping:
                # Let a batch gather: one transaction for many rows costs the loop far less.
                await asyncio.sleep(self.linger_s)
            batch = self._batch()
            if self.refusing:
                self.dropped += len(batch)
                continue
            try:
                assert self.db is not None
                await self._write(self.db, batch)
            except Exception as exc:
                # A failed batch (disk full, a locked file …) is counted; the writer keeps going,
                # so one bad moment does not stop the ledger for good. Said once per change of
                # state, not once per batch: a full disk must not also flood the log.
                self.dropped += len(batch)
                if not self.failing:
                    self.failing = True
                    log.error(
                        "store writes fail (%s); rows are counted as dropped until they work", exc
                    )
                if self.stopping:
                    return  # nothing more will succeed now: shutdown must not wait on it
                await asyncio.sleep(self.linger_s)
            else:
                if self.failing:
                    self.failing = False
                    log.warning("store writes work again; %d rows were dropped", self.dropped)

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()
