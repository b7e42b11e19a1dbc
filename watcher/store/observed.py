"""What watcher saw: each source's fetch state, the observations, the incidents and their events.

Each instance keeps its own fetch state of a source (validators, content hash, last
error) under its ``location``, so one instance's poll never makes another skip a change;
observations and incidents are shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from watcher.incidents.model import (
    EventType,
    Incident,
    IncidentEvent,
    IncidentState,
    MaintenancePhase,
)
from watcher.model import SELF_VENDOR, ComponentStatus, IncidentKind, IncidentStatus
from watcher.store.base import ALERT_STATE_VERSION, SourceRecord, StoredEvent, StoreError
from watcher.store.database import Database, Row, whole_seconds
from watcher.store.dialect import chunks, marks


class ObservedQueries(Database):
    # -- sources -------------------------------------------------------------------------------------

    def source(self, key: str) -> SourceRecord | None:
        row = self._one("SELECT * FROM sources WHERE key = %s AND location = %s", [key, self.location or ""])
        return source_record(row) if row else None

    def fetch_state(self, key: str) -> SourceRecord | None:
        """What a poll needs of its source: the record without its summary (``summary_read`` False), which
        an unchanged poll neither reads nor writes (decoding it was a tenth of a poll's store work)."""
        row = self._one(
            f"SELECT {_FETCH_STATE} FROM sources WHERE key = %s AND location = %s", [key, self.location or ""]
        )
        return source_record(row) if row else None

    def sources(self, vendor: str | None = None) -> list[SourceRecord]:
        """This instance's view of the sources (each location keeps its own fetch state)."""
        loc = self.location or ""
        if vendor is None:
            rows = self._rows("SELECT * FROM sources WHERE location = %s ORDER BY key", [loc])
        else:
            rows = self._rows(
                "SELECT * FROM sources WHERE vendor = %s AND location = %s ORDER BY key", [vendor, loc]
            )
        return [source_record(r) for r in rows]

    def save_source(self, record: SourceRecord) -> None:
        row = {
            "key": record.key,
            "location": self.location or "",
            "vendor": record.vendor,
            "type": record.type,
            "url": record.url,
            "last_polled_at": whole_seconds(record.last_polled_at),
            "last_success_at": whole_seconds(record.last_success_at),
            "last_change_at": whole_seconds(record.last_change_at),
            "error": record.error,
            "error_kind": record.error_kind,
            "error_since": whole_seconds(record.error_since),
            "etag": record.etag,
            "last_modified": record.last_modified,
            "content_hash": record.content_hash,
            "final_url": record.final_url,
            "summary": json.dumps(record.summary) if record.summary is not None else None,
            "polls": record.polls,
            "failures": record.failures,
        }
        if not record.summary_read:
            del row["summary"]  # read without it: the stored one stays
        self._upsert("sources", row, ("key", "location"), "save source")

    def touch_source(self, record: SourceRecord) -> None:
        """An unchanged document: one small UPDATE of the fetch state, the summary left as stored.

        For a source already saved with no error; otherwise (no row yet) the whole record is saved.
        """
        n = self._exec(
            "UPDATE sources SET last_polled_at = %s, last_success_at = %s, etag = %s, last_modified = %s, "
            "final_url = %s, polls = %s, failures = 0, error = NULL, error_kind = NULL, error_since = NULL "
            "WHERE key = %s AND location = %s",
            [
                whole_seconds(record.last_polled_at),
                whole_seconds(record.last_success_at),
                record.etag,
                record.last_modified,
                record.final_url,
                record.polls,
                record.key,
                self.location or "",
            ],
            "save source",
        )
        if n == 0:
            self.save_source(record)

    def add_observation(self, source: str, vendor: str, at: datetime, kind: str, data: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO observations (source, vendor, at, kind, data, location) VALUES (%s, %s, %s, %s, %s, %s)",
            [source, vendor, whole_seconds(at), kind, json.dumps(data), self.location],
            "save observation",
        )

    # -- incidents -------------------------------------------------------------------------------------

    def open_incidents(self, vendor: str | None = None) -> list[Incident]:
        if vendor is None:
            rows = self._rows("SELECT * FROM incidents WHERE state = 'open' ORDER BY opened_at NULLS FIRST, id")
        else:
            rows = self._rows(
                "SELECT * FROM incidents WHERE state = 'open' AND vendor = %s ORDER BY opened_at NULLS FIRST, id",
                [vendor],
            )
        return self._incidents(rows)

    def incidents_by_keys(self, vendor: str, keys: Iterable[str]) -> list[Incident]:
        wanted = list(dict.fromkeys(keys))
        found: dict[int, None] = {}
        for part in chunks(wanted):
            for r in self._rows(
                f"SELECT DISTINCT incident_id FROM incident_keys WHERE vendor = %s AND key IN ({marks(len(part))})",
                [vendor, *part],
            ):
                found[r["incident_id"]] = None
        rows: list[Row] = []
        for ids in chunks(list(found)):
            rows += self._rows(f"SELECT * FROM incidents WHERE id IN ({marks(len(ids))})", ids)
        return self._incidents(sorted(rows, key=lambda r: r["id"]))

    def incident(self, incident_id: int) -> Incident | None:
        got = self._incidents(self._rows("SELECT * FROM incidents WHERE id = %s", [incident_id]))
        return got[0] if got else None

    def incidents(self, *, vendor: str | None = None, open_only: bool = False, limit: int = 100) -> list[Incident]:
        where, args = [], []
        if vendor:
            where.append("vendor = %s")
            args.append(vendor)
        if open_only:
            where.append("state = 'open'")
        q = "SELECT * FROM incidents"
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY COALESCE(started_at, opened_at) DESC NULLS LAST, id DESC LIMIT %s"
        return self._incidents(self._rows(q, [*args, limit]))

    def resolved_since(self, since: datetime, limit: int = 1000) -> list[Incident]:
        """Incidents resolved at or after ``since``, the latest resolved first: an indexed range."""
        return self._incidents(
            self._rows(
                "SELECT * FROM incidents WHERE resolved_at >= %s ORDER BY resolved_at DESC, id DESC LIMIT %s",
                [whole_seconds(since), limit],
            )
        )

    def save_incident(self, incident: Incident, events: list[IncidentEvent]) -> int:
        row = incident_row(incident)
        new = incident.id is None
        try:
            with self._tx("save incident"):
                if incident.vendor == SELF_VENDOR:
                    self._bump_alert_state()
                if incident.id is None:
                    incident.id = self._insert("incidents", row, "save incident")
                elif not self._exec(
                    f"UPDATE incidents SET {', '.join(f'{k} = %s' for k in row)} WHERE id = %s",
                    [*row.values(), incident.id],
                    "save incident",
                ):
                    raise StoreError(f"cannot save incident: incident #{incident.id} is not in the database")
                self._many(
                    "INSERT INTO incident_keys (vendor, key, incident_id) VALUES (%s, %s, %s) "
                    "ON CONFLICT (vendor, key) DO UPDATE SET incident_id = EXCLUDED.incident_id",
                    [(incident.vendor, k, incident.id) for k in sorted(incident.keys)],
                    "save incident",
                )
                self._many(
                    "INSERT INTO incident_events (incident_id, at, type, text, status, source, dedupe) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [
                        (incident.id, whole_seconds(ev.at), ev.type.value, ev.text, ev.status, ev.source, ev.dedupe)
                        for ev in events
                    ],
                    "save incident",
                )
        except BaseException:
            if new:
                incident.id = None
            raise
        return incident.id

    def events(self, incident_id: int) -> list[StoredEvent]:
        rows = self._rows("SELECT * FROM incident_events WHERE incident_id = %s ORDER BY id", [incident_id])
        return [
            StoredEvent(
                id=r["id"],
                incident_id=r["incident_id"],
                event=IncidentEvent(
                    type=EventType(r["type"]),
                    at=r["at"],
                    text=r["text"] or "",
                    status=r["status"],
                    source=r["source"],
                    dedupe=r["dedupe"],
                ),
            )
            for r in rows
        ]

    def _incidents(self, rows: Iterable[Row]) -> list[Incident]:
        out = [incident_from(r) for r in rows]
        by_id = {i.id: i for i in out}
        for ids in chunks(list(by_id)):
            for r in self._rows(
                f"SELECT incident_id, key FROM incident_keys WHERE incident_id IN ({marks(len(ids))})", ids
            ):
                by_id[r["incident_id"]].keys.add(r["key"])
        return out

    # -- what decides whether alerts are held back for every vendor at once ----------------------------

    def alert_state_version(self) -> str | None:
        """Changes whenever the mutes or watcher's own incidents change, whichever instance wrote them."""
        row = self._one("SELECT value FROM meta WHERE key = %s", [ALERT_STATE_VERSION])
        return row["value"] if row else None

    def _bump_alert_state(self) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (%s, '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS bigint) + 1 AS text)",
            [ALERT_STATE_VERSION],
            "save alert state version",
        )


