"""The writer's journal: every queued write is appended to a file before the request's answer
goes out, so a process killed with SIGKILL loses no row the store had queued.

The batched writer commits rows to SQLite some milliseconds later. A ``write()`` that returned is
in the kernel's page cache and survives the process (not a power cut: that is what SQLite's own
``synchronous`` setting is about). Each commit records, in the same transaction, how far into the
journal it reached (``journal_mark``: an epoch and an offset), so a row is in the ledger exactly
once: at start, what the journal holds past the mark is written, and the file starts afresh.
When every row is committed, the file is emptied under a new epoch. Under a load that never
lets the queue run empty, a file past :data:`COMPACT_BYTES` is instead rewritten under a new
epoch with only the rows still queued (and swapped in with one rename): it never grows much past
what is in flight.

Each row is written with ``pwrite``. A shared memory map saved that system call (about 2 µs a
row here), but a store into a mapped page is not a call that can fail: once the file could no
longer be written (``chattr +i``, a file system gone read-only), the kernel answered the next
store into a page it had written back with SIGBUS, and the process died with no line in the
log. A ``pwrite`` that fails is an error the journal says once and survives. Files of older
versions may end in zeros (their allocated tail); a reader drops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from typing import Any

import orjson

log = logging.getLogger("l104.store")

Write = tuple[str, tuple[Any, ...]]
COMPACT_BYTES = 4 * 1024 * 1024
MARK_UPSERT = "INSERT OR REPLACE INTO journal_mark (worker, epoch, offset) VALUES (?, ?, ?)"


class Journal:
    """An append-only file of writes, in epochs. ``worker`` names this process among those that
    share one store (each has its own file)."""

    def __init__(self, path: str, worker: int = 0) -> None:
        self.path = path
        self.worker = worker
        self.epoch = ""
        self.size = 0
        self.failing = False
        self._fd = -1

    def claim(self) -> bool:
        """Open the file and lock it for this process; False if another process holds it.

        A second process on the same file would replay the first one's rows, and its fresh
        start would cut the file under the first one's rows."""
        if self._fd < 0:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
        return True

    def pending(self, marks: dict[int, tuple[str, int]]) -> tuple[list[Write], str, int]:
        """The writes in the file that ``marks`` (worker -> (epoch, offset), from the store)
        does not cover: those of a process that stopped before they were committed. Also the
        file's epoch and size, to mark them committed once they are."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return [], "", 0
        data = data.rstrip(b"\0")  # the allocated tail that was never written
        head, _, body = data.partition(b"\n")
        epoch = head.decode(errors="replace")
        start = 0
        mark = marks.get(self.worker)
        if mark is not None and mark[0] == epoch:
            start = max(0, mark[1] - len(head) - 1)
        out: list[Write] = []
        for line in body[start:].splitlines():
            try:
                sql, params = orjson.loads(line)
                out.append((str(sql), tuple(params)))
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue  # a line cut short: its write never returned, so no answer went out
        return out, epoch, len(data)

    def start(self) -> None:
        """Open the file (see :meth:`claim`), emptied, under a new epoch."""
        if not self.claim():
            raise OSError(f"the journal {self.path} is held by another process")
        self.rotate()

    def rotate(self) -> None:
        """Empty the file under a new epoch (every row in it is committed)."""
        self.epoch = uuid.uuid4().hex
        head = self.epoch.encode() + b"\n"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, head, 0)
            self.size = len(head)
        except OSError as exc:
            self._failed(exc)

    def rewrite(self, writes: list[Write]) -> list[int]:
        """Replace the file by one of a new epoch holding just ``writes`` (the ones not yet
        committed, in order); returns the offset past each. A SIGKILL meanwhile leaves either
        file whole: the old one (its mark says what is committed) or the new one (a new epoch:
        all of it is replayed)."""
        epoch = uuid.uuid4().hex
        lines = [orjson.dumps(write, option=orjson.OPT_APPEND_NEWLINE) for write in writes]
        ends: list[int] = []
        size = len(epoch) + 1
        for line in lines:
            size += len(line)
            ends.append(size)
        spare = f"{self.path}.new"
        try:
            fd = os.open(spare, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the lock moves with the file
                os.write(fd, b"".join([epoch.encode(), b"\n", *lines]))
                os.replace(spare, self.path)
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            self._failed(exc)  # the old file stays, and goes on growing: nothing is lost
            return [self.size] * len(writes)
        os.close(self._fd)
        self._fd, self.epoch, self.size = fd, epoch, size
        return ends

    def append(self, sql: str, params: tuple[Any, ...]) -> int:
        """Append one write; returns the offset just past it (for the mark)."""
        line = orjson.dumps((sql, params), option=orjson.OPT_APPEND_NEWLINE)
        start = self.size
        end = start + len(line)
        try:
            os.pwrite(self._fd, line, start)
        except OSError as exc:
            self._failed(exc)  # the row still goes to the queue: it only lacks the journal
            return start
        if self.failing:
            self.failing = False
            log.warning("the store's journal works again")
        self.size = end
        return end

    def _failed(self, exc: OSError) -> None:
        if not self.failing:
            self.failing = True
            log.error("the store's journal cannot be written (%s): a SIGKILL may lose rows", exc)

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):  # nothing past the rows is kept
                os.ftruncate(self._fd, self.size)
            os.close(self._fd)
            self._fd = -1
