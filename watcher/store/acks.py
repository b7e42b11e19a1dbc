"""What people did: acknowledgements (and the links that act once), mutes, reminder state, the audit log.

Every change a person makes is written to ``audit`` in the same transaction. Mutes and
watcher's own incidents bump the shared alert-state version
(:data:`~watcher.store.base.ALERT_STATE_VERSION`), so every instance's alert engine knows
its copy is stale by reading one row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.store.base import StoreError
from watcher.store.database import exact, iso
from watcher.store.dialect import chunks, marks
from watcher.store.observed import ObservedQueries

ALERT_STATE_COLUMNS = ("first_alert_at", "last_reminder_at", "escalation_level", "escalated_at")


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


class PeopleQueries(ObservedQueries):
    def acknowledge(self, incident_id: int, by: str, now: datetime, reason: str | None, via: str) -> None:
        with self._tx("save acknowledgement"):
            self._exec(
                "UPDATE acks SET cleared_at = %s WHERE incident_id = %s AND cleared_at IS NULL",
                [exact(now), incident_id],
                "save acknowledgement",
            )
            self._insert(
                "acks",
                {"incident_id": incident_id, "by": by, "at": exact(now), "reason": reason, "via": via},
                "save acknowledgement",
            )
            self.audit(
                now, by, "ack", f"incident #{incident_id} via {via}" + (f": {reason}" if reason else "")
            )

    def use_ack_link(self, key: str, incident_id: int, by: str, now: datetime) -> tuple[str, datetime] | None:
        n = self._exec(
            "INSERT INTO ack_link_uses (key, incident_id, by, at) VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
            [key, incident_id, by, exact(now)],
            "record acknowledge link use",
        )
        return None if n == 1 else self.ack_link_use(key)

    def ack_link_use(self, key: str) -> tuple[str, datetime] | None:
        row = self._one("SELECT by, at FROM ack_link_uses WHERE key = %s", [key])
        return (row["by"], row["at"]) if row else None

    def ack(self, incident_id: int) -> Ack | None:
        row = self._one(
            "SELECT incident_id, by, at, reason, via FROM acks WHERE incident_id = %s AND cleared_at IS NULL "
            "ORDER BY id DESC LIMIT 1",
            [incident_id],
        )
        return Ack(row["incident_id"], row["by"], row["at"], row["reason"], row["via"]) if row else None

    def acks(self, incident_ids: Iterable[int]) -> dict[int, Ack]:
        """The standing acknowledgement of each of these incidents that has one: one query for a page of
        incidents (the board lists dozens), not one each."""
        out: dict[int, Ack] = {}
        for ids in chunks(list(dict.fromkeys(incident_ids))):
            for r in self._rows(
                f"SELECT incident_id, by, at, reason, via FROM acks WHERE incident_id IN ({marks(len(ids))}) "
                "AND cleared_at IS NULL ORDER BY id",
                ids,
            ):
                out[r["incident_id"]] = Ack(r["incident_id"], r["by"], r["at"], r["reason"], r["via"])  # newest wins
        return out

    def clear_ack(self, incident_id: int, now: datetime) -> None:
        self._exec(
            "UPDATE acks SET cleared_at = %s WHERE incident_id = %s AND cleared_at IS NULL",
            [exact(now), incident_id],
            "clear acknowledgement",
            retry=True,
        )

    # -- mutes ---------------------------------------------------------------------------------------------

    def add_mute(
        self, vendor: str, until: datetime, reason: str | None, by: str | None, now: datetime
    ) -> int:
        with self._tx("save mute"):
            self._bump_alert_state()
            mid = self._insert(
                "mutes",
                {"vendor": vendor, "until": exact(until), "reason": reason, "by": by, "created_at": exact(now)},
                "save mute",
            )
            self.audit(
                now, by or "?", "mute", f"{vendor} until {iso(until)}" + (f": {reason}" if reason else "")
            )
        return mid

    def active_mutes(self, now: datetime) -> list[Mute]:
        rows = self._rows(
            "SELECT id, vendor, until, reason, by, created_at FROM mutes "
            "WHERE until > %s AND ended_at IS NULL ORDER BY until",
            [exact(now)],
        )
        return [Mute(r["id"], r["vendor"], r["until"], r["reason"], r["by"], r["created_at"]) for r in rows]

    def end_mutes(self, vendor: str, now: datetime, by: str | None = None) -> int:
        with self._tx("end mute"):
            self._bump_alert_state()
            n = self._exec(
                "UPDATE mutes SET ended_at = %s WHERE vendor = %s AND ended_at IS NULL AND until > %s",
                [exact(now), vendor, exact(now)],
                "end mute",
            )
            if n:
                self.audit(now, by or "?", "unmute", vendor)
        return n

    # -- reminders / escalation -------------------------------------------------------------------------

    def alert_state(self, incident_id: int) -> dict[str, Any] | None:
        r = self._one("SELECT * FROM alert_state WHERE incident_id = %s", [incident_id])
        if not r:
            return None
        return {
            "first_alert_at": r["first_alert_at"],
            "last_reminder_at": r["last_reminder_at"],
            "escalation_level": r["escalation_level"] or 0,
            "escalated_at": r["escalated_at"],
        }

    def alerted_open_incident_ids(self) -> list[int]:
        """Open incidents somebody was alerted about: the only ones reminders and escalation look at."""
        rows = self._rows(
            "SELECT a.incident_id FROM alert_state a JOIN incidents i ON i.id = a.incident_id "
            "WHERE i.state = 'open' AND a.first_alert_at IS NOT NULL"
        )
        return [r["incident_id"] for r in rows]

    def save_alert_state(self, incident_id: int, **fields: Any) -> None:
        unknown = set(fields) - set(ALERT_STATE_COLUMNS)
        if unknown:
            raise StoreError(f"cannot save alert state: no column {', '.join(sorted(unknown))}")
        row: dict[str, Any] = {"incident_id": incident_id}
        row.update({k: (exact(v) if isinstance(v, datetime) else v) for k, v in fields.items()})
        self._upsert("alert_state", row, ("incident_id",), "save alert state")

    def audit(self, now: datetime, who: str, what: str, detail: str) -> None:
        self._exec(
            "INSERT INTO audit (at, who, what, detail) VALUES (%s, %s, %s, %s)",
            [exact(now), who, what, detail],
            "write audit log",
        )

    def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._rows("SELECT id, at, who, what, detail FROM audit ORDER BY id DESC LIMIT %s", [limit])
        return [{**r, "at": iso(r["at"])} for r in rows]
