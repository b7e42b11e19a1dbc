"""One event on a vendor's page becomes one incident: opened, updated, resolved, classified.

Real HTTP server on 127.0.0.1, the real pipeline, every test on a SQLite file and on a
PostgreSQL schema (tests/store_backends.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import scenario

from watcher.catalog import resolve
from watcher.config import Settings
from watcher.fetch import make_client
from watcher.incidents.model import EventType, IncidentState
from watcher.model import IncidentKind, VendorState
from watcher.pipeline import Pipeline
from watcher.status import vendor_status


class Clock:
    def __init__(self):
        self.now = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def tick(self, minutes: float = 1):
        self.now += timedelta(minutes=minutes)


def _settings(server, storage: dict, **sources) -> Settings:
    return Settings.model_validate(
        {
            "watch": ["anthropic"],
            "storage": storage,
            "vendors": {
                "anthropic": {
                    "sources": {
                        "summary": {"url": server.url("/api/v2/summary.json")},
                        "incidents": {"enabled": False},
                        "maintenances": {"enabled": False},
                        "history": {"enabled": False},
                        **sources,
                    }
                }
            },
        }
    )


class Harness:
    """The pipeline on ``backend``'s store (tests/store_backends.py), Anthropic's page on ``server``."""

    def __init__(self, server, backend, **sources):
        self.settings = _settings(server, backend.storage, **sources)
        self.vendors = resolve(self.settings)
        self.store = backend.open()
        self.clock = Clock()

    def poll(self, source: str = "summary"):
        spec = next(s for s in self.vendors[0].sources if s.id == source)

        async def go():
            async with make_client(user_agent="test") as client:
                pipe = Pipeline(self.store, client, self.settings, self.vendors, clock=self.clock)
                return await pipe.poll(spec)

        return asyncio.run(go())

    def status(self):
        return vendor_status(
            self.vendors[0],
            self.store.sources("anthropic"),
            self.store.open_incidents("anthropic"),
            self.clock.now,
        )


@pytest.fixture
def harness(vendor_server, backend):
    """On the store under test: the tests using it run on SQLite and on PostgreSQL."""
    h = Harness(vendor_server, backend)
    yield h
    h.store.close()


def test_operational_page_opens_no_incident(vendor_server, harness):
    vendor_server.set("/api/v2/summary.json", scenario.operational())
    result = harness.poll()
    assert result.observation.ok
    assert harness.store.incidents() == []
    st = harness.status()
    assert st.state is VendorState.OPERATIONAL


def test_outage_is_opened_updated_and_resolved_as_one_incident(vendor_server, harness):
    path = "/api/v2/summary.json"
    vendor_server.set(path, scenario.operational())
    harness.poll()

    harness.clock.tick()
    vendor_server.set(
        path,
        scenario.incident(
            ("investigating", "Claude API requests are failing for all users.", "2026-10-07T13:01:00Z")
        ),
    )
    harness.poll()
    [inc] = harness.store.open_incidents()
    assert inc.kind is IncidentKind.OUTAGE, inc.reason
    assert inc.reason
    assert harness.status().state is VendorState.OUTAGE

    harness.clock.tick()
    vendor_server.set(
        path,
        scenario.incident(
            ("investigating", "Claude API requests are failing for all users.", "2026-10-07T13:01:00Z"),
            ("identified", "We have identified the cause and are deploying a fix.", "2026-10-07T13:20:00Z"),
        ),
    )
    harness.poll()
    [same] = harness.store.open_incidents()
    assert same.id == inc.id
    assert same.status.value == "identified"

    harness.clock.tick()
    vendor_server.set(path, scenario.operational())  # summary.json drops resolved incidents
    harness.poll()
    assert harness.store.open_incidents() == []
    [done] = harness.store.incidents()
    assert done.id == inc.id
    assert done.state is IncidentState.RESOLVED
    assert done.kind is IncidentKind.OUTAGE
    assert harness.status().state is VendorState.OPERATIONAL

    types = [e.event.type for e in harness.store.events(inc.id)]
    assert types.count(EventType.OPENED) == 1
    assert types.count(EventType.RESOLVED) == 1
    assert types.count(EventType.VENDOR_UPDATE) == 2


def test_repolling_the_same_page_records_nothing_new(vendor_server, harness):
    path = "/api/v2/summary.json"
    vendor_server.set(
        path, scenario.incident(("investigating", "Errors on the API.", "2026-10-07T13:01:00Z"))
    )
    harness.poll()
    [inc] = harness.store.open_incidents()
    n_events = len(harness.store.events(inc.id))
    for _ in range(3):
        harness.clock.tick()
        res = harness.poll()
        assert res.observation.ok and not res.observation.changed
    assert len(harness.store.events(inc.id)) == n_events
    assert vendor_server.conditional_hits[path] == 3  # ETag honoured: 304s, no re-download


def test_component_flip_before_incident_is_adopted_by_the_vendor_incident(vendor_server, harness):
    path = "/api/v2/summary.json"
    vendor_server.set(path, scenario.components_down("major_outage"))
    harness.poll()
    [early] = harness.store.open_incidents()
    assert early.origin == "components"
    assert early.kind is IncidentKind.OUTAGE

    harness.clock.tick()
    vendor_server.set(
        path,
        scenario.incident(
            ("investigating", "Elevated errors on the Claude API.", "2026-10-07T13:02:00Z"),
            name="Elevated errors on Claude API",
            impact="major",
            component_status="partial_outage",
        ),
    )
    harness.poll()
    [merged] = harness.store.open_incidents()
    assert merged.id == early.id
    assert merged.title == "Elevated errors on Claude API"
    assert merged.kind is IncidentKind.DEGRADATION
    kinds = [e.event.type for e in harness.store.events(merged.id)]
    assert EventType.MERGED in kinds and EventType.KIND_CHANGED in kinds

    harness.clock.tick()
    vendor_server.set(path, scenario.operational())
    harness.poll()
    assert harness.store.open_incidents() == []


def test_degraded_component_alone_resolves_when_it_recovers(vendor_server, harness):
    path = "/api/v2/summary.json"
    vendor_server.set(path, scenario.components_down("degraded_performance"))
    harness.poll()
    [inc] = harness.store.open_incidents()
    assert inc.kind is IncidentKind.DEGRADATION
    assert harness.status().state is VendorState.DEGRADED
    harness.clock.tick()
    vendor_server.set(path, scenario.operational())
    harness.poll()
    assert harness.store.incident(inc.id).state is IncidentState.RESOLVED


def test_filtered_components_are_not_evidence(vendor_server, backend):
    h = Harness(vendor_server, backend)
    h.settings.vendors["anthropic"].components = ["claude.ai"]
    h.vendors = resolve(h.settings)
    vendor_server.set("/api/v2/summary.json", scenario.components_down("major_outage"))
    h.poll()
    assert h.store.open_incidents() == []
    assert h.status().state is VendorState.OPERATIONAL
    h.store.close()


def test_server_error_is_recorded_and_state_is_unknown_not_down(vendor_server, harness):
    vendor_server.set("/api/v2/summary.json", b"oops", status=503, content_type="text/plain")
    res = harness.poll()
    assert not res.observation.ok
    assert "HTTP 503" in res.observation.error
    st = harness.status()
    assert st.state is VendorState.UNKNOWN
    assert "HTTP 503" in st.reason
    assert harness.store.incidents() == []


def test_source_recovers_after_error(vendor_server, harness):
    path = "/api/v2/summary.json"
    vendor_server.set(path, b"<html>maintenance page</html>", content_type="text/html")
    res = harness.poll()
    assert res.observation.error_kind == "parse"
    vendor_server.set(path, scenario.operational())
    harness.clock.tick()
    res = harness.poll()
    assert res.observation.ok
    rec = harness.store.source("anthropic/summary")
    assert rec.error is None and rec.failures == 0


def _history_rss_for(summary: bytes) -> bytes:
    """A Statuspage history.rss item for the summary's incident, in Statuspage's own markup."""
    import json
    from datetime import datetime
    from email.utils import format_datetime
    from html import escape

    inc = json.loads(summary)["incidents"][0]
    paras = []
    for u in sorted(inc["incident_updates"], key=lambda u: u["created_at"], reverse=True):
        at = datetime.fromisoformat(u["created_at"].replace("Z", "+00:00"))
        paras.append(
            f"<p><small>{at:%b} <var data-var='date'>{at.day}</var>, "
            f"<var data-var='time'>{at:%H:%M}</var> UTC"
            f"</small><br><strong>{u['status'].capitalize()}</strong> - {escape(u['body'])}</p>"
        )
    pub = format_datetime(datetime.fromisoformat(inc["updated_at"].replace("Z", "+00:00")))
    link = f"https://status.claude.com/incidents/{inc['id']}"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Claude Status - Incident History</title>
<link>https://status.claude.com</link><description>Statuspage</description>
<item><title>{escape(inc['name'])}</title><description>{escape(''.join(paras))}</description>
<pubDate>{pub}</pubDate><link>{link}</link><guid>{link}</guid></item>
</channel></rss>""".encode()


