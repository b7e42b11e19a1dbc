"""The store's contract, run on both backends: SQLite on a file and PostgreSQL in a fresh schema.

Cases ported from test_store_sqlite.py and test_outbox.py (the store-level ones),
plus what only matters with several instances on one PostgreSQL: migrations
racing, claims racing across connections, reconnecting, and the leader lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import store_backends

from watcher.alerts.model import Alert, AlertAction
from watcher.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from watcher.model import ComponentStatus, IncidentKind, IncidentStatus
from watcher.store.base import SourceRecord, StoreError

# the fixtures that run each test on SQLite and on PostgreSQL (see store_backends.py)
backend, store, pg_url = store_backends.backend, store_backends.store, store_backends.pg_url

NOW = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


def sample(**kw) -> Incident:
    base = dict(
        vendor="openai",
        title="Elevated errors",
        kind=IncidentKind.DEGRADATION,
        reason="elevated errors",
        opened_at=NOW,
        updated_at=NOW,
        keys={"01ABC"},
        components=["API", "ChatGPT"],
        component_statuses={"API": ComponentStatus.PARTIAL_OUTAGE},
        bodies=["We are investigating."],
        seen_updates={"u1"},
        active_sources={"openai/summary"},
    )
    base.update(kw)
    return Incident(**base)


def alert(incident_id: int = 1, action: AlertAction = AlertAction.OPENED, title: str = "API down") -> Alert:
    return Alert(
        incident_id=incident_id,
        vendor="openai",
        vendor_name="OpenAI",
        title=title,
        kind="outage",
        reason="test",
        state="open",
        status="investigating",
        action=action,
    )


def put(store, incident_id=1, action=AlertAction.OPENED, target="C1", now=NOW, **kw) -> int:
    return store.enqueue(
        incident_id=incident_id,
        action=action,
        channel="slack",
        target=target,
        route="r",
        alert=alert(incident_id, action),
        now=now,
        **kw,
    )


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


# -- schema -----------------------------------------------------------------------------------------


def test_a_new_store_has_the_current_schema_and_reopening_keeps_the_data(backend):
    s = backend.open()
    version = s.schema_version
    assert version >= 1
    iid = s.save_incident(sample(), [IncidentEvent(EventType.OPENED, NOW, "Elevated errors")])
    s.close()
    s = backend.open()
    try:
        assert s.schema_version == version
        inc = s.incident(iid)
        assert inc.title == "Elevated errors" and inc.keys == {"01ABC"}
        assert inc.component_statuses == {"API": ComponentStatus.PARTIAL_OUTAGE}
        assert inc.active_sources == {"openai/summary"}
    finally:
        s.close()


def test_a_database_from_a_newer_watcher_is_refused_clearly(backend):
    s = backend.open()
    s._exec("UPDATE schema_version SET version = 999")
    s.close()
    with pytest.raises(StoreError, match="newer than this watcher"):
        backend.open()


# -- sources ----------------------------------------------------------------------------------------


def test_source_record_round_trip(store):
    rec = SourceRecord(
        "openai/summary",
        "openai",
        "statuspage",
        "https://x",
        last_polled_at=NOW,
        last_success_at=NOW + timedelta(seconds=1, microseconds=999_999),
        etag='"abc"',
        summary={"components": {"Z": "operational", "API": "major_outage"}, "indicator": "major"},
        polls=3,
        failures=1,
        error="timeout",
        error_kind="timeout",
        error_since=NOW,
    )
    store.save_source(rec)
    got = store.source("openai/summary")
    assert got == SourceRecord(
        **{
            **{f: getattr(rec, f) for f in rec.__slots__},
            "last_success_at": NOW + timedelta(seconds=1),  # whole seconds, as SQLite keeps them
        }
    )
    assert list(got.summary["components"]) == ["Z", "API"], "JSON comes back as written, key order included"
    assert got.last_polled_at.tzinfo is not None and got.last_polled_at.utcoffset() == timedelta(0)
    rec.etag, rec.polls = '"def"', 4
    store.save_source(rec)
    assert (store.source("openai/summary").etag, store.source("openai/summary").polls) == ('"def"', 4)
    assert store.source("nope") is None


def test_sources_are_listed_by_key_in_byte_order(store):
    for key in ("b/x", "a/y", "B/z", "a/_"):
        store.save_source(SourceRecord(key, key.split("/")[0], "statuspage", "https://x"))
    assert [r.key for r in store.sources()] == ["B/z", "a/_", "a/y", "b/x"]
    assert [r.key for r in store.sources("a")] == ["a/_", "a/y"]
    store.add_observation(
        "a/y", "a", NOW, "snapshot", {"indicator": "none"}
    )  # accepted, nothing to read back


# -- incidents -------------------------------------------------------------------------------------


def test_incident_round_trip_and_queries(store):
    a = store.save_incident(sample(started_at=NOW - timedelta(minutes=5)), [])
    b = store.save_incident(
        sample(
            vendor="anthropic",
            keys={"x1", "x2"},
            state=IncidentState.RESOLVED,
            resolved_at=NOW + timedelta(hours=1),
            status=IncidentStatus.RESOLVED,
            is_maintenance=True,
            backfilled=True,
        ),
        [],
    )
    assert [i.id for i in store.open_incidents()] == [a]
    assert [i.id for i in store.open_incidents("anthropic")] == []
    assert [i.id for i in store.incidents(vendor="anthropic")] == [b]
    assert [i.id for i in store.incidents()] == [b, a], "newest start first"
    assert [i.id for i in store.incidents(open_only=True)] == [a]
    assert [i.id for i in store.incidents_by_keys("openai", ["01ABC", "nope"])] == [a]
    assert store.incidents_by_keys("anthropic", ["01ABC"]) == []
    assert store.incidents_by_keys("openai", []) == []
    got = store.incident(b)
    assert got.keys == {"x1", "x2"} and got.is_maintenance and got.backfilled
    assert got.resolved_at == NOW + timedelta(hours=1) and got.state == IncidentState.RESOLVED
    assert store.incident(a).components == ["API", "ChatGPT"]
    assert store.incident(a).started_at == NOW - timedelta(minutes=5)
    assert store.incident(999_999) is None


def test_an_incident_saved_again_is_updated_in_place_with_new_keys(store):
    inc = sample()
    iid = store.save_incident(inc, [IncidentEvent(EventType.OPENED, NOW, "opened")])
    inc.title, inc.revision = "Elevated errors on the API", 2
    inc.keys.add("02DEF")
    inc.state, inc.resolved_at = IncidentState.RESOLVED, NOW + timedelta(minutes=30, microseconds=5)
    assert (
        store.save_incident(inc, [IncidentEvent(EventType.RESOLVED, NOW + timedelta(minutes=30), "resolved")])
        == iid
    )
    got = store.incident(iid)
    assert (got.title, got.revision, got.keys) == ("Elevated errors on the API", 2, {"01ABC", "02DEF"})
    assert got.resolved_at == NOW + timedelta(minutes=30)
    assert [i.id for i in store.incidents_by_keys("openai", ["02DEF"])] == [iid]
    assert [e.event.type for e in store.events(iid)] == [EventType.OPENED, EventType.RESOLVED]


def test_same_update_event_is_stored_once_and_events_round_trip(store):
    inc = sample()
    ev = IncidentEvent(
        EventType.VENDOR_UPDATE,
        NOW,
        "We are investigating.",
        status="investigating",
        source="feed",
        dedupe="k1",
    )
    store.save_incident(inc, [ev])
    store.save_incident(inc, [ev, IncidentEvent(EventType.VENDOR_UPDATE, NOW, "no key")])
    stored = store.events(inc.id)
    assert [e.event for e in stored] == [ev, IncidentEvent(EventType.VENDOR_UPDATE, NOW, "no key")]
    assert all(e.incident_id == inc.id for e in stored) and stored[0].id < stored[1].id


# -- the outbox ---------------------------------------------------------------------------------------


def test_a_notification_round_trips_through_the_table(store):
    nid = put(store)
    [n] = store.due_notifications(NOW)
    assert n.id == nid
    assert n.alert == alert()
    assert (n.state, n.attempts, n.channel, n.target, n.route) == ("pending", 0, "slack", "C1", "r")
    assert n.not_before == NOW and n.created_at == NOW and not n.held and not n.fallback_sent
    assert store.next_due_at() == NOW
    assert store.next_due_at(after=NOW - timedelta(seconds=1)) == NOW
    assert store.next_due_at(after=NOW) is None, "only rows not yet due"
    assert store.due_notifications(NOW - timedelta(seconds=1)) == []


def test_a_row_is_claimed_once_however_many_workers_try(store, backend):
    nid = put(store)
    other = backend.open()  # a second connection, as a second worker or instance would have
    try:
        assert store.claim(nid, NOW) is True
        assert other.claim(nid, NOW) is False
        assert store.claim(nid, NOW) is False
    finally:
        other.close()
    [n] = store.notifications()
    assert (n.state, n.attempts, n.claimed_at) == ("sending", 1, NOW)


def test_racing_workers_on_two_connections_claim_each_row_exactly_once(store, backend):
    ids = [put(store, incident_id=i) for i in range(1, 61)]
    stores = [backend.open(), backend.open()]
    won: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        order = ids if k == 0 else list(reversed(ids))
        for nid in order:
            if stores[k].claim(nid, NOW):
                won[k].append(nid)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert sorted(won[0] + won[1]) == ids, "every row claimed once, none twice"
    assert {n.attempts for n in store.notifications(limit=1000)} == {1}


def test_an_incidents_messages_to_one_target_go_out_in_order(store):
    first = put(store, action=AlertAction.OPENED)
    second = put(store, action=AlertAction.UPDATED)
    assert [n.id for n in store.due_notifications(NOW)] == [first]
    store.claim(first, NOW)
    assert store.due_notifications(NOW) == [], "the update waits while the opening is being sent"
    store.mark_retry(first, NOW, NOW + timedelta(seconds=30), "Slack 500")
    assert store.due_notifications(NOW) == [], "and while the opening waits for its retry"
    later = NOW + timedelta(seconds=31)
    assert [n.id for n in store.due_notifications(later)] == [first]
    [n, _second] = store.notifications(state="pending", incident_id=1)[::-1]
    assert (n.id, n.last_error, n.first_error_at) == (first, "Slack 500", NOW)
    store.claim(first, later)
    store.mark_delivered(first, later, {"ts": "1.1"})
    assert [n.id for n in store.due_notifications(later)] == [second]
    [done] = store.notifications(state="delivered")
    assert (done.ref, done.delivered_at, done.attempts, done.last_error) == ({"ts": "1.1"}, later, 2, None)


def test_due_rows_are_ordered_per_incident_and_target_only(store):
    a1 = put(store, incident_id=1, target="C1")
    b1 = put(store, incident_id=2, target="C1")
    a2 = put(store, incident_id=1, target="C2")
    a1u = put(store, incident_id=1, target="C1", action=AlertAction.UPDATED)
    b1u = put(store, incident_id=2, target="C1", action=AlertAction.UPDATED)
    assert [n.id for n in store.due_notifications(NOW)] == [a1, b1, a2]
    assert [n.id for n in store.due_notifications(NOW, limit=2)] == [a1, b1]
    store.claim(a1, NOW)
    store.mark_delivered(a1, NOW)
    assert [n.id for n in store.due_notifications(NOW)] == [b1, a2, a1u]
    store.claim(b1, NOW)
    store.mark_dead(b1, NOW, "channel_not_found")
    assert [n.id for n in store.due_notifications(NOW)] == [a2, a1u, b1u]


def test_other_incidents_are_not_held_up_by_one_that_keeps_failing(store):
    stuck = put(store, incident_id=1)
    store.claim(stuck, NOW)
    store.mark_retry(stuck, NOW, NOW + timedelta(hours=1), "Slack 500")
    other = put(store, incident_id=2)
    assert [n.id for n in store.due_notifications(NOW)] == [other]
    assert store.next_due_at() == NOW


def test_a_dead_notification_no_longer_blocks_the_ones_after_it(store):
    first = put(store)
    second = put(store, action=AlertAction.UPDATED)
    store.claim(first, NOW)
    store.mark_dead(first, NOW, "channel_not_found")
    assert [n.id for n in store.due_notifications(NOW)] == [second]
    [dead] = store.notifications(state="dead")
    assert (dead.last_error, dead.first_error_at) == ("channel_not_found", NOW)


def test_held_notifications_merge_into_one_with_the_latest_facts(store):
    until = NOW + timedelta(hours=5)
    a = put(store, action=AlertAction.OPENED, not_before=until)
    b = store.enqueue(
        incident_id=1,
        action=AlertAction.UPDATED,
        channel="slack",
        target="C1",
        route="r",
        alert=alert(1, AlertAction.UPDATED, title="API down, fix deploying"),
        now=NOW + timedelta(minutes=5),
        not_before=until,
    )
    assert a == b
    [n] = store.notifications()
    assert n.alert.title == "API down, fix deploying" and n.action == AlertAction.UPDATED
    assert n.held and n.not_before == until
    assert put(store, target="C2", not_before=until) != a, "another target is another row"


def test_fallback_rows_and_alerted_targets(store):
    put(store, target="C1")
    first = put(store, target="C2")
    dead = put(store, target="C3")
    store.claim(dead, NOW)
    store.mark_dead(dead, NOW, "channel_not_found")
    store.enqueue(
        incident_id=1,
        action=AlertAction.OPENED,
        channel="email",
        target="ops@example.com",
        route="fallback",
        alert=alert(),
        now=NOW,
        fallback_of=dead,
    )
    store.mark_fallback_sent(dead)
    put(store, target="C2", action=AlertAction.UPDATED)  # same target again: listed once, at its first place
    assert store.alerted_targets(1) == [
        ("slack", "C1", "r"),
        ("slack", "C2", "r"),
        ("email", "ops@example.com", "fallback"),
    ]
    assert store.alerted_targets(2) == []
    rows = {n.id: n for n in store.notifications(limit=10)}
    assert rows[dead].fallback_sent and not rows[first].fallback_sent
    assert [n.fallback_of for n in rows.values() if n.channel == "email"] == [dead]


def test_rows_left_claimed_by_a_killed_process_are_sent_again_after_restart(store, backend):
    """kill -9 between claim and send: the row is neither lost nor marked delivered."""
    nid = put(store)
    script = backend.opener + textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime, UTC
        assert s.claim({nid}, datetime.now(UTC))
        os.kill(os.getpid(), signal.SIGKILL)  # dies before any send
        """
    )
    proc = run_python(script)
    assert proc.returncode == -9, proc.stderr
    [n] = store.notifications()
    assert n.state == "sending"
    assert store.due_notifications(NOW) == []
    assert store.recover_inflight() == 1
    assert [n.id for n in store.due_notifications(NOW)] == [nid]
    assert store.recover_inflight() == 0


