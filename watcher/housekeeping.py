"""The daemon's operational jobs, in one place: retention, the heartbeat, the weekly report.

:func:`schedule` adds them to the daemon's APScheduler; each job catches and
logs its own errors, so none of them can stop watching:

- ``ops:retention`` every ``retention.every`` seconds (first run a minute after
  start): :func:`watcher.retention.prune_async`, batch by batch on the event loop;
- ``ops:heartbeat`` every ``heartbeat.interval`` seconds when ``heartbeat.url``
  is set (first ping after the first polls had time to happen):
  :func:`watcher.heartbeat.beat_from_health`, the ``/healthz`` verdict;
- ``ops:report`` every 5 minutes when the report is enabled and has a target:
  :func:`watcher.report.run_weekly`, which queues it in the outbox only when the week's time has come.

In a cluster, retention and the report run on the leader only (``leading``); the
heartbeat runs on every instance, each saying that it is alive and healthy.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

log = logging.getLogger("watcher.housekeeping")

REPORT_CHECK_EVERY = 300.0
RETENTION_FIRST_AFTER = 60.0
HEARTBEAT_FIRST_AFTER = 15.0


def schedule(
    scheduler, *, ctx, client, transports, now: datetime | None = None, leading=lambda: True
) -> list[str]:
    """Add the jobs to ``scheduler``; returns their ids.

    ``ctx`` is the daemon's :class:`~watcher.web.context.WebContext` (settings,
    store, vendors, runtime); ``client`` the shared ``httpx.AsyncClient``;
    ``transports`` the deliverer's :class:`~watcher.alerts.deliver.Transports`.
    """
    from apscheduler.triggers.interval import IntervalTrigger

    now = now or datetime.now(UTC)
    s = ctx.settings
    added: list[str] = []

    async def retention() -> None:
        from watcher.retention import prune_async

        if not leading():
            return
        try:
            await prune_async(ctx.store, s)
        except Exception:
            log.exception("retention run failed (tried again in %.0fs)", s.retention.every)

    scheduler.add_job(
        retention,
        IntervalTrigger(seconds=s.retention.every, timezone=UTC),
        id="ops:retention",
        max_instances=1,
        coalesce=True,
        next_run_time=now + timedelta(seconds=RETENTION_FIRST_AFTER),
    )
    added.append("ops:retention")

    if s.heartbeat.url:

        async def heartbeat() -> None:
            from watcher.heartbeat import beat_from_health

            await beat_from_health(client, ctx)  # never raises

        scheduler.add_job(
            heartbeat,
            IntervalTrigger(seconds=s.heartbeat.interval, timezone=UTC),
            id="ops:heartbeat",
            max_instances=1,
            coalesce=True,
            next_run_time=now + timedelta(seconds=HEARTBEAT_FIRST_AFTER),
        )
        added.append("ops:heartbeat")

    from watcher.report import report_targets

    if s.report.enabled and report_targets(s, transports):  # each channel says where the report goes

        async def report() -> None:
            from watcher.report import run_weekly

            if not leading():
                return
            try:
                await run_weekly(ctx.store, ctx.vendors, s, transports)
            except Exception:
                log.exception("weekly report failed (tried again in %.0fs)", REPORT_CHECK_EVERY)

        scheduler.add_job(
            report,
            IntervalTrigger(seconds=REPORT_CHECK_EVERY, timezone=UTC),
            id="ops:report",
            max_instances=1,
            coalesce=True,
            next_run_time=now + timedelta(seconds=30),
        )
        added.append("ops:report")
    return added
