"""The outbox table: written before sending, claimed once, recovered after a crash, kept in order."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from watcher.alerts.model import Alert, AlertAction
from watcher.store.sqlite import SQLiteStore

NOW = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


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


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "w.db")
    yield s
    s.close()


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


def test_a_notification_round_trips_through_the_table(store):
    nid = put(store)
    [n] = store.due_notifications(NOW)
    assert n.id == nid
    assert n.alert == alert()
    assert (n.state, n.attempts, n.channel, n.target) == ("pending", 0, "slack", "C1")


def test_a_row_is_claimed_once_however_many_workers_try(store, tmp_path):
    nid = put(store)
    other = SQLiteStore(tmp_path / "w.db")  # a second connection, as a second worker would have
    try:
        assert store.claim(nid, NOW) is True
        assert other.claim(nid, NOW) is False
        assert store.claim(nid, NOW) is False
    finally:
        other.close()
    [n] = store.notifications()
    assert (n.state, n.attempts) == ("sending", 1)


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
    store.claim(first, later)
    store.mark_delivered(first, later, {"ts": "1.1"})
    assert [n.id for n in store.due_notifications(later)] == [second]


def test_other_incidents_are_not_held_up_by_one_that_keeps_failing(store):
    stuck = put(store, incident_id=1)
    store.claim(stuck, NOW)
    store.mark_retry(stuck, NOW, NOW + timedelta(hours=1), "Slack 500")
    other = put(store, incident_id=2)
    assert [n.id for n in store.due_notifications(NOW)] == [other]


def test_a_dead_notification_no_longer_blocks_the_ones_after_it(store):
    first = put(store)
    second = put(store, action=AlertAction.UPDATED)
    store.claim(first, NOW)
    store.mark_dead(first, NOW, "channel_not_found")
    assert [n.id for n in store.due_notifications(NOW)] == [second]
    [dead] = store.notifications(state="dead")
    assert dead.last_error == "channel_not_found"


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
    assert n.alert.title == "API down, fix deploying"
    assert n.held


def test_rows_left_claimed_by_a_killed_process_are_sent_again_after_restart(tmp_path):
    """kill -9 between claim and send: the row is neither lost nor marked delivered."""
    db = tmp_path / "w.db"
    s = SQLiteStore(db)
    nid = put(s)
    s.close()
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime, UTC
        from watcher.store.sqlite import SQLiteStore
        s = SQLiteStore({str(db)!r})
        assert s.claim({nid}, datetime.now(UTC))
        os.kill(os.getpid(), signal.SIGKILL)  # dies before any send
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    s = SQLiteStore(db)
    try:
        [n] = s.notifications()
        assert n.state == "sending"
        assert s.due_notifications(NOW) == []
        assert s.recover_inflight() == 1
        assert [n.id for n in s.due_notifications(NOW)] == [nid]
        assert s.recover_inflight() == 0
    finally:
        s.close()


def test_alerted_targets_are_those_that_heard_of_the_incident(store):
    put(store, target="C1")
    put(store, target="C2")
    dead = put(store, target="C3")
    store.claim(dead, NOW)
    store.mark_dead(dead, NOW, "channel_not_found")
    assert [t for _, t, _ in store.alerted_targets(1)] == ["C1", "C2"]


def test_mutes_expire_and_can_be_ended_early(store):
    store.add_mute("openai", NOW + timedelta(hours=1), "migration", "ana", NOW)
    assert [m.vendor for m in store.active_mutes(NOW)] == ["openai"]
    assert store.active_mutes(NOW + timedelta(hours=2)) == []
    assert store.end_mutes("openai", NOW, by="ben") == 1
    assert store.active_mutes(NOW) == []
    whats = [r["what"] for r in store.audit_log()]
    assert whats == ["unmute", "mute"]