# -- threads, acks, mutes, audit, alert state ------------------------------------------------------------


def test_slack_and_email_threads(store):
    assert store.slack_thread(1, "C1") is None and store.email_thread(1, "a@b") is None
    store.save_slack_thread(1, "C1", "1700000000.000100", NOW)
    store.save_slack_thread(1, "C1", "1700000000.000200", NOW)
    store.save_email_thread(1, "a@b", "<root@w>", 1)
    store.save_email_thread(1, "a@b", "<root@w>", 2)
    assert store.slack_thread(1, "C1") == "1700000000.000200"
    assert store.slack_thread(1, "C2") is None
    assert store.email_thread(1, "a@b") == ("<root@w>", 2)


def test_an_acknowledge_link_is_recorded_once_and_later_uses_see_the_first(store):
    assert store.ack_link_use("7:1800000000:abc") is None
    assert store.use_ack_link("7:1800000000:abc", 7, "Bob", NOW) is None
    assert store.use_ack_link("7:1800000000:abc", 7, "Mallory", NOW + timedelta(minutes=1)) == ("Bob", NOW)
    assert store.ack_link_use("7:1800000000:abc") == ("Bob", NOW)
    assert store.use_ack_link("7:1800000000:def", 7, "Ana", NOW) is None, "another link is another use"


