"""Supervisor: the daemon's core tasks, whose unexpected end takes the process down.

Every task the daemon cannot work without (the camera runners, the server's accept loops
and access revalidation, STATUS, the watchdog, the reload worker) is started with `spawn`
and cancelled on purpose with `cancel`, both here. One that ends any other way, failed,
returned or cancelled by someone else, is logged with its traceback and calls `on_failure`
(the daemon's stop): exit 1, so systemd restarts the process rather than leaving a
half-working daemon (kvmd's way). Event-loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Supervisor:
    """Starts, cancels and watches the core tasks of one daemon."""

    def __init__(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        # Name of the core task whose end brought the daemon down ("" while healthy).
        self.failure = ""
        # Core tasks by name; those being cancelled by the daemon itself are expected to end.
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._cancelling: set[asyncio.Task[None]] = set()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The core tasks still running."""
        return list(self._tasks)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start a core task: the daemon cannot work without it, so its end is fatal."""
        task = asyncio.ensure_future(coro)
        self._tasks[task] = name
        task.add_done_callback(self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        name = self._tasks.pop(task, "?")
        if task in self._cancelling:
            self._cancelling.discard(task)
            if task.cancelled() or task.exception() is None:
                return
        if task.cancelled():
            exc: BaseException | None = None
            how = "was cancelled"
        else:
            exc = task.exception()
            how = "failed" if exc is not None else "ended"
        # Never expected: without this task the daemon would stay half-working (a camera on
        # or off forever, no watchdog pets, no reloads), so exit and let systemd restart it.
        log.error("core task %s %s unexpectedly: exiting", name, how, exc_info=exc)
        self.failure = self.failure or name
        self._on_failure()

    async def cancel(self, tasks: list[asyncio.Task[None]]) -> None:
        """Cancel core tasks on purpose and wait until they have ended."""
        for task in tasks:
            if not task.done():
                self._cancelling.add(task)
                task.cancel()
        if tasks:
            # wait() rather than gather(): an error while cancelling is reported by
            # _task_ended, not raised into the caller (a reload or the shutdown).
            await asyncio.wait(tasks)
