"""A harness for alert tests: the real pipeline, store, engine and deliverer, on a test clock.

A vendor page served from 127.0.0.1 is polled by the real pipeline into a real
SQLite file; the incident changes go through the real :class:`AlertEngine` into
the outbox, and :meth:`AlertHarness.deliver` runs the real :class:`Deliverer`
against whatever transports the test set up (the Slack stand-in, aiosmtpd).
Only the clock is the test's: backoff, quiet hours and escalation are hours
long, and tests must not sleep.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import scenario

from watcher.alerts.deliver import Deliverer, Transports
from watcher.alerts.engine import AlertEngine
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.fetch import make_client
from watcher.pipeline import Pipeline
from watcher.store.sqlite import SQLiteStore

SUMMARY = "/api/v2/summary.json"


class Clock:
    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 10, 7, 13, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 60) -> None:
        self.now += timedelta(seconds=seconds)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class AlertHarness:
    """Anthropic's Statuspage served by ``vendor_server``, plus OpenAI (operational) as an alternative."""

    def __init__(
        self, vendor_server, tmp_path, config: dict[str, Any] | None = None, transports=None, store=None
    ):
        """``store``: another store to run on (e.g. PostgreSQL, from ``store_backends``); default the SQLite
        file of ``storage.path``. The harness closes it."""
        base = {
            "watch": ["anthropic", "openai"],
            "storage": {"path": str(tmp_path / "w.db")},
            "vendors": {
                "anthropic": {
                    "used_for": ["blog drafts", "ad copy"],
                    "sources": {
                        "summary": {"url": vendor_server.url(SUMMARY)},
                        "incidents": {"enabled": False},
                        "maintenances": {"enabled": False},
                        "history": {"enabled": False},
                    },
                },
                "openai": {
                    "sources": {
                        "summary": {"url": vendor_server.url("/openai" + SUMMARY)},
                        "incidents": {"enabled": False},
                        "maintenances": {"enabled": False},
                        "history": {"enabled": False},
                    }
                },
            },
            "routes": [{"name": "marketing", "slack_channels": ["C0MKTG"], "emails": ["team@example.com"]}],
            "alerts": {"public_url": "https://watcher.example.com", "ack_secret": "s3cret-for-links"},
        }
        self.server = vendor_server
        self.settings = Settings.model_validate(merge(base, config or {}))
        self.vendors = resolve(self.settings)
        self.store = store if store is not None else SQLiteStore(self.settings.storage.path)
        self.clock = Clock()
        self.engine = AlertEngine(self.settings, self.store, self.vendors, clock=self.clock)
        self.transports = transports or Transports()
        self.deliverer = Deliverer(self.settings, self.store, self.transports, clock=self.clock)
        vendor_server.set("/openai" + SUMMARY, scenario.operational())
        vendor_server.set(SUMMARY, scenario.operational())
        self.poll()
        self.poll("openai")

    def poll(self, vendor: str = "anthropic"):
        """Poll one vendor's summary and hand its changes to the engine, as the daemon does."""
        v = next(v for v in self.vendors if v.id == vendor)
        spec = next(s for s in v.sources if s.id == "summary")

        async def go():
            async with make_client(user_agent="test") as client:
                pipe = Pipeline(self.store, client, self.settings, self.vendors, clock=self.clock)
                return await pipe.poll(spec)

        result = asyncio.run(go())
        self.engine.on_changes(result.changes)
        return result

    def serve(self, body: bytes) -> None:
        self.server.set(SUMMARY, body)

    def outage(self, *updates: tuple[str, str, str], **kw) -> None:
        ups = updates or (("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z"),)
        self.serve(scenario.incident(*ups, **kw))

    def deliver(self) -> int:
        return asyncio.run(self.deliverer.deliver_due())

    def rows(self, **kw):
        """Outbox rows, oldest first."""
        return list(reversed(self.store.notifications(limit=1000, **kw)))

    def close(self) -> None:
        self.store.close()