def test_acknowledgements_replace_each_other_and_are_audited(store):
    assert store.ack(1) is None
    store.acknowledge(1, "ana", NOW, None, "slack")
    store.acknowledge(1, "ben", NOW + timedelta(minutes=1), "on it", "web")
    a = store.ack(1)
    assert (a.incident_id, a.by, a.at, a.reason, a.via) == (
        1,
        "ben",
        NOW + timedelta(minutes=1),
        "on it",
        "web",
    )
    store.clear_ack(1, NOW + timedelta(minutes=2))
    assert store.ack(1) is None
    log = store.audit_log()
    assert [(r["who"], r["what"], r["detail"]) for r in log] == [
        ("ben", "ack", "incident #1 via web: on it"),
        ("ana", "ack", "incident #1 via slack"),
    ]
    assert log[0]["at"] == "2026-10-07T13:01:00.000000+00:00", "the same text SQLite returns"
    assert datetime.fromisoformat(log[1]["at"]) == NOW
    assert len(store.audit_log(limit=1)) == 1


def test_mutes_expire_and_can_be_ended_early(store):
    mid = store.add_mute("openai", NOW + timedelta(hours=1), "migration", "ana", NOW)
    [m] = store.active_mutes(NOW)
    assert (m.id, m.vendor, m.until, m.reason, m.by, m.created_at) == (
        mid,
        "openai",
        NOW + timedelta(hours=1),
        "migration",
        "ana",
        NOW,
    )
    assert store.active_mutes(NOW + timedelta(hours=2)) == []
    assert store.end_mutes("anthropic", NOW, by="ben") == 0
    assert store.end_mutes("openai", NOW, by="ben") == 1
    assert store.active_mutes(NOW) == []
    log = store.audit_log()
    assert [r["what"] for r in log] == ["unmute", "mute"]
    assert log[1]["detail"] == "openai until 2026-10-07T14:00:00.000000+00:00: migration"


