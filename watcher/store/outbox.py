"""The outbox: every notification is a row first, sent after its transaction commits, claimed once.

An alert is written in the same transaction as the incident change that calls for it, then
delivered by :mod:`watcher.alerts.deliver`: a row is claimed by a guarded UPDATE (exactly one
claimer wins, across instances), marked delivered, retried or dead. A row held back (quiet
hours, a reminder's time) is merged with the earlier held row to the same target, so a
target gets the latest state once. Slack thread and email thread roots live here too: an
incident's later messages reply to its first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.alerts.model import Alert, AlertAction
from watcher.store.database import Database, Row, exact


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


class OutboxQueries(Database):
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
        """Write a notification; a held one (``not_before`` later) is merged with an earlier held one."""
        held = not_before is not None and not_before > now
        with self._tx("queue notification"):
            if held:
                row = self._one(
                    "SELECT id FROM notifications WHERE incident_id = %s AND channel = %s AND target = %s "
                    "AND state = 'pending' AND held ORDER BY id DESC LIMIT 1" + self.dialect.for_update,
                    [incident_id, channel, target],
                    "queue notification",
                )
                if row:
                    self._exec(
                        "UPDATE notifications SET alert = %s, action = %s, not_before = %s WHERE id = %s",
                        [json.dumps(alert.to_json()), action.value, exact(not_before), row["id"]],
                        "queue notification",
                    )
                    return row["id"]
            return self._insert(
                "notifications",
                {
                    "incident_id": incident_id,
                    "action": action.value,
                    "channel": channel,
                    "target": target,
                    "route": route,
                    "alert": json.dumps(alert.to_json()),
                    "state": "pending",
                    "attempts": 0,
                    "not_before": exact(not_before or now),
                    "created_at": exact(now),
                    "fallback_of": fallback_of,
                    "held": held,
                },
                "queue notification",
            )

    def due_notifications(self, now: datetime, limit: int = 50) -> list[Notification]:
        """Pending rows whose time has come; a row waits for earlier unsent rows of its incident and target."""
        rows = self._rows(
            "SELECT * FROM notifications n WHERE n.state = 'pending' AND n.not_before <= %s "
            "AND NOT EXISTS (SELECT 1 FROM notifications m WHERE m.incident_id = n.incident_id "
            "AND m.channel = n.channel AND m.target = n.target "
            "AND m.state IN ('pending', 'sending') AND m.id < n.id) "
            "ORDER BY n.id LIMIT %s",
            [exact(now), limit],
        )
        return [notification_from(r) for r in rows]

    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        if after is None:
            row = self._one("SELECT MIN(not_before) AS t FROM notifications WHERE state = 'pending'")
        else:
            row = self._one(
                "SELECT MIN(not_before) AS t FROM notifications WHERE state = 'pending' AND not_before > %s",
                [exact(after)],
            )
        return row["t"] if row else None

    def claim(self, notification_id: int, now: datetime) -> bool:
        """True when this caller now owns the row (exactly one row changed), across every instance.

        With :attr:`fence_epoch` set (the leader's epoch), the claim also requires that
        epoch to still be the newest: a deposed leader that has not noticed yet cannot
        claim anything once another instance has taken the lease.
        """
        if self.fence_epoch is None:
            q = (
                "UPDATE notifications SET state = 'sending', claimed_at = %s, attempts = attempts + 1 "
                "WHERE id = %s AND state = 'pending'"
            )
            args: list[Any] = [exact(now), notification_id]
        else:
            q = (
                "UPDATE notifications SET state = 'sending', claimed_at = %s, attempts = attempts + 1 "
                "WHERE id = %s AND state = 'pending' AND (SELECT epoch FROM leader) = %s"
            )
            args = [exact(now), notification_id, self.fence_epoch]
        return self._exec(q, args, "claim notification") == 1

    def mark_delivered(self, notification_id: int, now: datetime, ref: dict[str, Any] | None = None) -> None:
        self._exec(
            "UPDATE notifications SET state = 'delivered', delivered_at = %s, ref = %s, last_error = NULL "
            "WHERE id = %s",
            [exact(now), json.dumps(ref) if ref else None, notification_id],
            "mark notification delivered",
            retry=True,
        )

    def mark_retry(self, notification_id: int, now: datetime, not_before: datetime, error: str) -> None:
        self._exec(
            "UPDATE notifications SET state = 'pending', not_before = %s, last_error = %s, "
            "first_error_at = COALESCE(first_error_at, %s) WHERE id = %s",
            [exact(not_before), error, exact(now), notification_id],
            "reschedule notification",
            retry=True,
        )

    def mark_dead(self, notification_id: int, now: datetime, error: str) -> None:
        self._exec(
            "UPDATE notifications SET state = 'dead', last_error = %s, "
            "first_error_at = COALESCE(first_error_at, %s) WHERE id = %s",
            [error, exact(now), notification_id],
            "mark notification dead",
            retry=True,
        )

    def mark_fallback_sent(self, notification_id: int) -> None:
        self._exec(
            "UPDATE notifications SET fallback_sent = true WHERE id = %s",
            [notification_id],
            "mark fallback sent",
            retry=True,
        )

    def recover_inflight(self) -> int:
        """Put rows left in ``sending`` back to ``pending``; returns how many.

        With several instances only the leader may call this, once it holds the
        lease: a follower doing it would re-queue the leader's sends in flight.
        """
        return self._exec(
            "UPDATE notifications SET state = 'pending' WHERE state = 'sending'", (), "recover notifications"
        )

    def notifications(
        self, *, state: str | None = None, incident_id: int | None = None, limit: int = 100
    ) -> list[Notification]:
        where: list[str] = []
        args: list[Any] = []
        if state:
            where.append("state = %s")
            args.append(state)
        if incident_id is not None:
            where.append("incident_id = %s")
            args.append(incident_id)
        q = "SELECT * FROM notifications" + (" WHERE " + " AND ".join(where) if where else "")
        return [notification_from(r) for r in self._rows(q + " ORDER BY id DESC LIMIT %s", [*args, limit])]

    def alerted_targets(self, incident_id: int) -> list[tuple[str, str, str]]:
        """(channel, target, route) of every notification queued for an incident (not dead), first first;
        the route is that of the first row to each target."""
        rows = self._rows(
            "SELECT n.channel, n.target, n.route FROM notifications n JOIN (SELECT MIN(id) AS id FROM notifications "
            "WHERE incident_id = %s AND state <> 'dead' GROUP BY channel, target) f ON f.id = n.id ORDER BY n.id",
            [incident_id],
        )
        return [(r["channel"], r["target"], r["route"]) for r in rows]

    # -- threads --------------------------------------------------------------------------------------

    def slack_thread(self, incident_id: int, channel: str) -> str | None:
        row = self._one(
            "SELECT ts FROM slack_threads WHERE incident_id = %s AND channel = %s", [incident_id, channel]
        )
        return row["ts"] if row else None

    def save_slack_thread(self, incident_id: int, channel: str, ts: str, now: datetime) -> None:
        self._upsert(
            "slack_threads",
            {"incident_id": incident_id, "channel": channel, "ts": ts, "created_at": exact(now)},
            ("incident_id", "channel"),
            "save Slack thread",
        )

    def email_thread(self, incident_id: int, address: str) -> tuple[str, int] | None:
        row = self._one(
            "SELECT root_id, seq FROM email_threads WHERE incident_id = %s AND address = %s",
            [incident_id, address],
        )
        return (row["root_id"], row["seq"]) if row else None

    def save_email_thread(self, incident_id: int, address: str, root_id: str, seq: int) -> None:
        self._upsert(
            "email_threads",
            {"incident_id": incident_id, "address": address, "root_id": root_id, "seq": seq},
            ("incident_id", "address"),
            "save email thread",
        )


def notification_from(r: Row) -> Notification:
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
        not_before=r["not_before"],
        created_at=r["created_at"],
        claimed_at=r["claimed_at"],
        delivered_at=r["delivered_at"],
        last_error=r["last_error"],
        first_error_at=r["first_error_at"],
        fallback_of=r["fallback_of"],
        fallback_sent=bool(r["fallback_sent"]),
        held=bool(r["held"]),
        ref=json.loads(r["ref"]) if r["ref"] else None,
    )
