"""The durable outbox and the alert-side tables (acks, mutes, threads), for the SQLite store.

Every notification is a row written *before* anything is sent. A sender claims a
row with an UPDATE that must change exactly one row (the pattern Healthchecks
uses for its flips), so two workers never send the same row. A row is
``pending`` → ``sending`` (claimed, the network call may be under way) →
``delivered``, or back to ``pending`` with a later ``not_before`` after a
transient failure, or ``dead`` after a permanent one or after retrying too long.

A crash leaves claimed rows in ``sending``. On start they are put back to
``pending``: the send may or may not have happened, so at most one duplicate per
crash, and only for a send that was in flight. Nothing is ever lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from watcher.alerts.model import Alert, AlertAction


@dataclass(slots=True)
class Notification:
    id: int
    incident_id: int
    action: AlertAction
    channel: str
    target: str
    route: str
    alert: Alert
    state: str
    attempts: int
    not_before: datetime
    created_at: datetime
    claimed_at: datetime | None = None
    delivered_at: datetime | None = None
    last_error: str | None = None
    first_error_at: datetime | None = None
    fallback_of: int | None = None
    fallback_sent: bool = False
    held: bool = False
    ref: dict[str, Any] | None = None


@dataclass(slots=True)
class Ack:
    incident_id: int
    by: str
    at: datetime
    reason: str | None
    via: str


@dataclass(slots=True)
class Mute:
    id: int
    vendor: str
    until: datetime
    reason: str | None
    by: str | None
    created_at: datetime


def _ts(dt: datetime | None) -> str | None:
    from datetime import UTC

    return dt.astimezone(UTC).isoformat(timespec="microseconds") if dt else None


def _dt(v: str | datetime | None) -> datetime | None:
    """A stored time: SQLite keeps ISO text, PostgreSQL gives datetimes; both come back as datetimes."""
    if isinstance(v, datetime):
        return v
    return datetime.fromisoformat(v) if v else None


def migration_2(db: sqlite_utils.Database) -> None:
    db["notifications"].create(
        {
            "id": int,
            "incident_id": int,
            "action": str,
            "channel": str,
            "target": str,
            "route": str,
            "alert": str,
            "state": str,
            "attempts": int,
            "not_before": str,
            "created_at": str,
            "claimed_at": str,
            "delivered_at": str,
            "last_error": str,
            "first_error_at": str,
            "fallback_of": int,
            "fallback_sent": int,
            "held": int,
            "ref": str,
        },
        pk="id",
        defaults={"attempts": 0, "fallback_sent": 0, "held": 0},
    )
    db["notifications"].create_index(["state", "not_before"])
    db["notifications"].create_index(["incident_id", "channel", "target", "state", "id"])
    db["slack_threads"].create(
        {"incident_id": int, "channel": str, "ts": str, "created_at": str}, pk=("incident_id", "channel")
    )
    db["email_threads"].create(
        {"incident_id": int, "address": str, "root_id": str, "seq": int}, pk=("incident_id", "address")
    )
    db["acks"].create(
        {"id": int, "incident_id": int, "by": str, "at": str, "reason": str, "via": str, "cleared_at": str},
        pk="id",
    )
    db["acks"].create_index(["incident_id"])
    db["mutes"].create(
        {
            "id": int,
            "vendor": str,
            "until": str,
            "reason": str,
            "by": str,
            "created_at": str,
            "ended_at": str,
        },
        pk="id",
    )
    db["alert_state"].create(
        {
            "incident_id": int,
            "first_alert_at": str,
            "last_reminder_at": str,
            "escalation_level": int,
            "escalated_at": str,
        },
        pk="incident_id",
    )
    db["audit"].create({"id": int, "at": str, "who": str, "what": str, "detail": str}, pk="id")


def migration_5(db: sqlite_utils.Database) -> None:
    """Acknowledge links act once: each use is recorded under the link's own key."""
    db["ack_link_uses"].create(
        {"key": str, "incident_id": int, "by": str, "at": str}, pk="key"
    )