def test_alert_state_is_saved_field_by_field(store):
    assert store.alert_state(7) is None
    store.save_alert_state(7, first_alert_at=NOW)
    store.save_alert_state(7, last_reminder_at=NOW + timedelta(hours=1), escalation_level=1)
    assert store.alert_state(7) == {
        "first_alert_at": NOW,
        "last_reminder_at": NOW + timedelta(hours=1),
        "escalation_level": 1,
        "escalated_at": None,
    }


# -- measurements and subscriptions --------------------------------------------------------------------


def test_probe_results_come_back_as_sqlite_gives_them(store):
    first = store.add_probe_result(
        {
            "vendor": "openai",
            "kind": "chat",
            "model": "m",
            "at": NOW,
            "ok": True,
            "ttft_s": 0.25,
            "tokens_in": 5,
        }
    )
    second = store.add_probe_result(
        {
            "vendor": "openai",
            "kind": "chat",
            "at": NOW + timedelta(seconds=1),
            "ok": False,
            "error_class": "timeout",
            "network_ok": True,
            "passed": None,
        }
    )
    store.add_probe_result({"vendor": "anthropic", "kind": "chat", "at": NOW, "ok": True})
    rows = store.probe_results("openai")
    assert [r["id"] for r in rows] == [second, first]
    r = rows[1]
    assert (r["vendor"], r["model"], r["ok"], r["ttft_s"], r["tokens_in"], r["passed"]) == (
        "openai",
        "m",
        1,
        0.25,
        5,
        None,
    )
    assert r["at"] == "2026-10-07T13:00:00.000000+00:00"
    assert (rows[0]["ok"], rows[0]["network_ok"], rows[0]["error_class"]) == (0, 1, "timeout")
    assert len(store.probe_results()) == 3 and len(store.probe_results(limit=1)) == 1


