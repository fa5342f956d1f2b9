"""Supervised background tasks: failures are logged with a traceback and reported."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class TaskSupervisor:
    """Owns a set of tasks; ``aclose()`` cancels and awaits all of them.

    A task that raises (anything but cancellation) is logged with its traceback and
    ``on_failure(name, exc)`` is called, so the owner can shut down cleanly.
    """

    def __init__(self, owner: str, on_failure: Callable[[str, BaseException], None]) -> None:
        self._owner = owner
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self._owner}: cannot start {name!r}, already closed")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("task %s failed", task.get_name(), exc_info=exc)
            self._on_failure(task.get_name(), exc)

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        self._closed = True
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
