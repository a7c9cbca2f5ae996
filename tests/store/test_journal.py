"""The writer's journal with real SQLite: what was queued and not committed is written at the
next start, exactly once; once everything is committed the file is emptied."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from proxy.store import writer as writer_module
from proxy.store.db import LedgerRow, Store
from proxy.store.journal import Journal
from proxy.store.writer import Writer


def row(i: int) -> LedgerRow:
    return LedgerRow(float(i), "c", "default", "m1", 1, 200, 8, 3, 1.5, 0.5, "")


async def _count(store: Store) -> int:
    return int((await store.rows("SELECT COUNT(*) FROM ledger"))[0][0])


async def test_queued_rows_of_a_killed_process_are_written_once_at_the_next_start(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    journal_path = f"{path}-queue-0"
    writer = Writer(linger_s=0)
    store = await Store.open(path, writer)
    assert await store.replay(Journal(journal_path)) == 0
    task = asyncio.create_task(writer.run(store.db))
    for i in range(10):
        assert store.record(row(i))
    await asyncio.sleep(0.1)  # committed: the journal holds nothing any more
    assert await _count(store) == 10
    size = await asyncio.to_thread(lambda: Path(journal_path).stat().st_size)
    assert size == 33  # just the epoch line
    # Five more are queued, and the process "dies" before the writer runs again.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for i in range(10, 15):
        assert store.record(row(i))
    await store.close()
    for attempt in range(2):  # the second start finds nothing more to write
        store = await Store.open(path, Writer())
        assert await store.replay(Journal(journal_path)) == (5 if attempt == 0 else 0)
        assert await _count(store) == 15
        await store.close()


async def test_a_journal_written_past_a_commit_replays_only_the_rest(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    journal_path = f"{path}-queue-3"
    writer = Writer(linger_s=0)
    store = await Store.open(path, writer)
    await store.replay(Journal(journal_path, worker=3))
    task = asyncio.create_task(writer.run(store.db))
    for i in range(4):
        store.record(row(i))
    await asyncio.sleep(0.05)
    # One is committed-to-be, then a second arrives while the batch is not yet committed:
    # the journal is not emptied, and the mark says how far it is committed.
    store.record(row(100))
    store.record(row(101))
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await store.close()
    store = await Store.open(path, Writer())
    replayed = await store.replay(Journal(journal_path, worker=3))
    assert await _count(store) == 6
    assert replayed in (0, 1, 2)  # whatever the writer had not committed, and nothing twice
    await store.close()


async def test_under_a_load_that_never_stops_the_journal_stays_small_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The queue never runs empty, so the journal is never emptied: it is rewritten instead.
    monkeypatch.setattr(writer_module, "COMPACT_BYTES", 16 * 1024)
    path = str(tmp_path / "s.db")
    journal_path = Path(f"{path}-queue-0")
    writer = Writer(linger_s=0.02)
    store = await Store.open(path, writer)
    await store.replay(Journal(str(journal_path)))
    task = asyncio.create_task(writer.run(store.db))
    sizes: list[int] = []
    sent = 0
    try:
        for _ in range(150):
            for _ in range(20):
                assert store.record(row(sent))
                sent += 1
            sizes.append(os.stat(journal_path).st_size)
            await asyncio.sleep(0.005)
        # 3,000 rows of about 250 bytes went through the journal; it never held much more
        # than the threshold (without the rewrite it reached 100 KiB here).
        assert max(sizes) < 64 * 1024
    finally:
        # The process "dies" with rows queued (or the test failed: its thread must not stay).
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
    # The next start writes each row that was not committed, once.
    store = await Store.open(path, Writer())
    await store.replay(Journal(str(journal_path)))
    got = await store.rows("SELECT at FROM ledger ORDER BY at")
    assert got == [(float(i),) for i in range(sent)]
    await store.close()


def test_rows_are_in_the_file_as_soon_as_appended_and_one_cut_short_is_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j"
    journal = Journal(str(path))
    journal.start()
    ends = [journal.append("INSERT INTO t (a) VALUES (?)", (i,)) for i in range(3)]
    # Another reader of the file (the next start, after a SIGKILL) sees every row at once.
    assert path.stat().st_size == ends[-1] == journal.size
    rows, epoch, size = Journal(str(path)).pending({})
    assert rows == [("INSERT INTO t (a) VALUES (?)", (i,)) for i in range(3)]
    assert (epoch, size) == (journal.epoch, ends[-1])
    # A row cut short by a kill is skipped, and so is the zero tail an older version left.
    big = journal.append("INSERT INTO t (a) VALUES (?)", ("x" * 5000,))
    with open(path, "r+b") as f:
        f.seek(big - 10)
        f.write(b"\0" * 10 + b"\0" * 4096)
    assert len(Journal(str(path)).pending({})[0]) == 3
    journal.close()
    assert path.stat().st_size == big


def test_a_journal_that_cannot_be_written_says_so_once_and_the_process_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j"
    journal = Journal(str(path))
    journal.start()
    journal.append("INSERT INTO t (a) VALUES (?)", (0,))

    def refused(fd: int, data: bytes, offset: int) -> int:
        raise PermissionError(1, "Operation not permitted")  # as chattr +i says it

    monkeypatch.setattr(os, "pwrite", refused)
    for i in range(1, 4):
        journal.append("INSERT INTO t (a) VALUES (?)", (i,))
    assert journal.failing
    assert caplog.text.count("cannot be written") == 1
    monkeypatch.undo()
    journal.append("INSERT INTO t (a) VALUES (?)", (4,))
    assert not journal.failing
    assert "works again" in caplog.text
    journal.close()


async def test_a_journal_another_process_holds_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "s.db")
    holder = Journal(f"{path}-queue-0")  # as a live proxy on the same store.path would
    holder.start()
    holder.append("INSERT INTO t (a) VALUES (?)", (1,))
    assert not Journal(f"{path}-queue-0").claim()
    writer = Writer(linger_s=0)
    store = await Store.open(path, writer)
    assert await store.replay(Journal(f"{path}-queue-0")) == 0  # not its rows to write
    assert writer.journal is None
    assert "held by another process" in caplog.text
    # The holder's file is untouched, and this store still writes its own rows.
    assert [p for _, p in Journal(f"{path}-queue-0").pending({})[0]] == [(1,)]
    task = asyncio.create_task(writer.run(store.db))
    assert store.record(row(7))
    writer.stop()
    await task
    assert await _count(store) == 1
    await store.close()
    holder.close()
    assert Journal(f"{path}-queue-0").claim()  # released with the holder