def test_detector_and_budget_state_round_trip(store):
    assert store.detector_state("openai/ttft") is None and store.budget_state("openai") is None
    store.save_detector_state("openai/ttft", {"mean": 1.5, "n": 3}, NOW)
    store.save_detector_state("openai/ttft", {"mean": 1.25, "n": 4}, NOW)
    store.save_detector_state("openai_x/ttft", {"n": 1}, NOW)
    store.save_detector_state("anthropic/ttft", {"n": 2}, NOW)
    assert store.detector_state("openai/ttft") == {"mean": 1.25, "n": 4}
    assert list(store.detector_states("openai/")) == ["openai/ttft"]
    assert list(store.detector_states()) == ["anthropic/ttft", "openai/ttft", "openai_x/ttft"]
    store.save_budget_state("_all", {"vendors": {"openai": {"day": "2026-10-07", "spent_tokens": 10}}}, NOW)
    assert store.budget_state("_all")["vendors"]["openai"]["spent_tokens"] == 10


def test_subscriptions_round_trip_and_are_audited(store):
    assert store.subscribe("C0NEWS", "openai", ["outage", "outage", "degradation"], "U1", NOW) is True
    assert store.subscribe("C0NEWS", "openai", ["outage", "degradation"], "U2", NOW) is False
    assert store.subscribe("C0NEWS", "openai", ["outage"], "U2", NOW + timedelta(minutes=1)) is True
    assert store.subscribe("C0NEWS", "*", ["outage"], "U1", NOW) is True
    assert store.subscribe("C0OPS", "anthropic", ["outage"], "U1", NOW) is True
    subs = store.subscriptions()
    assert [(s.channel, s.vendor, s.kinds) for s in subs] == [
        ("C0NEWS", "*", ("outage",)),
        ("C0NEWS", "openai", ("outage",)),
        ("C0OPS", "anthropic", ("outage",)),
    ]
    openai = subs[1]
    assert (openai.created_by, openai.created_at) == ("U2", NOW + timedelta(minutes=1))
    assert [s.vendor for s in store.subscriptions_for("openai")] == ["openai", "*"]
    assert [s.vendor for s in store.subscriptions("C0NEWS")] == ["*", "openai"]
    assert store.unsubscribe("C0NEWS", "nope", "U1", NOW) == []
    assert store.unsubscribe("C0NEWS", None, "U1", NOW) == ["*", "openai"]
    assert store.subscriptions("C0NEWS") == []
    changes = store.subscription_changes("C0NEWS")
    assert [(c["what"], c["detail"]) for c in changes] == [
        ("unsubscribe", "C0NEWS: openai"),
        ("unsubscribe", "C0NEWS: *"),
        ("subscribe", "C0NEWS: * (outage)"),
        ("subscribe", "C0NEWS: openai (outage)"),
        ("subscribe", "C0NEWS: openai (outage, degradation)"),
    ]
    assert isinstance(changes[0]["at"], str)
    assert store.subscription_changes("C0NEW") == [], "a channel id is matched whole"


