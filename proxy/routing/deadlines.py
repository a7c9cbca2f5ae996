"""Whole-request deadlines that share one timer.

``asyncio.timeout`` arms a loop timer for every request (a libuv timer under uvloop): 6.5 µs to
enter and leave, one of the larger items of the rotation's cost per request. A deadline of
seconds needs no timer of its own: one sweep every ``resolution`` cancels each task past its
deadline, so a deadline fires at most one resolution (a twentieth of it) late.
"""

from __future__ import annotations

import asyncio
from typing import Any

Task = asyncio.Task[Any]


class Deadlines:
    """Deadlines of ``seconds``, used as ``asyncio.timeout`` is (a plain ``with`` will do: no
    timer is armed on the way in)::

        try:
            with deadlines.bound():
                ...
        except TimeoutError:
            ...
    """

    __slots__ = ("_due", "_expired", "_sweep", "_sweep_loop", "resolution", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.resolution = min(max(seconds / 20, 0.001), 1.0)
        self._due: dict[Task, float] = {}
        self._expired: set[Task] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    def bound(self) -> _Bound:
        """The current task's deadline, for the ``with`` block."""
        return _Bound(self)

    def enter(self) -> Task:
        """Start the current task's deadline (what ``bound`` does on entry, for a hot path that
        would rather not make a context object a call); end it with :meth:`leave`."""
        # Asked of the loop last used, current_task does not look the running loop up: that
        # look-up is a getpid() system call a request. Another loop since: asked plainly.
        last = self._sweep_loop
        task = asyncio.current_task(last) if last is not None and last.is_running() else None
        if task is None:
            task = asyncio.current_task()
            assert task is not None, "a deadline outside a task"
        loop = task.get_loop()
        self._due[task] = loop.time() + self.seconds
        # A sweep of a loop since closed never comes back: such a one does not count.
        if self._sweep is None or self._sweep_loop is not loop:
            self._sweep = loop.call_later(self.resolution, self._check, loop)
            self._sweep_loop = loop
        return task

    def leave(self, task: Task) -> bool:
        """End ``task``'s deadline; whether the deadline cancelled it (and nobody else did as
        well: a ``CancelledError`` it raises is then a ``TimeoutError``). When so the cancel is
        taken back, as ``asyncio.timeout`` does. Ending it twice is harmless."""
        self._due.pop(task, None)
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, due in list(self._due.items()):
            if due <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        self._sweep = loop.call_later(self.resolution, self._check, loop) if self._due else None


class _Bound:
    __slots__ = ("deadlines", "task")

    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines

    def __enter__(self) -> None:
        self.task = self.deadlines.enter()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        late = self.deadlines.leave(self.task)
        if late and kind is asyncio.CancelledError:
            raise TimeoutError from exc