class OutboxTables:
    """Mixed into :class:`~watcher.store.sqlite.SQLiteStore`; uses its ``db``, ``_tx`` and ``_wrap``.

    Writes that the database refuses (full disk, read-only file, lock held too long)
    raise :class:`~watcher.store.base.StoreError`, as the rest of the store does.
    """

    db: sqlite_utils.Database

    # -- notifications -------------------------------------------------------------

    def enqueue(
        self,
        *,
        incident_id: int,
        action: AlertAction,
        channel: str,
        target: str,
        route: str,
        alert: Alert,
        now: datetime,
        not_before: datetime | None = None,
        fallback_of: int | None = None,
    ) -> int:
        """Write a notification; a held one (``not_before`` later) is merged with an earlier held one.

        Merging keeps one row per incident and target while quiet hours last, holding
        the latest facts: the channel shows the incident as it is when the hours end,
        not a burst of every change in between.
        """
        held = not_before is not None and not_before > now
        with self._wrap("queue notification"), self._tx():
            if held:
                row = self.db.execute(
                    "SELECT id FROM notifications WHERE incident_id = ? AND channel = ? AND target = ? "
                    "AND state = 'pending' AND held = 1 ORDER BY id DESC LIMIT 1",
                    [incident_id, channel, target],
                ).fetchone()
                if row:
                    self.db.execute(
                        "UPDATE notifications SET alert = ?, action = ?, not_before = ? WHERE id = ?",
                        [json.dumps(alert.to_json()), action.value, _ts(not_before), row[0]],
                    )
                    return row[0]
            return (
                self.db["notifications"]
                .insert(
                    {
                        "incident_id": incident_id,
                        "action": action.value,
                        "channel": channel,
                        "target": target,
                        "route": route,
                        "alert": json.dumps(alert.to_json()),
                        "state": "pending",
                        "attempts": 0,
                        "not_before": _ts(not_before or now),
                        "created_at": _ts(now),
                        "fallback_of": fallback_of,
                        "held": int(held),
                    }
                )
                .last_pk
            )

    def due_notifications(self, now: datetime, limit: int = 50) -> list[Notification]:
        """Pending rows whose time has come, in order within each incident and target.

        A row waits while an earlier row of the *same incident* to the same target is
        unsent: Slack needs the first message before it can edit it, and an email
        reply must not arrive before its root. Rows of other incidents do not wait:
        an outage alert is never stuck behind another incident's alert held for quiet
        hours or retrying.
        """
        rows = self.db.query(
            "SELECT * FROM notifications n WHERE n.state = 'pending' AND n.not_before <= ? "
            "AND NOT EXISTS (SELECT 1 FROM notifications m WHERE m.incident_id = n.incident_id "
            "AND m.channel = n.channel AND m.target = n.target "
            "AND m.state IN ('pending', 'sending') AND m.id < n.id) "
            "ORDER BY n.id LIMIT ?",
            [_ts(now), limit],
        )
        return [_notification(r) for r in rows]

    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        """The earliest ``not_before`` of a pending row (only those later than ``after``, when given)."""
        if after is None:
            row = self.db.execute("SELECT MIN(not_before) FROM notifications WHERE state = 'pending'").fetchone()
        else:
            row = self.db.execute(
                "SELECT MIN(not_before) FROM notifications WHERE state = 'pending' AND not_before > ?", [_ts(after)]
            ).fetchone()
        return _dt(row[0]) if row and row[0] else None

    def claim(self, notification_id: int, now: datetime) -> bool:
        """True when this caller now owns the row (exactly one row changed)."""
        with self._wrap("claim notification"):
            cur = self.db.execute(
                "UPDATE notifications SET state = 'sending', claimed_at = ?, attempts = attempts + 1 "
                "WHERE id = ? AND state = 'pending'",
                [_ts(now), notification_id],
            )
        return cur.rowcount == 1

    def mark_delivered(self, notification_id: int, now: datetime, ref: dict[str, Any] | None = None) -> None:
        with self._wrap("mark notification delivered"):
            self.db.execute(
                "UPDATE notifications SET state = 'delivered', delivered_at = ?, ref = ?, last_error = NULL "
                "WHERE id = ?",
                [_ts(now), json.dumps(ref) if ref else None, notification_id],
            )

    def mark_retry(self, notification_id: int, now: datetime, not_before: datetime, error: str) -> None:
        with self._wrap("reschedule notification"):
            self.db.execute(
                "UPDATE notifications SET state = 'pending', not_before = ?, last_error = ?, "
                "first_error_at = COALESCE(first_error_at, ?) WHERE id = ?",
                [_ts(not_before), error, _ts(now), notification_id],
            )

    def mark_dead(self, notification_id: int, now: datetime, error: str) -> None:
        with self._wrap("mark notification dead"):
            self.db.execute(
                "UPDATE notifications SET state = 'dead', last_error = ?, "
                "first_error_at = COALESCE(first_error_at, ?) WHERE id = ?",
                [error, _ts(now), notification_id],
            )

    def mark_fallback_sent(self, notification_id: int) -> None:
        with self._wrap("mark fallback sent"):
            self.db.execute("UPDATE notifications SET fallback_sent = 1 WHERE id = ?", [notification_id])

    def recover_inflight(self) -> int:
        """Put rows a crash left in ``sending`` back to ``pending``; returns how many."""
        with self._wrap("recover notifications in flight"):
            cur = self.db.execute("UPDATE notifications SET state = 'pending' WHERE state = 'sending'")
        return cur.rowcount

    def notifications(
        self, *, state: str | None = None, incident_id: int | None = None, limit: int = 100
    ) -> list[Notification]:
        where, args = [], []
        if state:
            where.append("state = ?")
            args.append(state)
        if incident_id is not None:
            where.append("incident_id = ?")
            args.append(incident_id)
        sql = "SELECT * FROM notifications" + (" WHERE " + " AND ".join(where) if where else "")
        return [_notification(r) for r in self.db.query(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])]

    def alerted_targets(self, incident_id: int) -> list[tuple[str, str, str]]:
        """(channel, target, route) of every notification ever queued for an incident (not dead).

        Fallback copies count: once an incident fell back to another channel, that
        channel follows it to its resolve, even while the first channel stays down.
        """
        return [
            tuple(r)
            for r in self.db.execute(
                "SELECT channel, target, route FROM notifications WHERE incident_id = ? "
                "AND state != 'dead' GROUP BY channel, target ORDER BY MIN(id)",
                [incident_id],
            )
        ]

    # -- threads --------------------------------------------------------------------

    def slack_thread(self, incident_id: int, channel: str) -> str | None:
        row = self.db.execute(
            "SELECT ts FROM slack_threads WHERE incident_id = ? AND channel = ?", [incident_id, channel]
        ).fetchone()
        return row[0] if row else None

    def save_slack_thread(self, incident_id: int, channel: str, ts: str, now: datetime) -> None:
        with self._wrap("save Slack thread"):
            self.db["slack_threads"].upsert(
                {"incident_id": incident_id, "channel": channel, "ts": ts, "created_at": _ts(now)},
                pk=("incident_id", "channel"),
            )

    def email_thread(self, incident_id: int, address: str) -> tuple[str, int] | None:
        row = self.db.execute(
            "SELECT root_id, seq FROM email_threads WHERE incident_id = ? AND address = ?",
            [incident_id, address],
        ).fetchone()
        return (row[0], row[1]) if row else None

    def save_email_thread(self, incident_id: int, address: str, root_id: str, seq: int) -> None:
        with self._wrap("save email thread"):
            self.db["email_threads"].upsert(
                {"incident_id": incident_id, "address": address, "root_id": root_id, "seq": seq},
                pk=("incident_id", "address"),
            )

    # -- acknowledgements -------------------------------------------------------------

    def acknowledge(self, incident_id: int, by: str, now: datetime, reason: str | None, via: str) -> None:
        with self._wrap("save acknowledgement"), self._tx():
            self.db.execute(
                "UPDATE acks SET cleared_at = ? WHERE incident_id = ? AND cleared_at IS NULL",
                [_ts(now), incident_id],
            )
            self.db["acks"].insert(
                {"incident_id": incident_id, "by": by, "at": _ts(now), "reason": reason, "via": via}
            )
            self.audit(
                now, by, "ack", f"incident #{incident_id} via {via}" + (f": {reason}" if reason else "")
            )

    def use_ack_link(self, key: str, incident_id: int, by: str, now: datetime) -> tuple[str, datetime] | None:
        """Record the first use of an acknowledge link: None when this is it, else (who, when) of the first."""
        with self._wrap("record acknowledge link use"), self._tx():
            cur = self.db.execute(
                "INSERT INTO ack_link_uses (key, incident_id, by, at) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                [key, incident_id, by, _ts(now)],
            )
            if cur.rowcount == 1:
                return None
        return self.ack_link_use(key)

    def ack_link_use(self, key: str) -> tuple[str, datetime] | None:
        """Who used this acknowledge link, and when; None while it is unused."""
        row = self.db.execute("SELECT by, at FROM ack_link_uses WHERE key = ?", [key]).fetchone()
        return (row[0], _dt(row[1])) if row else None

    def ack(self, incident_id: int) -> Ack | None:
        row = self.db.execute(
            "SELECT incident_id, by, at, reason, via FROM acks WHERE incident_id = ? AND cleared_at IS NULL "
            "ORDER BY id DESC LIMIT 1",
            [incident_id],
        ).fetchone()
        return Ack(row[0], row[1], _dt(row[2]), row[3], row[4]) if row else None

    def clear_ack(self, incident_id: int, now: datetime) -> None:
        with self._wrap("clear acknowledgement"):
            self.db.execute(
                "UPDATE acks SET cleared_at = ? WHERE incident_id = ? AND cleared_at IS NULL",
                [_ts(now), incident_id],
            )

    # -- mutes ----------------------------------------------------------------------------

    def add_mute(
        self, vendor: str, until: datetime, reason: str | None, by: str | None, now: datetime
    ) -> int:
        with self._wrap("save mute"), self._tx():
            self._bump_alert_state()
            mid = (
                self.db["mutes"]
                .insert(
                    {
                        "vendor": vendor,
                        "until": _ts(until),
                        "reason": reason,
                        "by": by,
                        "created_at": _ts(now),
                    }
                )
                .last_pk
            )
            self.audit(
                now, by or "?", "mute", f"{vendor} until {_ts(until)}" + (f": {reason}" if reason else "")
            )
        return mid

    def active_mutes(self, now: datetime) -> list[Mute]:
        rows = self.db.execute(
            "SELECT id, vendor, until, reason, by, created_at FROM mutes "
            "WHERE until > ? AND ended_at IS NULL ORDER BY until",
            [_ts(now)],
        ).fetchall()
        return [Mute(r[0], r[1], _dt(r[2]), r[3], r[4], _dt(r[5])) for r in rows]

    def end_mutes(self, vendor: str, now: datetime, by: str | None = None) -> int:
        with self._wrap("end mute"), self._tx():
            self._bump_alert_state()
            cur = self.db.execute(
                "UPDATE mutes SET ended_at = ? WHERE vendor = ? AND ended_at IS NULL AND until > ?",
                [_ts(now), vendor, _ts(now)],
            )
            if cur.rowcount:
                self.audit(now, by or "?", "unmute", vendor)
        return cur.rowcount

    # -- reminders / escalation -----------------------------------------------------------

    def alert_state(self, incident_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM alert_state WHERE incident_id = ?", [incident_id]))
        if not rows:
            return None
        r = rows[0]
        return {
            "first_alert_at": _dt(r["first_alert_at"]),
            "last_reminder_at": _dt(r["last_reminder_at"]),
            "escalation_level": r["escalation_level"] or 0,
            "escalated_at": _dt(r["escalated_at"]),
        }

    def alerted_open_incident_ids(self) -> list[int]:
        """Open incidents somebody was alerted about: the only ones reminders and escalation look at."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT a.incident_id FROM alert_state a JOIN incidents i ON i.id = a.incident_id "
                "WHERE i.state = 'open' AND a.first_alert_at IS NOT NULL"
            )
        ]

    def save_alert_state(self, incident_id: int, **fields: Any) -> None:
        row = {"incident_id": incident_id}
        row.update({k: (_ts(v) if isinstance(v, datetime) else v) for k, v in fields.items()})
        with self._wrap("save alert state"):
            self.db["alert_state"].upsert(row, pk="incident_id")

    def audit(self, now: datetime, who: str, what: str, detail: str) -> None:
        with self._wrap("save audit entry"):
            self.db["audit"].insert({"at": _ts(now), "who": who, "what": what, "detail": detail})

    def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", [limit]))


def _notification(r: dict[str, Any]) -> Notification:
    return Notification(
        id=r["id"],
        incident_id=r["incident_id"],
        action=AlertAction(r["action"]),
        channel=r["channel"],
        target=r["target"],
        route=r["route"],
        alert=Alert.from_json(json.loads(r["alert"])),
        state=r["state"],
        attempts=r["attempts"] or 0,
        not_before=_dt(r["not_before"]),
        created_at=_dt(r["created_at"]),
        claimed_at=_dt(r["claimed_at"]),
        delivered_at=_dt(r["delivered_at"]),
        last_error=r["last_error"],
        first_error_at=_dt(r["first_error_at"]),
        fallback_of=r["fallback_of"],
        fallback_sent=bool(r["fallback_sent"]),
        held=bool(r["held"]),
        ref=json.loads(r["ref"]) if r["ref"] else None,
    )
