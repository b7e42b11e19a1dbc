"""A harness for alert tests: the real pipeline, store, engine and deliverer, on a test clock.

A vendor page served from 127.0.0.1 is polled by the real pipeline into a real
store (a SQLite file, or either store with ``backend`` from tests/store_backends.py);
the incident changes go through the real :class:`AlertEngine` into the outbox, and
:meth:`AlertHarness.deliver` runs the real :class:`Deliverer` against whatever
transports the test set up (the Slack stand-in, aiosmtpd).
Only the clock is the test's: backoff, quiet hours and escalation are hours
long, and tests must not sleep.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import scenario

from watcher.alerts.deliver import Deliverer, Transports
from watcher.alerts.engine import AlertEngine
from watcher.alerts.slack import SlackBot
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.fetch import make_client
from watcher.pipeline import Pipeline
from watcher.store import open_store

SUMMARY = "/api/v2/summary.json"
CHANNEL = "C0MKTG"
UPDATE_1 = ("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z")
UPDATE_2 = ("identified", "We found the cause and are deploying a fix.", "2026-10-07T13:20:00Z")


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
        self,
        vendor_server,
        tmp_path,
        config: dict[str, Any] | None = None,
        transports=None,
        store=None,
        backend=None,
    ):
        """``backend`` (a :class:`store_backends.Backend`): run on its store, named by ``storage`` in the
        settings too; default the SQLite file ``tmp_path / "w.db"``. ``store``: another store to run on.
        The harness closes its store."""
        base = {
            "watch": ["anthropic", "openai"],
            "storage": backend.storage if backend is not None else {"path": str(tmp_path / "w.db")},
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
        # opened from the settings, as the daemon opens it: on PostgreSQL that also tags what it writes
        # with this host's location, the one a `watcher` command run here reads back
        self.store = store if store is not None else open_store(self.settings)
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


# -- fixtures for delivery tests: ``make, slack = alerting.make, alerting.slack`` -------------------


@pytest.fixture
def slack(slack_server):
    """The Slack stand-in with the team's channel ``CHANNEL``."""
    slack_server.add_channel(CHANNEL)
    return slack_server


@pytest.fixture
def make(vendor_server, tmp_path, slack, backend):
    """``make(config=None, mailer=None, routes=None, slack_timeout=2)``: an :class:`AlertHarness` routing
    to ``CHANNEL`` through the Slack stand-in, on each store (``backend``); closed after the test.
    Several harnesses of one test share one database, as processes of one deployment do."""
    made = []

    def build(config=None, mailer=None, routes=None, slack_timeout=2):
        cfg = {"routes": routes or [{"name": "marketing", "slack_channels": [CHANNEL]}]}
        cfg.update(config or {})
        t = Transports(
            slack_bot=SlackBot(slack.token, base_url=slack.api_url, timeout=slack_timeout), mailer=mailer
        )
        h = AlertHarness(vendor_server, tmp_path, cfg, transports=t, backend=backend)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def mailer_for(smtp):
    """An :class:`SmtpMailer` for the aiosmtpd of tests/smtp_server.py (STARTTLS, login)."""
    from smtp_server import PASSWORD, USERNAME

    from watcher.alerts.email import SmtpMailer

    return SmtpMailer(
        "127.0.0.1",
        smtp.port,
        username=USERNAME,
        password=PASSWORD,
        starttls=True,
        ssl=False,
        timeout=5,
        sender="watcher <alerts@example.com>",
        ssl_context=smtp.client_context(),
    )
