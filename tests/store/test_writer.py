"""The batched writer: batches, counted drops, and a full flush on stop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from proxy.store.db import LedgerRow, Store
from proxy.store.writer import ROWS_A_STATEMENT, Writer, statements


def row(i: int) -> LedgerRow:
    return LedgerRow(float(i), "c", "default", "m1", 1, 200, 8, 3, 1.5, 0.5, "")


async def test_everything_queued_is_written_by_stop(tmp_path: Path) -> None:
    writer = Writer(size=5000)
    store = await Store.open(str(tmp_path / "s.db"), writer)
    task = asyncio.create_task(writer.run(store.db))
    for i in range(3000):
        assert store.record(row(i))
    writer.stop()
    await task
    assert await store.rows("SELECT COUNT(*) FROM ledger") == [(3000,)]
    assert writer.written == 3000
    assert writer.dropped == 0
    await store.close()


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    writer = Writer(size=10)
    store = await Store.open(str(tmp_path / "s.db"), writer)
    accepted = sum(store.record(row(i)) for i in range(25))
    assert (accepted, writer.dropped) == (10, 15)
    task = asyncio.create_task(writer.run(store.db))
    writer.stop()
    await task
    assert await store.rows("SELECT COUNT(*) FROM ledger") == [(10,)]
    await store.close()


async def test_a_failed_batch_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    writer = Writer(size=100, linger_s=0)
    store = await Store.open(str(tmp_path / "s.db"), writer)
    task = asyncio.create_task(writer.run(store.db))
    writer.put("INSERT INTO no_such_table VALUES (?)", (1,))
    await asyncio.sleep(0.05)
    assert store.record(row(1))
    writer.stop()
    await task
    assert writer.dropped == 1
    assert await store.rows("SELECT COUNT(*) FROM ledger") == [(1,)]
    await store.close()


async def test_failing_writes_are_said_once_and_recovery_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = Writer(size=100, linger_s=0)
    store = await Store.open(str(tmp_path / "s.db"), writer)
    task = asyncio.create_task(writer.run(store.db))
    for i in range(5):  # five failing batches, one after the other
        writer.put("INSERT INTO no_such_table VALUES (?)", (i,))
        await asyncio.sleep(0.02)
    assert store.record(row(1))
    await asyncio.sleep(0.05)
    writer.stop()
    await task
    assert writer.dropped == 5
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "Traceback" not in caplog.text
    assert [r.message for r in caplog.records if "work again" in r.message] == [
        "store writes work again; 5 rows were dropped"
    ]
    await store.close()


async def test_rows_go_in_as_multi_row_inserts_with_every_value_in_place(tmp_path: Path) -> None:
    # More rows than one statement carries, so a full chunk and a remainder are both written.
    writer = Writer(size=5000)
    store = await Store.open(str(tmp_path / "s.db"), writer)
    task = asyncio.create_task(writer.run(store.db))
    for i in range(ROWS_A_STATEMENT * 2 + 7):
        assert store.record(row(i))
    writer.stop()
    await task
    got = await store.rows(
        "SELECT at, client, served, status, input_tokens FROM ledger ORDER BY at"
    )
    assert got == [(float(i), "c", "m1", 200, 8) for i in range(ROWS_A_STATEMENT * 2 + 7)]
    await store.close()


def test_only_plain_inserts_are_merged() -> None:
    plain = "INSERT INTO t (a, b) VALUES (?, ?)"
    assert list(statements(plain, [(1, 2), (3, 4)])) == [
        ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)", [1, 2, 3, 4])
    ]
    # An upsert keeps one statement a row: its conflict clause must see each row in turn.
    upsert = f"{plain} ON CONFLICT (a) DO UPDATE SET b = excluded.b"
    assert list(statements(upsert, [(1, 2), (1, 5)])) == [(upsert, [1, 2]), (upsert, [1, 5])]


def test_an_odd_batch_goes_in_halving_statement_sizes() -> None:
    # Eight sizes at most, whatever the batch: SQLite parses each once and caches it.
    plain = "INSERT INTO t (a) VALUES (?)"
    rows = [(i,) for i in range(ROWS_A_STATEMENT + 64 + 8 + 3)]
    sizes = [len(values) for _, values in statements(plain, rows)]
    assert sizes == [ROWS_A_STATEMENT, 64, 8, 2, 1]
    assert [v for _, values in statements(plain, rows) for v in values] == list(range(len(rows)))
