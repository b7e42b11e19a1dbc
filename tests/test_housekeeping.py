"""The daemon's operational jobs: which are scheduled, at which intervals, and that each runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from store_backends import RawSQLite
from test_heartbeat import UUID, PingServer

from watcher import housekeeping
from watcher.alerts.deliver import Transports
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.store.sqlite import SQLiteStore
from watcher.web.context import WebContext

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_jobs_follow_the_settings_and_run(tmp_path):
    with PingServer() as ping:
        settings = Settings.model_validate(
            {
                "watch": ["openai"],
                "storage": {"path": str(tmp_path / "w.db")},
                "retention": {"every": 600},
                "heartbeat": {"url": ping.url, "interval": 30},
                "report": {"slack_channels": ["C0REPORT"]},
            }
        )
        store = SQLiteStore(settings.storage.path)
        store.add_observation("openai/summary", "openai", datetime.now(UTC) - timedelta(days=400), "snapshot", {})
        store.add_observation("openai/summary", "openai", datetime.now(UTC), "snapshot", {})
        ctx = WebContext(settings, store, resolve(settings), runtime={"scheduler_running": True})

        async def go():
            scheduler = AsyncIOScheduler(timezone=UTC)
            async with httpx.AsyncClient(trust_env=False) as client:
                ids = housekeeping.schedule(scheduler, ctx=ctx, client=client, transports=Transports(), now=NOW)
                jobs = {j.id: j for j in scheduler.get_jobs()}
                for job in jobs.values():  # run each once, as the scheduler would
                    await job.func()
            return ids, jobs

        ids, jobs = asyncio.run(go())
        store_rows = RawSQLite(store).execute("SELECT COUNT(*) FROM observations").fetchone()[0]
        store.close()
    assert ids == ["ops:retention", "ops:heartbeat", "ops:report"]
    assert jobs["ops:retention"].trigger.interval == timedelta(seconds=600)
    assert jobs["ops:heartbeat"].trigger.interval == timedelta(seconds=30)
    assert jobs["ops:report"].trigger.interval == timedelta(seconds=housekeeping.REPORT_CHECK_EVERY)
    assert store_rows == 1, "retention ran"
    assert [(m, p) for m, p, _ in ping.pings] == [("GET", f"/ping/{UUID}")], "healthy: the plain ping"


def test_no_heartbeat_or_report_job_without_a_url_or_a_target(tmp_path):
    settings = Settings.model_validate({"watch": ["openai"], "storage": {"path": str(tmp_path / "w.db")}})
    store = SQLiteStore(settings.storage.path)
    ctx = WebContext(settings, store, resolve(settings))
    scheduler = AsyncIOScheduler(timezone=UTC)
    assert housekeeping.schedule(scheduler, ctx=ctx, client=None, transports=Transports(), now=NOW) == [
        "ops:retention"
    ]
    store.close()