# -- PostgreSQL only: several processes, lost connections, plain errors --------------------------------


def test_migrations_run_concurrently_from_three_processes(pg_url):
    go = time.time() + 2.0  # they import, then start together
    script = textwrap.dedent(
        f"""
        import time
        from watcher.store.postgres import SCHEMA_VERSION, PostgresStore
        time.sleep(max(0, {go!r} - time.time()))
        s = PostgresStore({pg_url!r})
        assert s.schema_version == SCHEMA_VERSION
        s.close()
        print("ok")
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    assert all(out.strip() == "ok" for out, _ in outs)
    from watcher.store.postgres import SCHEMA_VERSION, PostgresStore

    s = PostgresStore(pg_url)
    try:
        assert s.schema_version == SCHEMA_VERSION
        assert s.sources() == [] and s.open_incidents() == []
    finally:
        s.close()


def _terminate(url: str, pid: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            time.sleep(0.05)


def test_a_dropped_connection_is_reopened(pg_url):
    from watcher.store.postgres import PostgresStore

    s = PostgresStore(pg_url)
    try:
        s.save_source(SourceRecord("a/b", "a", "statuspage", "https://x"))
        _terminate(pg_url, s._conn.info.backend_pid)
        assert [r.key for r in s.sources()] == ["a/b"], "a read is tried again on a new connection"
        _terminate(pg_url, s._conn.info.backend_pid)
        with pytest.raises(StoreError, match="lost the connection to PostgreSQL at 127.0.0.1:5432"):
            s.add_observation("a/b", "a", NOW, "snapshot", {})  # an insert may have happened: not repeated
        s.add_observation("a/b", "a", NOW, "snapshot", {})  # the next call reconnects
        _terminate(pg_url, s._conn.info.backend_pid)
        s.save_source(SourceRecord("a/c", "a", "statuspage", "https://x"))  # an upsert is safe to repeat
        assert len(s.sources()) == 2
    finally:
        s.close()


def test_postgres_connections_come_from_a_pool_so_a_long_transaction_does_not_hold_up_others(pg_url):
    """A slow board query or a long transaction in one thread; the daemon's writes go on in another."""
    import threading

    from watcher.store.postgres import PostgresStore

    s = PostgresStore(pg_url)
    inside, finished = threading.Event(), threading.Event()
    release = threading.Event()

    def long_transaction():
        with s.transaction("hold"):
            s.meta_set("held", "1")
            inside.set()
            release.wait(30)
        finished.set()

    t = threading.Thread(target=long_transaction)
    t.start()
    try:
        assert inside.wait(30)
        s.save_source(SourceRecord("a/b", "a", "statuspage", "https://x"))  # another connection, not blocked
        assert [r.key for r in s.sources()] == ["a/b"]
        assert s.meta_get("held") is None, "the other transaction's write is not visible before its commit"
        assert not finished.is_set()
    finally:
        release.set()
        t.join(30)
    assert s.meta_get("held") == "1"
    assert s._pool.opened == 2, "two threads at once: two connections, both kept for reuse"
    s.close()


def test_a_server_restart_ends_every_pooled_connection_and_the_next_call_still_works(pg_url):
    import threading

    import psycopg

    from watcher.store.postgres import PostgresStore

    s = PostgresStore(pg_url)
    try:
        barrier = threading.Barrier(3)

        def busy():  # three connections in the pool
            with s.transaction("fill"):
                barrier.wait(30)

        threads = [threading.Thread(target=busy) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        pids = [c.info.backend_pid for c in s._pool.idle]
        assert len(pids) == 3
        for pid in pids:
            _terminate(pg_url, pid)
        assert s.sources() == [], "a read after a restart is answered on a new connection"
        with psycopg.connect(pg_url, autocommit=True) as admin:
            alive = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
            ).fetchone()[0]
        assert alive == 0 and s._pool.opened == 1, "the dead connections were dropped, not kept"
    finally:
        s.close()


def test_an_unreachable_server_is_a_plain_error_without_the_password():
    from watcher.store.postgres import PostgresStore

    with pytest.raises(StoreError) as got:
        PostgresStore("postgresql://watcher:hunter2@127.0.0.1:1/watcher", connect_timeout=2)
    msg = str(got.value)
    assert msg.startswith("PostgreSQL at 127.0.0.1:1 is unreachable: "), msg
    assert "hunter2" not in msg


def test_urls_are_redacted_for_messages():
    from watcher.store.postgres import redact_url, server_address

    assert (
        redact_url("postgresql://w:p%40ss@db:5433/x?sslmode=require")
        == "postgresql://w:***@db:5433/x?sslmode=require"
    )
    assert "s3cret" not in redact_url("postgresql://w@db/x?password=s3cret&sslmode=require")
    assert redact_url("postgresql://db/x") == "postgresql://db/x"
    assert server_address("postgresql://w:p@db/x") == "db:5432"
    assert server_address("postgresql://w:p@a:1,b:2/x") == "a:1,b:2"


def test_open_store_picks_postgres_for_a_postgresql_url(pg_url, tmp_path):
    from watcher.config import Settings
    from watcher.store import open_store
    from watcher.store.postgres import PostgresStore
    from watcher.store.sqlite import SQLiteStore

    pg = open_store(Settings(storage={"url": pg_url}), location="eu-west")
    sq = open_store(Settings(storage={"path": tmp_path / "w.db"}))
    try:
        assert isinstance(pg, PostgresStore) and isinstance(sq, SQLiteStore)
        pg.add_probe_result({"vendor": "openai", "kind": "chat", "at": NOW, "ok": True})
        assert pg.probe_results()[0]["location"] == "eu-west"
    finally:
        pg.close()
        sq.close()
    with pytest.raises(StoreError, match="not a postgresql:// URL"):
        open_store(Settings(storage={"url": "mysql://u:pw@h/db"}))


def test_meta_values_and_counters(pg_url):
    from watcher.store.postgres import PostgresStore

    s = PostgresStore(pg_url)
    try:
        assert s.meta_get("report.sent.slack") is None
        s.meta_set("report.sent.slack", "2026-10-07T13:00:00+00:00")
        assert s.meta_get("report.sent.slack") == "2026-10-07T13:00:00+00:00"
        assert s.meta_add("retention.pruned.delivered.slack", 3) == 3
        assert s.meta_add("retention.pruned.delivered.slack", 4) == 7
        assert s.meta_items("retention.pruned.") == {"retention.pruned.delivered.slack": "7"}
    finally:
        s.close()


# -- the leader lease ---------------------------------------------------------------------------------


def _wait_gone(url: str, application_name: str, pid: int | None = None) -> None:
    """Until the server has ended that session (``pid``: that backend only, since other tests and
    watchers on the same server may use the same instance names)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            if not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND (%s::int IS NULL OR pid = %s)",
                [application_name, pid, pid],
            ).fetchone():
                return
            time.sleep(0.05)
    raise AssertionError(f"{application_name} still connected")


def test_of_two_leases_exactly_one_leads(pg_url):
    from watcher.store.leader import LeaderLease

    a, b = LeaderLease(pg_url, "a", "eu"), LeaderLease(pg_url, "b", "us")
    try:
        results = [a.tick(), b.tick(), a.tick(), b.tick()]
        assert results == [True, False, True, False]
        assert (a.is_leader, b.is_leader, a.leading, b.leading) == (True, False, True, False)
        assert b.try_acquire() is False
        cluster = a.instances()
        assert [(i.name, i.location, i.is_leader) for i in cluster] == [("a", "eu", True), ("b", "us", False)]
        assert all(i.heartbeat_age_s is not None and i.heartbeat_age_s < 5 for i in cluster)
        first = a.epoch
        a.release()
        assert a.is_leader is False and b.try_acquire() is True
        assert b.epoch == first + 1, "each new leader gets a higher fencing token"
        assert a.try_acquire() is False
    finally:
        a.close()
        b.close()


def test_when_the_leaders_connection_closes_the_other_takes_over_at_its_next_try(pg_url):
    from watcher.store.leader import LeaderLease

    a, b = LeaderLease(pg_url, "a"), LeaderLease(pg_url, "b")
    try:
        assert a.try_acquire() and not b.try_acquire()
        backend = a._conn.info.backend_pid
        a._conn.close()  # the connection drops under the leader
        _wait_gone(pg_url, "watcher lease a", backend)
        assert b.try_acquire() is True
        assert a.is_leader is False and a.leading is False
        assert a.try_acquire() is False, "it comes back as a follower"
        a.heartbeat()
        assert {i.name: i.is_leader for i in b.instances()} == {"a": False, "b": True}
    finally:
        a.close()
        b.close()


def test_a_leader_killed_with_sigkill_is_replaced_at_the_next_try(pg_url):
    from watcher.store.leader import LeaderLease

    script = textwrap.dedent(
        f"""
        import sys, time
        from watcher.store.leader import LeaderLease
        lease = LeaderLease({pg_url!r}, "doomed")
        print("leader" if lease.tick() else "follower", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    b = LeaderLease(pg_url, "b")
    try:
        assert proc.stdout.readline().strip() == "leader"
        assert b.try_acquire() is False
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        _wait_gone(pg_url, "watcher lease doomed")
        assert b.try_acquire() is True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        b.close()


def test_a_silent_leader_loses_the_lease_and_knows_it_first(pg_url):
    """A leader that stops talking (machine gone, process frozen) is dropped by the server after 0.6 × timeout."""
    from watcher.store.leader import LeaderLease

    a, b = LeaderLease(pg_url, "a", timeout=5), LeaderLease(pg_url, "b", timeout=5)
    try:
        assert a.try_acquire() and a.leading
        t0 = time.monotonic()
        time.sleep(1.6)
        assert not a.leading, "without a check for 0.3 × timeout it stops acting as leader (no I/O needed)"
        assert b.try_acquire() is False, "while the server still holds the lock for it"
        while not b.try_acquire() and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        took = time.monotonic() - t0
        assert b.is_leader, "the server ended the silent leader's session: the lock is free"
        assert 2.8 <= took <= 5.0, (
            f"taken over after {took:.1f}s: after idle_session_timeout (3 s), within the 5 s"
        )
        assert a.is_leader is False
    finally:
        a.close()
        b.close()


def test_on_sqlite_the_single_instance_always_leads(tmp_path):
    from watcher.store.leader import SoloLease, open_lease
    from watcher.store.sqlite import SQLiteStore

    s = SQLiteStore(tmp_path / "w.db")
    lease = open_lease(s, "solo", "office")
    try:
        assert isinstance(lease, SoloLease)
        assert lease.try_acquire() and lease.is_leader and lease.leading and lease.tick()
        [me] = lease.instances()
        assert (me.name, me.location, me.is_leader) == ("solo", "office", True)
    finally:
        lease.close()
        s.close()


def test_open_lease_on_postgres_gives_a_real_lease(pg_url):
    from watcher.store.leader import LeaderLease, open_lease
    from watcher.store.postgres import PostgresStore

    s = PostgresStore(pg_url)
    lease = open_lease(s, "one", "eu")
    try:
        assert isinstance(lease, LeaderLease) and lease.tick()
        assert [(i.name, i.is_leader) for i in s.instances()] == [("one", True)]
    finally:
        lease.close()
        s.close()


def test_the_standing_acknowledgements_of_many_incidents_in_one_call(store):
    a = store.save_incident(sample(), [])
    b = store.save_incident(sample(keys={"x2"}), [])
    c = store.save_incident(sample(keys={"x3"}), [])
    store.acknowledge(a, "alice", NOW, None, "slack")
    store.acknowledge(a, "bob", NOW + timedelta(minutes=1), "on it", "board")  # the newest stands
    store.acknowledge(b, "carol", NOW, None, "cli")
    store.clear_ack(b, NOW + timedelta(minutes=2))
    got = store.acks([a, b, c])
    assert list(got) == [a] and (got[a].by, got[a].reason, got[a].via) == ("bob", "on it", "board")
    assert got[a] == store.ack(a)