def incident_row(incident: Incident) -> Row:
    return {
        "vendor": incident.vendor,
        "title": incident.title,
        "kind": incident.kind.value,
        "reason": incident.reason,
        "state": incident.state.value,
        "status": incident.status.value,
        "impact": incident.impact,
        "is_maintenance": bool(incident.is_maintenance),
        "phase": incident.phase.value if incident.phase else None,
        "origin": incident.origin,
        "backfilled": bool(incident.backfilled),
        "opened_at": whole_seconds(incident.opened_at),
        "updated_at": whole_seconds(incident.updated_at),
        "started_at": whole_seconds(incident.started_at),
        "resolved_at": whole_seconds(incident.resolved_at),
        "scheduled_for": whole_seconds(incident.scheduled_for),
        "scheduled_until": whole_seconds(incident.scheduled_until),
        "url": incident.url,
        "components": json.dumps(incident.components),
        "component_statuses": json.dumps({k: v.value for k, v in incident.component_statuses.items()}),
        "active_sources": json.dumps(sorted(incident.active_sources)),
        "seen_updates": json.dumps(sorted(incident.seen_updates)),
        "bodies": json.dumps(incident.bodies),
        "revision": incident.revision,
    }


_FETCH_STATE = (
    "key, vendor, type, url, last_polled_at, last_success_at, last_change_at, error, error_kind, error_since, "
    "etag, last_modified, content_hash, final_url, polls, failures"
)
"""The columns of ``sources`` but the summary."""


