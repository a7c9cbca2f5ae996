"""Who holds each stateful upstream resource: a file, a cached content, a batch, an operation,
an interaction, a file search store, a token (:mod:`proxy.resources.kinds`) is bound to the
Google project of the key that made it, and belongs to the client that made it through the proxy.

The map is read from memory; with a store it is written through (awaited, so an answered
upload is on disk) and a miss is looked up in the store before it counts as unknown, so workers
sharing one store agree. Keys are named by a digest (:func:`key_id`), never stored.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

import aiosqlite

from proxy.resources.kinds import BY_TAG, parents, prefixes

log = logging.getLogger("l104.resources")


def key_id(key: str) -> str:
    """A stable name for an upstream key that does not reveal it."""
    return hashlib.sha256(b"l104-key-id\0" + key.encode()).hexdigest()[:24]


def wall_time(stamp: object) -> float:
    """A Gemini timestamp (``2026-11-28T00:00:00.123Z``) as wall time; 0.0 if there is none."""
    if not isinstance(stamp, str) or not stamp:
        return 0.0
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class Holder:
    """Where a resource lives: ``responder`` and key ``key_index``; ``client`` owns it. ``kind``
    is its kind's tag. A cached content also names the ``model`` it was made for (a batch, an
    interaction: the model that took it). ``expires`` is wall time (0: unknown)."""

    kind: str
    responder: str
    key_index: int
    client: str
    model: str = ""
    expires: float = 0.0
    created: float = 0.0
    settled: bool = False  # a batch whose usage the ledger has counted


_COLUMNS = "name, kind, responder, key_id, client, model, expires, created, settled"
Row = tuple[object, ...]  # the columns above, in order


class RemoteMap(Protocol):
    """The map kept for the whole fleet (:class:`proxy.shared.fleet.RemoteOwners`)."""

    async def get(self, name: str) -> Row | None: ...
    async def put(self, name: str, row: Row) -> None: ...
    async def delete(self, name: str) -> None: ...
    async def rows(self) -> list[Row]: ...


class Owners:
    """The ownership map. ``keys`` gives each responder's key ids, by index."""

    def __init__(
        self,
        keys: Mapping[str, tuple[str, ...]],
        db: aiosqlite.Connection | None,
        remote: RemoteMap | None = None,
    ) -> None:
        self.keys = keys
        self.db = db
        self.remote = remote  # with store.shared: every host's resources
        self.held: dict[str, Holder] = {}

    def _holder(self, row: tuple[object, ...]) -> tuple[str, Holder] | None:
        # A row the fleet's map kept from before ``settled`` has eight columns.
        name, kind, responder, kid, client, model, expires, created, *rest = row
        ids = self.keys.get(str(responder), ())
        if kid not in ids:
            return None  # that key is no longer configured: the resource cannot be reached
        return str(name), Holder(
            str(kind),
            str(responder),
            ids.index(str(kid)),
            str(client),
            str(model),
            float(expires),  # type: ignore[arg-type]
            float(created),  # type: ignore[arg-type]
            bool(rest and rest[0]),
        )

    def rekeyed(self, keys: Mapping[str, tuple[str, ...]]) -> Owners:
        """The same map for a reloaded config's keys: a resource follows its key to its new
        place in the list, and is dropped from memory if its key is gone (the store keeps it,
        so putting the key back restores it)."""
        out = Owners(keys, self.db, self.remote)
        for name, holder in self.held.items():
            old = self.keys.get(holder.responder, ())
            new = keys.get(holder.responder, ())
            kid = old[holder.key_index] if holder.key_index < len(old) else None
            if kid in new:
                out.held[name] = replace(holder, key_index=new.index(kid))
        return out

    async def load(self) -> int:
        """Read the map from the store; returns how many resources are held."""
        if self.db is None:
            return 0
        async with self.db.execute(f"SELECT {_COLUMNS} FROM resources") as cursor:  # noqa: S608
            for row in await cursor.fetchall():
                found = self._holder(tuple(row))
                if found is not None:
                    self.held[found[0]] = found[1]
        return len(self.held)

    async def add(self, name: str, holder: Holder) -> None:
        """Record ``name`` (written through to the store and the fleet's map). Without an
        expiry, the kind's usual life is assumed, so that maintenance forgets it in time."""
        if not holder.created:
            holder = replace(holder, created=time.time())
        if not holder.expires:
            kind = BY_TAG.get(holder.kind)
            if kind is not None and kind.ttl_s:
                holder = replace(holder, expires=holder.created + kind.ttl_s)
        self.held[name] = holder
        kid = self.keys[holder.responder][holder.key_index]
        row: Row = (
            name,
            holder.kind,
            holder.responder,
            kid,
            holder.client,
            holder.model,
            holder.expires,
            holder.created,
            int(holder.settled),
        )
        if self.db is not None:
            await self.db.execute(
                f"INSERT OR REPLACE INTO resources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                row,
            )
            await self.db.commit()
        if self.remote is not None:
            await self.remote.put(name, row)

    async def drop(self, name: str) -> None:
        self.held.pop(name, None)
        if self.db is not None:
            await self.db.execute("DELETE FROM resources WHERE name = ?", (name,))
            await self.db.commit()
        if self.remote is not None:
            await self.remote.delete(name)

    async def find(self, name: str) -> Holder | None:
        """The holder of ``name``: from memory, else from the store (another worker made it),
        else from the fleet's map (another host made it)."""
        holder = self.held.get(name)
        if holder is not None:
            return holder
        row: Row | None = None
        if self.db is not None:
            async with self.db.execute(
                f"SELECT {_COLUMNS} FROM resources WHERE name = ?",  # noqa: S608
                (name,),
            ) as cursor:
                found_row = await cursor.fetchone()
            row = tuple(found_row) if found_row is not None else None
        if row is None and self.remote is not None:
            row = await self.remote.get(name)
        found = self._holder(row) if row is not None else None
        if found is None:
            return None
        self.held[name] = found[1]
        return found[1]

    async def holder_of(self, name: str, *, any_prefix: bool = False) -> tuple[str, Holder] | None:
        """The record that holds ``name``: its own, or the nearest resource it lies under (a
        store's documents and operations are the store's), with that record's name. With
        ``any_prefix``, any shorter name counts, of a kind the proxy knows or not (what a
        passthrough path made)."""
        for candidate in prefixes(name) if any_prefix else (name, *parents(name)):
            holder = await self.find(candidate)
            if holder is not None:
                return candidate, holder
        return None

    async def refresh(self) -> None:
        """Take in the fleet's map (before listing a client's resources)."""
        if self.remote is None:
            return
        for row in await self.remote.rows():
            found = self._holder(row)
            if found is not None:
                self.held[found[0]] = found[1]

    def of_client(self, client: str, kind: str) -> list[str]:
        """The names ``client`` holds of ``kind``, oldest first."""
        mine = [
            (h.created, n) for n, h in self.held.items() if h.client == client and h.kind == kind
        ]
        return [n for _, n in sorted(mine)]

    def counts(self) -> dict[str, int]:
        """How many resources are held, by kind (``files``, ``cached_contents``, …)."""
        out = {"files": 0, "cached_contents": 0}
        for holder in self.held.values():
            kind = BY_TAG.get(holder.kind)
            label = kind.counted if kind is not None else holder.kind
            out[label] = out.get(label, 0) + 1
        return out

    async def prune(self, now_wall: float | None = None) -> int:
        """Forget resources past their expiry; returns how many."""
        now_wall = time.time() if now_wall is None else now_wall
        gone = [n for n, h in self.held.items() if h.expires and h.expires < now_wall]
        for name in gone:
            del self.held[name]
        if self.db is not None:
            await self.db.execute(
                "DELETE FROM resources WHERE expires > 0 AND expires < ?", (now_wall,)
            )
            await self.db.commit()
        return len(gone)
