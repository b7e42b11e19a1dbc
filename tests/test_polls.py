"""The sources' poll scheduler (issue 18): on time, jittered, one run at a time per source."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from watcher.polls import PollScheduler


@dataclass(frozen=True)
class Spec:
    key: str


def test_each_source_runs_every_interval_with_jitter_and_never_twice_at_once():
    runs: dict[str, list[float]] = {}
    active: set[str] = set()
    overlaps = []

    async def main():
        loop = asyncio.get_running_loop()

        async def job(spec):
            if spec.key in active:
                overlaps.append(spec.key)
            active.add(spec.key)
            runs.setdefault(spec.key, []).append(loop.time())
            await asyncio.sleep(0.25 if spec.key == "slow" else 0)  # longer than its interval
            active.discard(spec.key)

        polls = PollScheduler(job)
        now = loop.time()
        for i in range(200):
            polls.add(Spec(f"s{i}"), interval=0.1, jitter=0.02, first_in=0.05 * i / 200, now=now)
        polls.add(Spec("slow"), interval=0.1, jitter=0, first_in=0, now=now)
        stop = asyncio.Event()
        task = asyncio.create_task(polls.run(stop))
        await asyncio.sleep(1.05)
        stop.set()
        await task
        await asyncio.sleep(0.3)

    asyncio.run(main())
    assert not overlaps
    gaps = [b - a for t in (v for k, v in runs.items() if k != "slow") for a, b in zip(t, t[1:], strict=False)]
    assert len(runs) == 201
    assert all(0.095 <= g <= 0.2 for g in gaps), (min(gaps), max(gaps))
    assert max(gaps) > 0.105, "jitter spreads the runs"
    assert 3 <= len(runs["slow"]) <= 5, "a run still in flight skips the next ones"


def test_with_a_limit_due_polls_wait_in_the_heap_and_all_run_in_due_order():
    """Behind (every source due at once), no more than ``limit`` polls are in flight, the others wait as
    heap entries rather than as tasks, and they start earliest due first."""
    started: list[str] = []
    most = 0
    active = 0
    tasks_seen = []

    async def main():
        nonlocal most, active
        loop = asyncio.get_running_loop()

        async def job(spec):
            nonlocal most, active
            active += 1
            most = max(most, active)
            started.append(spec.key)
            tasks_seen.append(len(asyncio.all_tasks()))
            await asyncio.sleep(0.01)
            active -= 1

        polls = PollScheduler(job, limit=3)
        now = loop.time()
        for i in range(30):
            polls.add(Spec(f"s{i:02d}"), interval=60, jitter=0, first_in=-1 + i / 1000, now=now)
        stop = asyncio.Event()
        task = asyncio.create_task(polls.run(stop))
        while len(started) < 30:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(main())
    assert most == 3
    assert started == [f"s{i:02d}" for i in range(30)], "earliest due first"
    # the main task, the scheduler, its wait for a free slot, the polls in flight: no task per waiting poll
    assert max(tasks_seen) <= 3 + 3, max(tasks_seen)
