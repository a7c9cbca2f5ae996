"""The ownership map: written through to SQLite, read back by another map, keys never stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from proxy.resources import kinds
from proxy.resources.owners import Holder, Owners, key_id, wall_time
from proxy.store.schema import migrate

FILE, CACHE = kinds.FILE.tag, kinds.CACHE.tag

KEYS = {"up": (key_id("secret-key-a"), key_id("secret-key-b"))}


async def test_written_through_and_found_by_another_map(tmp_path: Path) -> None:
    db_path = tmp_path / "l104.db"
    async with aiosqlite.connect(db_path) as db:
        await migrate(db)
        first = Owners(KEYS, db)
        await first.add("files/a", Holder(FILE, "up", 1, "alice", expires=2e9))
        await first.add("cachedContents/c", Holder(CACHE, "up", 0, "bob", "m2", 2e9))
        second = Owners(KEYS, db)
        found = await second.find("files/a")
        assert found is not None
        assert (found.responder, found.key_index, found.client) == ("up", 1, "alice")
        assert await second.load() == 2
        assert second.of_client("bob", CACHE) == ["cachedContents/c"]
        assert second.counts() == {"files": 1, "cached_contents": 1}
        await second.drop("files/a")
        assert await Owners(KEYS, db).find("files/a") is None
    dump = "\n".join(sqlite3.connect(db_path).iterdump())
    assert "secret-key" not in dump  # the store names keys by digest only


async def test_a_key_no_longer_configured_makes_its_resources_unknown(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "l104.db") as db:
        await migrate(db)
        await Owners(KEYS, db).add("files/a", Holder(FILE, "up", 1, "alice"))
        fewer = Owners({"up": (key_id("secret-key-a"),)}, db)
        assert await fewer.find("files/a") is None
        moved = Owners({"up": (key_id("secret-key-b"), key_id("secret-key-a"))}, db)
        found = await moved.find("files/a")
        assert found is not None
        assert found.key_index == 0  # found by the key, wherever it sits in the pool now


async def test_prune_forgets_what_expired(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "l104.db") as db:
        await migrate(db)
        owners = Owners(KEYS, db)
        await owners.add("cachedContents/old", Holder(CACHE, "up", 0, "a", "m1", expires=100.0))
        await owners.add("cachedContents/new", Holder(CACHE, "up", 0, "a", "m1", expires=300.0))
        await owners.add("files/unknown", Holder(FILE, "up", 0, "a"))
        assert await owners.prune(now_wall=200.0) == 1
        assert sorted(owners.held) == ["cachedContents/new", "files/unknown"]
        assert await Owners(KEYS, db).load() == 2


def test_wall_time_reads_gemini_timestamps() -> None:
    assert wall_time("1970-01-01T00:01:40Z") == 100.0
    assert wall_time("1970-01-01T00:01:40.500000Z") == 100.5
    assert wall_time("soon") == 0.0
    assert wall_time(None) == 0.0


async def test_a_reload_moves_resources_with_their_keys() -> None:
    owners = Owners(KEYS, None)
    await owners.add("files/a", Holder(FILE, "up", 1, "alice"))
    await owners.add("files/b", Holder(FILE, "up", 0, "bob"))
    _, kept = KEYS["up"]  # secret-key-b stays, secret-key-a goes
    moved = owners.rekeyed({"up": (key_id("secret-key-c"), kept)})
    found = await moved.find("files/a")
    assert found is not None
    assert found.key_index == 1  # the key it was made with, in its new place
    assert await moved.find("files/b") is None  # its key is gone from the config


async def test_each_kind_without_an_expiry_gets_its_usual_life(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "l104.db") as db:
        await migrate(db)
        owners = Owners(KEYS, db)
        made = 1_000_000.0
        for name, tag in (
            ("interactions/i1", kinds.INTERACTION.tag),
            ("models/veo/operations/o1", kinds.OPERATION.tag),
            ("batches/b1", kinds.BATCH.tag),
            ("auth_tokens/t1", kinds.TOKEN.tag),
        ):
            await owners.add(name, Holder(tag, "up", 0, "alice", created=made))
        life = {n: h.expires - made if h.expires else 0.0 for n, h in owners.held.items()}
        assert life == {
            "interactions/i1": 55 * 86_400,
            "models/veo/operations/o1": 30 * 86_400,
            "batches/b1": 0.0,  # until it is deleted, or answers 403/404
            "auth_tokens/t1": 86_400,
        }
        assert await owners.prune(now_wall=made + 40 * 86_400) == 2
        assert sorted(owners.held) == ["batches/b1", "interactions/i1"]
        assert owners.counts() == {
            "files": 0,
            "cached_contents": 0,
            "batches": 1,
            "interactions": 1,
        }


async def test_a_settled_batch_stays_settled_and_old_fleet_rows_still_read(
    tmp_path: Path,
) -> None:
    async with aiosqlite.connect(tmp_path / "l104.db") as db:
        await migrate(db)
        await Owners(KEYS, db).add(
            "batches/b1", Holder(kinds.BATCH.tag, "up", 1, "a", settled=True)
        )
        found = await Owners(KEYS, db).find("batches/b1")
        assert found is not None
        assert found.settled
    # A row Redis kept from before the ``settled`` column: eight fields.
    old = ("files/x", FILE, "up", key_id("secret-key-b"), "alice", "", 0.0, 1.0)
    held = Owners(KEYS, None)._holder(old)
    assert held is not None
    assert (held[1].key_index, held[1].settled) == (1, False)
