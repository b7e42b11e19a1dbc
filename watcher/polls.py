"""The polls of every source from one heap and one timer (issue 18).

APScheduler kept one job per source in a sorted list: each run moved the job in that list and
walked the scheduler's bookkeeping, and 20,000 ``add_job`` calls cost most of a second at start.
Here a run costs one heap pop and one push, whatever the number of sources.

The timing is the one the daemon had with APScheduler's ``IntervalTrigger`` (``max_instances=1``,
``coalesce=True``, ``misfire_grace_time`` one interval): the next run is the previous planned run
plus the interval plus a random jitter in ``[0, jitter]``; a source whose poll is still running
when its next one falls due skips that one; runs missed while the process was behind are made up
by one run, at once (with coalescing the latest missed run is always within the grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("watcher.polls")


class PollScheduler:
    def __init__(self, run: Callable[[Any], Awaitable[Any]], *, limit: int | None = None):
        self._run = run
        self.limit = limit
        """At most this many polls in flight (the daemon's ``poll.concurrency``): a poll falls due, then
        waits in the heap, not as a task of its own. Behind by a whole round of 20,000 sources, one task
        (coroutine, frames, a waiter on the semaphore) per waiting source took over 100 MB."""
        self._slot = asyncio.Event()
        self._heap: list[tuple[float, int, float, float, Any]] = []
        """(due, tie-breaker, interval, jitter, spec), on the event loop's clock."""
        self._seq = itertools.count()
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.paused = False

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, spec: Any, *, interval: float, jitter: float, first_in: float, now: float) -> None:
        """Poll ``spec`` first ``first_in`` seconds after ``now`` (the loop's time), then every ``interval``."""
        heapq.heappush(self._heap, (now + first_in, next(self._seq), float(interval), float(jitter), spec))

    @staticmethod
    def _next(due: float, interval: float, jitter: float) -> float:
        return due + interval + (random.uniform(0, jitter) if jitter else 0.0)

    async def run(self, stopping: asyncio.Event) -> None:
        """Start each poll when it falls due, until ``stopping`` is set (polls in flight are left to finish)."""
        loop = asyncio.get_running_loop()
        heap = self._heap
        while not stopping.is_set():
            if not heap:
                await asyncio.sleep(0.5)
                continue
            delay = heap[0][0] - loop.time()
            if delay > 0:
                await asyncio.sleep(min(delay, 0.5))  # wakes at least twice a second to see `stopping`
                continue
            if self.limit is not None and len(self._running) >= self.limit:
                self._slot.clear()
                with contextlib.suppress(TimeoutError):  # at least twice a second, to see `stopping`
                    await asyncio.wait_for(self._slot.wait(), 0.5)
                continue
            due, seq, interval, jitter, spec = heapq.heappop(heap)
            now = loop.time()
            if not self.paused and spec.key not in self._running:
                self._start(spec)
            nxt = self._next(due, interval, jitter)
            while nxt <= now:  # behind: the missed runs coalesce into the one just started (or skipped)
                nxt = self._next(nxt, interval, jitter)
            heapq.heappush(heap, (nxt, seq, interval, jitter, spec))

    def _start(self, spec: Any) -> None:
        key = spec.key
        self._running.add(key)

        async def one() -> None:
            try:
                await self._run(spec)
            except Exception:  # the daemon's job logs its own failures; this must never stop the others
                log.exception("%s: poll failed", key)
            finally:
                self._running.discard(key)
                self._slot.set()

        task = asyncio.get_running_loop().create_task(one(), name=f"poll:{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