def source_record(r: Row) -> SourceRecord:
    return SourceRecord(
        key=r["key"],
        vendor=r["vendor"],
        type=r["type"],
        url=r["url"],
        last_polled_at=r["last_polled_at"],
        last_success_at=r["last_success_at"],
        last_change_at=r["last_change_at"],
        error=r["error"],
        error_kind=r["error_kind"],
        error_since=r["error_since"],
        etag=r["etag"],
        last_modified=r["last_modified"],
        content_hash=r["content_hash"],
        final_url=r["final_url"],
        summary=json.loads(r["summary"]) if r.get("summary") else None,
        polls=r["polls"] or 0,
        failures=r["failures"] or 0,
        summary_read="summary" in r,
    )


def incident_from(r: Row) -> Incident:
    return Incident(
        id=r["id"],
        vendor=r["vendor"],
        title=r["title"],
        kind=IncidentKind(r["kind"]),
        reason=r["reason"] or "",
        state=IncidentState(r["state"]),
        status=IncidentStatus(r["status"]),
        impact=r["impact"],
        is_maintenance=bool(r["is_maintenance"]),
        phase=MaintenancePhase(r["phase"]) if r["phase"] else None,
        origin=r["origin"],
        backfilled=bool(r["backfilled"]),
        opened_at=r["opened_at"],
        updated_at=r["updated_at"],
        started_at=r["started_at"],
        resolved_at=r["resolved_at"],
        scheduled_for=r["scheduled_for"],
        scheduled_until=r["scheduled_until"],
        url=r["url"],
        components=json.loads(r["components"] or "[]"),
        component_statuses={k: ComponentStatus(v) for k, v in json.loads(r["component_statuses"] or "{}").items()},
        active_sources=set(json.loads(r["active_sources"] or "[]")),
        seen_updates=set(json.loads(r["seen_updates"] or "[]")),
        bodies=json.loads(r["bodies"] or "[]"),
        revision=r["revision"] or 0,
    )
