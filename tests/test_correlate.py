"""Merging signals into incidents, as a pure function: no network, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from conftest import fixture_bytes

from watcher.catalog import SourceSpec, VendorSpec
from watcher.incidents.correlate import Context, reconcile
from watcher.incidents.model import EventType, Incident, IncidentState, MaintenancePhase
from watcher.model import (
    Component,
    ComponentStatus,
    IncidentKind,
    IncidentScope,
    IncidentStatus,
    Report,
    Snapshot,
    Update,
    VendorState,
)
from watcher.sources import statuspage
from watcher.status import vendor_status
from watcher.store.base import SourceRecord

T0 = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


class World:
    """Keeps incidents between reconcile calls, the way the store would."""

    def __init__(self, vendor: str = "anthropic"):
        self.vendor = vendor
        self.incidents: list[Incident] = []
        self.events: list[tuple[Incident, EventType]] = []
        self.now = T0
        self._next_id = 1

    def apply(self, source: str, snapshot: Snapshot, counts=lambda name: True):
        ctx = Context(
            vendor=self.vendor, source=f"{self.vendor}/{source}", now=self.now, counts_component=counts
        )
        changes = reconcile(ctx, snapshot, list(self.incidents))
        for ch in changes:
            if ch.incident.id is None:
                ch.incident.id = self._next_id
                self._next_id += 1
                self.incidents.append(ch.incident)
            self.events.extend((ch.incident, e.type) for e in ch.events)
        self.now += timedelta(minutes=1)
        return changes

    def open(self):
        return [i for i in self.incidents if i.is_open]

    def types(self, inc: Incident) -> list[EventType]:
        return [t for i, t in self.events if i is inc]


def report(
    key="inc1", title="Elevated errors on Claude Opus", status=IncidentStatus.INVESTIGATING, updates=(), **kw
):
    return Report(key=key, title=title, status=status, updates=tuple(updates), **kw)


def upd(uid, status, body, minute):
    return Update(id=uid, status=status, body=body, created_at=T0 + timedelta(minutes=minute))


def test_json_incident_and_its_feed_item_are_one_incident_and_one_update():
    w = World()
    body = "We are investigating elevated errors on Claude Opus."
    w.apply(
        "summary",
        Snapshot(
            incidents=(report(updates=[upd("u1", IncidentStatus.INVESTIGATING, body, 0)]),),
            incident_scope=IncidentScope.ACTIVE,
        ),
    )
    # the feed has the same incident (same id in its link) and the same update text, in HTML-stripped form
    w.apply(
        "history",
        Snapshot(
            incidents=(report(updates=[upd("feed-hash-1", IncidentStatus.INVESTIGATING, body + "  ", 0)]),)
        ),
    )
    [inc] = w.incidents
    assert w.types(inc).count(EventType.OPENED) == 1
    assert w.types(inc).count(EventType.VENDOR_UPDATE) == 1
    # a later update, seen first in the feed, then in JSON: still one event
    later = "A fix has been implemented and we are monitoring the results."
    w.apply(
        "history",
        Snapshot(
            incidents=(
                report(
                    status=IncidentStatus.MONITORING, updates=[upd("h2", IncidentStatus.MONITORING, later, 9)]
                ),
            )
        ),
    )
    w.apply(
        "summary",
        Snapshot(
            incidents=(
                report(
                    status=IncidentStatus.MONITORING,
                    updates=[
                        upd("u1", IncidentStatus.INVESTIGATING, body, 0),
                        upd("u2", IncidentStatus.MONITORING, later, 9),
                    ],
                ),
            ),
            incident_scope=IncidentScope.ACTIVE,
        ),
    )
    assert len(w.incidents) == 1
    assert w.types(inc).count(EventType.VENDOR_UPDATE) == 2
    assert inc.status is IncidentStatus.MONITORING


def test_history_feed_on_first_poll_is_backfilled_not_opened():
    w = World()
    snap = statuspage.parse(fixture_bytes("statuspage/scheduled-maintenances-anthropic-2026-09-15.json"))
    w.apply("maintenances", snap)
    assert len(w.incidents) == 2
    assert all(i.backfilled and i.state is IncidentState.RESOLVED for i in w.incidents)
    assert all(i.kind is IncidentKind.MAINTENANCE for i in w.incidents)
    assert {t for _, t in w.events} == {EventType.BACKFILLED}
    # seeing it again changes nothing
    assert all(not ch.events for ch in w.apply("maintenances", snap))


def test_maintenance_walks_upcoming_in_progress_completed():
    w = World()
    maint = dict(
        key="m1", title="Scheduled maintenance of the Console", is_maintenance=True, impact="maintenance"
    )
    w.apply(
        "summary",
        Snapshot(
            maintenances=(report(status=IncidentStatus.SCHEDULED, **maint),),
            maintenance_scope=IncidentScope.ACTIVE,
        ),
    )
    [m] = w.incidents
    assert m.is_open and m.phase is MaintenancePhase.UPCOMING and m.kind is IncidentKind.MAINTENANCE
    w.apply(
        "summary",
        Snapshot(
            maintenances=(report(status=IncidentStatus.IN_PROGRESS, **maint),),
            maintenance_scope=IncidentScope.ACTIVE,
        ),
    )
    assert m.phase is MaintenancePhase.IN_PROGRESS
    assert EventType.MAINTENANCE_STARTED in w.types(m)
    # summary.json drops completed maintenances
    w.apply("summary", Snapshot(maintenances=(), maintenance_scope=IncidentScope.ACTIVE))
    assert m.phase is MaintenancePhase.COMPLETED and not m.is_open


def test_absent_incidents_key_never_resolves_anything():
    """incident.io may omit `incidents` from summary.json: not published is not 'all clear'."""
    w = World("perplexity")
    w.apply("summary", Snapshot(incidents=(report(),), incident_scope=IncidentScope.ACTIVE))
    snap = statuspage.parse(fixture_bytes("statuspage/summary-perplexity-incidentio-compat-2026-09-18.json"))
    assert snap.incidents is None
    w.apply("summary", snap)
    assert len(w.open()) == 1


def test_history_source_absence_does_not_resolve_but_its_resolved_status_does():
    w = World()
    w.apply("summary", Snapshot(incidents=(report(),), incident_scope=IncidentScope.ACTIVE))
    w.apply("incidents", Snapshot(incidents=(), incident_scope=IncidentScope.HISTORY))
    assert len(w.open()) == 1
    w.apply("incidents", Snapshot(incidents=(report(status=IncidentStatus.RESOLVED),)))
    assert w.open() == []


def test_a_new_update_on_a_resolved_incident_reopens_it():
    w = World()
    w.apply(
        "incidents",
        Snapshot(incidents=(report(updates=[upd("u1", IncidentStatus.INVESTIGATING, "Errors.", 0)]),)),
    )
    w.apply(
        "incidents",
        Snapshot(
            incidents=(
                report(
                    status=IncidentStatus.RESOLVED,
                    updates=[
                        upd("u1", IncidentStatus.INVESTIGATING, "Errors.", 0),
                        upd("u2", IncidentStatus.RESOLVED, "Fixed.", 5),
                    ],
                ),
            )
        ),
    )
    [inc] = w.incidents
    assert not inc.is_open
    w.apply(
        "incidents",
        Snapshot(
            incidents=(
                report(
                    status=IncidentStatus.INVESTIGATING,
                    updates=[
                        upd("u1", IncidentStatus.INVESTIGATING, "Errors.", 0),
                        upd("u2", IncidentStatus.RESOLVED, "Fixed.", 5),
                        upd("u3", IncidentStatus.INVESTIGATING, "Errors are back.", 20),
                    ],
                ),
            )
        ),
    )
    assert inc.is_open
    assert EventType.REOPENED in w.types(inc)


def test_group_rows_do_not_double_count():
    w = World()
    comps = (
        Component("g1", "Claude API", ComponentStatus.MAJOR_OUTAGE, is_group=True),
        Component("c1", "Messages API", ComponentStatus.DEGRADED, group_id="g1"),
        Component("c2", "Batch API", ComponentStatus.OPERATIONAL, group_id="g1"),
    )
    w.apply("summary", Snapshot(components=comps, incidents=(), incident_scope=IncidentScope.ACTIVE))
    [inc] = w.incidents
    assert inc.components == ["Messages API"]
    assert inc.kind is IncidentKind.DEGRADATION  # the group's worst-of status is not evidence of its own
    assert inc.title == "Degraded performance: Messages API"


def test_only_one_component_incident_per_source_while_states_change():
    w = World()

    def comps(s1, s2):
        return Snapshot(
            components=(Component("a", "API", s1), Component("b", "Console", s2)),
            incidents=(),
            incident_scope=IncidentScope.ACTIVE,
        )

    w.apply("summary", comps(ComponentStatus.DEGRADED, ComponentStatus.OPERATIONAL))
    w.apply("summary", comps(ComponentStatus.MAJOR_OUTAGE, ComponentStatus.DEGRADED))
    [inc] = w.incidents
    assert inc.kind is IncidentKind.OUTAGE
    assert EventType.KIND_CHANGED in w.types(inc)
    w.apply("summary", comps(ComponentStatus.OPERATIONAL, ComponentStatus.OPERATIONAL))
    assert not inc.is_open
    # a new flip later is a new incident, not a reopening of the old one
    w.apply("summary", comps(ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.OPERATIONAL))
    assert len(w.incidents) == 2 and w.incidents[1].is_open


def test_incident_filtered_out_by_components_is_ignored():
    w = World()
    snap = statuspage.parse(fixture_bytes("statuspage/summary-anthropic-claude-incident-2026-10-07.json"))
    w.apply("summary", snap, counts=lambda name: name.startswith("Claude API"))
    assert w.incidents == []


def test_real_claude_summary_opens_one_degradation_incident():
    w = World()
    snap = statuspage.parse(fixture_bytes("statuspage/summary-anthropic-claude-incident-2026-10-07.json"))
    w.apply("summary", snap)
    [inc] = w.incidents
    assert inc.title == "Elevated errors on platform.claude.com"
    assert inc.kind is IncidentKind.DEGRADATION
    assert inc.status is IncidentStatus.MONITORING
    assert len(inc.bodies) == 4
    assert inc.component_statuses == {"Claude Console (platform.claude.com)": ComponentStatus.DEGRADED}


def test_hubspot_incident_is_shown_although_the_indicator_says_all_operational():
    w = World("hubspot")
    snap = statuspage.parse(fixture_bytes("statuspage/summary-hubspot-genai-incident-2023-11-08.json"))
    assert snap.indicator == "none"
    w.apply("summary", snap)
    [inc] = w.incidents
    # "Generative AI features are unavailable": the learned classifier (issue 12) reads an outage
    assert inc.kind in (IncidentKind.OUTAGE, IncidentKind.DEGRADATION), inc.reason

    spec = SourceSpec(vendor="hubspot", id="summary", type="statuspage", url="https://x", interval=60)
    vendor = VendorSpec(id="hubspot", name="HubSpot", status_page=None, platform="atlassian", sources=(spec,))
    rec = SourceRecord(
        key="hubspot/summary",
        vendor="hubspot",
        type="statuspage",
        url="https://x",
        last_success_at=w.now,
        summary={"components": {}, "indicator": "none"},
    )
    st = vendor_status(vendor, [rec], w.open(), w.now)
    # the incident is open and alerted, but the vendor's state agrees with its own page (issue 13):
    # it names no component and the indicator says "none"
    assert st.state is VendorState.OPERATIONAL
    assert "Generative AI features" in st.reason and "the page says all is well" in st.reason


def test_openai_incidentio_summary_opens_both_incidents():
    w = World("openai")
    snap = statuspage.parse(fixture_bytes("statuspage/summary-openai-incidentio-compat-2026-09-29.json"))
    w.apply("summary", snap)
    kinds = {i.title[:40]: i.kind for i in w.incidents}
    assert kinds == {
        "Elevated errors across ChatGPT, Codex, a": IncidentKind.DEGRADATION,
        "Support chat unavailable": IncidentKind.OUTAGE,
    }
    # the page has degraded components but they join the open vendor incidents, no third incident
    assert len(w.incidents) == 2


def test_summary_json_round_trips_through_the_fixture_loader():
    raw = json.loads(fixture_bytes("statuspage/summary-openai-incidentio-compat-2026-09-29.json"))
    assert "scheduled_maintenances" not in raw
    assert statuspage.parse(json.dumps(raw).encode()).maintenances is None
