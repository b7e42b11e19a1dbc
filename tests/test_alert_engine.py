"""What the alert engine queues for an incident's life: routing, mutes, quiet hours, acks, escalation.

These tests look at the outbox (the durable record of what will be sent), not at
a channel: the engine only decides; delivery is tested in test_delivery.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import scenario
import store_backends
from alerting import AlertHarness

from watcher.alerts.model import AlertAction
from watcher.model import IncidentKind, IncidentScope

UPDATE_2 = ("identified", "We found the cause and are deploying a fix.", "2026-10-07T13:20:00Z")
UPDATE_1 = ("investigating", "Claude API requests are failing.", "2026-10-07T13:01:00Z")


backend = store_backends.backend


@pytest.fixture
def make(vendor_server, tmp_path, backend):
    """Harnesses on the store under test: every test here runs on SQLite and on PostgreSQL."""
    made = []

    def build(config=None, **kw):
        kw.setdefault("store", backend.open())
        h = AlertHarness(vendor_server, tmp_path, config, **kw)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def actions(h, channel=None):
    return [(r.action.value, r.channel, r.target) for r in h.rows() if channel in (None, r.channel)]


def test_an_outage_queues_one_alert_per_routed_target_then_updates_and_resolve(make):
    h = make()
    h.clock.tick()
    h.outage(UPDATE_1)
    h.poll()
    assert actions(h) == [("opened", "slack", "C0MKTG"), ("opened", "email", "team@example.com")]
    first = h.rows()[0].alert
    assert first.kind == "outage"
    assert first.vendor_name == "Anthropic"
    assert first.latest_update == "Claude API requests are failing."
    assert first.ack_url and first.ack_url.startswith("https://watcher.example.com/ack/")

    h.clock.tick()
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    h.clock.tick()
    h.serve(scenario.operational())
    h.poll()
    assert [a for a, _, _ in actions(h, "slack")] == ["opened", "updated", "resolved"]
    resolved = h.rows()[-1].alert
    assert resolved.state == "resolved"
    assert resolved.duration  # "3m"-like, from the incident's own start


def test_repolling_an_unchanged_page_queues_nothing(make):
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    before = len(h.rows())
    for _ in range(3):
        h.clock.tick()
        h.poll()
    assert len(h.rows()) == before == 2


def test_alternatives_are_the_other_watched_vendors_with_their_state(make):
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    alert = h.rows()[0].alert
    assert [(a.vendor, a.state) for a in alert.alternatives] == [("openai", "operational")]


def test_a_route_for_other_kinds_or_vendors_gets_nothing(make):
    h = make(
        {
            "routes": [
                {"name": "api-team", "kinds": ["api_change"], "slack_channels": ["C0API"]},
                {"name": "openai-only", "vendors": ["openai"], "emails": ["oa@example.com"]},
            ]
        }
    )
    h.outage(UPDATE_1)
    h.poll()
    assert h.rows() == []
    assert h.store.open_incidents("anthropic")  # still recorded: routing decides alerting only


def test_a_muted_vendor_gets_no_alerts_and_the_end_of_the_mute_sends_no_backlog(make):
    h = make()
    h.engine.mute("anthropic", 2 * 3600, "planned migration", "ana")
    h.outage(UPDATE_1)
    h.poll()
    h.clock.tick()
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    assert h.rows() == []
    assert h.store.open_incidents("anthropic"), "measuring goes on while muted"
    h.clock.tick(2 * 3600)  # the mute is over
    h.poll()  # nothing new on the page
    assert h.rows() == [], "no burst of stale alerts when a mute ends"


def test_resolve_of_an_alert_sent_before_a_mute_still_goes_out(make):
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    h.engine.mute("anthropic", 3600, None, "ana")
    h.clock.tick()
    h.outage(UPDATE_1, UPDATE_2)
    h.poll()
    h.clock.tick()
    h.serve(scenario.operational())
    h.poll()
    assert [a for a, _, _ in actions(h, "slack")] == ["opened", "resolved"]


def test_quiet_hours_hold_a_degradation_and_merge_its_changes_into_one_message(make):
    quiet = {"start": "12:00", "end": "18:00", "timezone": "UTC", "kinds_allowed": ["outage"]}
    h = make({"routes": [{"name": "m", "slack_channels": ["C0MKTG"], "quiet_hours": quiet}]})
    h.outage(UPDATE_1, name="Elevated latency", impact="minor", component_status="degraded_performance")
    h.poll()
    [held] = h.rows()
    assert held.alert.kind == "degradation"
    assert held.held and held.not_before == datetime(2026, 10, 7, 18, 0, tzinfo=UTC)
    h.clock.tick()
    h.outage(
        UPDATE_1, UPDATE_2, name="Elevated latency", impact="minor", component_status="degraded_performance"
    )
    h.poll()
    [merged] = h.rows()
    assert merged.id == held.id
    assert merged.alert.latest_update == UPDATE_2[1]
    assert h.store.due_notifications(h.clock()) == []
    assert [n.id for n in h.store.due_notifications(datetime(2026, 10, 7, 18, 1, tzinfo=UTC))] == [held.id]


def test_an_outage_passes_quiet_hours_and_is_not_stuck_behind_a_held_alert(make):
    quiet = {"start": "12:00", "end": "18:00", "timezone": "UTC", "kinds_allowed": ["outage"]}
    h = make({"routes": [{"name": "m", "slack_channels": ["C0MKTG"], "quiet_hours": quiet}]})
    h.outage(
        UPDATE_1,
        name="Elevated latency",
        impact="minor",
        component_status="degraded_performance",
        incident_id="deg1",
    )
    h.poll()
    # an outage of OpenAI meanwhile, to the same channel
    h.server.set(
        "/openai/api/v2/summary.json", scenario.incident(UPDATE_1, name="API down", incident_id="oa1")
    )
    h.poll("openai")
    due = h.store.due_notifications(h.clock())
    assert [(n.alert.vendor, n.alert.kind) for n in due] == [("openai", "outage")]


def test_acknowledging_records_who_and_tells_those_already_alerted(make):
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    [inc] = h.store.open_incidents("anthropic")
    h.clock.tick()
    h.engine.acknowledge(inc.id, "Ana", "switching the blog queue to GPT", via="cli")
    ack = h.store.ack(inc.id)
    assert (ack.by, ack.reason, ack.via) == ("Ana", "switching the blog queue to GPT", "cli")
    acked = [r for r in h.rows() if r.action is AlertAction.ACKNOWLEDGED]
    assert {(r.channel, r.target) for r in acked} == {("slack", "C0MKTG"), ("email", "team@example.com")}
    assert acked[0].alert.acknowledged_by == "Ana"
    with pytest.raises(LookupError):
        h.engine.acknowledge(9999, "Ana")


def test_the_acknowledgement_clears_when_the_incident_resolves(make):
    h = make()
    h.outage(UPDATE_1)
    h.poll()
    [inc] = h.store.open_incidents("anthropic")
    h.engine.acknowledge(inc.id, "Ana")
    h.clock.tick()
    h.serve(scenario.operational())
    h.poll()
    assert h.store.ack(inc.id) is None
    with pytest.raises(ValueError, match="already resolved"):
        h.engine.acknowledge(inc.id, "Ana")


ONCALL = {
    "oncall": {
        "people": [
            {"name": "Ana", "email": "ana@example.com", "slack": "U0ANA"},
            {"name": "Ben", "email": "ben@example.com", "slack": "U0BEN"},
        ],
        "rotation_start": "2026-10-05",
        "remind_after": 900,
        "escalate_after": 1800,
    }
}


def test_an_unacknowledged_outage_is_reminded_then_escalated_to_the_next_person(make):
    h = make(ONCALL)
    h.outage(UPDATE_1)
    h.poll()
    assert h.engine.tick() == 0
    h.clock.tick(901)
    assert h.engine.tick() == 2  # a reminder to Slack and email
    reminders = [r for r in h.rows() if r.action is AlertAction.REMINDER]
    assert "Ana is on call" in reminders[0].alert.event_text
    assert h.engine.tick() == 0, "one reminder, not one per tick"
    h.clock.tick(900)
    queued = h.engine.tick()
    esc = [r for r in h.rows() if r.action is AlertAction.ESCALATION]
    assert queued == len(esc) == 3  # Slack, team email, and Ben's own email
    assert ("email", "ben@example.com") in {(r.channel, r.target) for r in esc}
    assert "Escalated to Ben" in esc[0].alert.event_text
    h.clock.tick(3600)
    assert h.engine.tick() == 0, "nobody left to escalate to"


def test_acknowledgement_stops_reminders_and_escalation(make):
    h = make(ONCALL)
    h.outage(UPDATE_1)
    h.poll()
    [inc] = h.store.open_incidents("anthropic")
    h.clock.tick(300)
    h.engine.acknowledge(inc.id, "Ana")
    before = len(h.rows())
    h.clock.tick(4 * 3600)
    assert h.engine.tick() == 0
    assert len(h.rows()) == before


def test_alternatives_are_only_vendors_that_do_the_same_job(make, vendor_server):
    h = make(
        {
            "watch": ["anthropic", "openai", "hubspot"],
            "vendors": {
                "hubspot": {
                    "sources": {
                        "summary": {"url": vendor_server.url("/hubspot/api/v2/summary.json")},
                        "incidents": {"enabled": False},
                        "maintenances": {"enabled": False},
                        "history": {"enabled": False},
                    }
                }
            },
        }
    )
    h.outage(UPDATE_1)
    h.poll()
    alert = h.rows()[0].alert
    assert [a.vendor for a in alert.alternatives] == ["openai"], "a CRM is no stand-in for Claude"


def test_categories_can_be_set_for_a_vendor_in_config(vendor_server, tmp_path):
    from watcher.catalog import resolve
    from watcher.config import Settings

    s = Settings.model_validate({"watch": ["hubspot"], "vendors": {"hubspot": {"categories": ["text"]}}})
    [v] = resolve(s)
    assert v.categories == ("text",)


def test_vendor_outage_alerts_wait_while_our_own_network_is_down(make):
    from watcher.incidents.correlate import Context, reconcile
    from watcher.model import SELF_VENDOR, IncidentStatus, Report, Snapshot

    h = make()
    notice = Report(
        key="network:1",
        title="Our network is down",
        status=IncidentStatus.INVESTIGATING,
        kind=IncidentKind.OUTAGE,
        reason="none of 3 control hosts answers",
    )
    ctx = Context(vendor=SELF_VENDOR, source=f"{SELF_VENDOR}/network", now=h.clock())
    changes = reconcile(ctx, Snapshot(incidents=(notice,), incident_scope=IncidentScope.ACTIVE), [])
    for ch in changes:
        h.store.save_incident(ch.incident, ch.events)
    h.engine.on_changes(changes)
    assert [(r.alert.vendor, r.action.value) for r in h.rows() if r.channel == "slack"] == [
        (SELF_VENDOR, "opened")
    ], "the network notice itself goes out"
    h.outage(UPDATE_1)
    h.poll()
    assert [r.alert.vendor for r in h.rows()] == [SELF_VENDOR, SELF_VENDOR], "no vendor outage alert meanwhile"


def test_alternatives_carry_the_latency_our_probes_measured_in_the_last_hour(make):
    h = make()
    for i, ttft in enumerate((0.5, 0.7, 0.6)):
        h.store.add_probe_result(
            {"vendor": "openai", "kind": "chat", "at": h.clock(), "ok": True, "ttft_s": ttft, "canary": f"c{i}"}
        )
    h.store.add_probe_result(
        {"vendor": "openai", "kind": "chat", "at": h.clock() - timedelta(hours=3), "ok": True, "ttft_s": 9.0}
    )
    h.outage(UPDATE_1)
    h.poll()
    [alt] = h.rows()[0].alert.alternatives
    assert alt.vendor == "openai" and alt.latency_ms == pytest.approx(600)
