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