def test_json_incident_and_its_history_feed_item_are_one_incident(vendor_server, backend):
    from conftest import fixture_bytes

    summary = fixture_bytes("statuspage/summary-anthropic-claude-incident-2026-10-07.json")
    vendor_server.set("/api/v2/summary.json", summary)
    vendor_server.set("/history.rss", _history_rss_for(summary), content_type="application/rss+xml")
    h = Harness(vendor_server, backend, history={"url": vendor_server.url("/history.rss")})
    h.poll("summary")
    h.clock.tick()
    h.poll("history")
    [inc] = h.store.incidents()
    assert inc.title == "Elevated errors on platform.claude.com"
    events = [e.event.type for e in h.store.events(inc.id)]
    assert events.count(EventType.OPENED) == 1
    assert events.count(EventType.VENDOR_UPDATE) == 4  # the feed repeated the same four updates
    h.store.close()


def test_a_new_classifier_model_reclassifies_stored_incidents_once(vendor_server, harness):
    """On upgrade the leader re-reads what the database holds with the shipped model, and says so."""
    from watcher.incidents.classify import load_model
    from watcher.incidents.reclassify import META_KEY

    path = "/api/v2/summary.json"
    vendor_server.set(
        path,
        scenario.incident(
            ("investigating", "Claude API requests are failing for all users.", "2026-10-07T13:01:00Z")
        ),
    )
    harness.poll()
    [inc] = harness.store.open_incidents()
    right = inc.kind
    # as an older model would have left it
    inc.kind = next(k for k in (IncidentKind.API_CHANGE, IncidentKind.DEGRADATION) if k is not right)
    inc.reason = "old model"
    harness.store.save_incident(inc, [])
    harness.store.meta_set(META_KEY, "older-model")

    async def reclassify():
        async with make_client(user_agent="test") as client:
            pipe = Pipeline(harness.store, client, harness.settings, harness.vendors, clock=harness.clock)
            return await pipe.reclassify_stored()

    assert asyncio.run(reclassify()) == 1
    [now] = harness.store.open_incidents()
    assert now.kind is right and now.reason != "old model"
    [event] = [e.event for e in harness.store.events(inc.id) if e.event.type is EventType.KIND_CHANGED]
    assert event.source == "upgrade"
    assert f"→ {right}" in event.text and load_model().version in event.text
    assert harness.store.meta_get(META_KEY) == load_model().version
    assert asyncio.run(reclassify()) is None  # once per model
