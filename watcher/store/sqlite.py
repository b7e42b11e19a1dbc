"""SQLite store through sqlite-utils: the embedded default, nothing to set up.

The file is created on first use, in WAL mode (readers such as ``watcher status``
never block the daemon's writes). The schema is versioned in ``meta`` and
migrated forward on open; each migration runs in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from watcher.incidents.model import (
    EventType,
    Incident,
    IncidentEvent,
    IncidentState,
    MaintenancePhase,
)
from watcher.model import SELF_VENDOR, ComponentStatus, IncidentKind, IncidentStatus
from watcher.store.base import ALERT_STATE_VERSION, SourceRecord, StoredEvent, StoreError
from watcher.store.maintenance import MaintenanceTables
from watcher.store.measurements import MeasurementTables, migration_3
from watcher.store.outbox import OutboxTables, _dt, migration_2, migration_5
from watcher.store.subscriptions import SubscriptionTables, migration_4


def _ts(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else None


def _migration_1(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {
            "key": str,
            "vendor": str,
            "type": str,
            "url": str,
            "last_polled_at": str,
            "last_success_at": str,
            "last_change_at": str,
            "error": str,
            "error_kind": str,
            "error_since": str,
            "etag": str,
            "last_modified": str,
            "content_hash": str,
            "final_url": str,
            "summary": str,
            "polls": int,
            "failures": int,
        },
        pk="key",
    )
    db["observations"].create(
        {"id": int, "source": str, "vendor": str, "at": str, "kind": str, "data": str}, pk="id"
    )
    db["observations"].create_index(["vendor", "at"])
    db["observations"].create_index(["source", "at"])
    db["incidents"].create(
        {
            "id": int,
            "vendor": str,
            "title": str,
            "kind": str,
            "reason": str,
            "state": str,
            "status": str,
            "impact": str,
            "is_maintenance": int,
            "phase": str,
            "origin": str,
            "backfilled": int,
            "opened_at": str,
            "updated_at": str,
            "started_at": str,
            "resolved_at": str,
            "scheduled_for": str,
            "scheduled_until": str,
            "url": str,
            "components": str,
            "component_statuses": str,
            "active_sources": str,
            "seen_updates": str,
            "bodies": str,
            "revision": int,
        },
        pk="id",
    )
    db["incidents"].create_index(["vendor", "state"])
    db["incidents"].create_index(["state", "opened_at"])
    db["incidents"].create_index(["opened_at"])
    db["incident_keys"].create(
        {"vendor": str, "key": str, "incident_id": int},
        pk=("vendor", "key"),
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db["incident_keys"].create_index(["incident_id"])
    db["incident_events"].create(
        {
            "id": int,
            "incident_id": int,
            "at": str,
            "type": str,
            "text": str,
            "status": str,
            "source": str,
            "dedupe": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db["incident_events"].create_index(["incident_id", "id"])
    db.execute(
        "CREATE UNIQUE INDEX idx_incident_events_dedupe ON incident_events(incident_id, dedupe) "
        "WHERE dedupe IS NOT NULL"
    )


def _migration_6(db: sqlite_utils.Database) -> None:
    """A vendor's open incidents in one index range, already in order.

    With only (vendor, state) and (state, opened_at), SQLite answers "open incidents of one
    vendor, by opening time" from (state, opened_at) to spare the sort: it walks every open
    incident of every vendor, so each poll that merged cost more with each vendor watched
    (issue 18). (vendor, state, opened_at) gives both the equality and the order.
    """
    db.execute("CREATE INDEX idx_incidents_vendor_state_opened ON incidents (vendor, state, opened_at)")


def _migration_7(db: sqlite_utils.Database) -> None:
    """Reads of the newest incidents and of the recently resolved ones bounded by an index (issue 18).

    "Newest first" sorts by COALESCE(started_at, opened_at): without an index on that expression
    every page of the board or API read and sorted every incident ever stored, a year of them.
    """
    db.execute("CREATE INDEX idx_incidents_started ON incidents (COALESCE(started_at, opened_at), id)")
    db.execute(
        "CREATE INDEX idx_incidents_vendor_started ON incidents (vendor, COALESCE(started_at, opened_at), id)"
    )
    db.execute("CREATE INDEX idx_incidents_resolved_at ON incidents (resolved_at)")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    migration_2,
    migration_3,
    migration_4,
    migration_5,
    _migration_6,
    _migration_7,
]
SCHEMA_VERSION = len(MIGRATIONS)


class SQLiteStore(OutboxTables, MeasurementTables, SubscriptionTables, MaintenanceTables):
    """The :class:`~watcher.store.base.Store` on one SQLite file."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=15, isolation_level=None, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            if str(path) != ":memory:":
                self.db.enable_wal()
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as e:
            raise StoreError(f"cannot open database {path}: {e}") from None
        except OSError as e:
            raise StoreError(f"cannot create database {path}: {e.strerror}") from None

    # -- schema ---------------------------------------------------------------

    def _migrate(self) -> None:
        db = self.db
        if "meta" not in db.table_names():
            db["meta"].create({"key": str, "value": str}, pk="key")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} has schema version {version}, newer than this watcher "
                f"({SCHEMA_VERSION}): upgrade watcher or use another file"
            )
        for n in range(version, SCHEMA_VERSION):
            with self._tx():
                MIGRATIONS[n](db)
                db["meta"].upsert({"key": "schema_version", "value": str(n + 1)}, pk="key")

    @property
    def schema_version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def transaction(self, what: str):
        """Several writes that stand or fall together (``what`` names them in a StoreError);
        nested transactions join the outer one."""
        return self._tx(what)

    def _tx(self, what: str | None = None):
        """BEGIN IMMEDIATE … COMMIT; nested uses join the outer one.

        With ``what`` a database error in it (its COMMIT included) is a StoreError naming it,
        as from the PostgreSQL store's ``_tx(what)``: callers outside the store can make
        several writes one (an incident and the alerts it calls for) on either backend.
        """
        tx = _Transaction(self.db.conn)
        return tx if what is None else _Named(self._wrap(what), tx)

    # -- sources --------------------------------------------------------------

    def source(self, key: str) -> SourceRecord | None:
        rows = list(self.db.query("SELECT * FROM sources WHERE key = ?", [key]))
        return _source(rows[0]) if rows else None

    def sources(self, vendor: str | None = None) -> list[SourceRecord]:
        if vendor is None:
            rows = self.db.query("SELECT * FROM sources ORDER BY key")
        else:
            rows = self.db.query("SELECT * FROM sources WHERE vendor = ? ORDER BY key", [vendor])
        return [_source(r) for r in rows]

    def save_source(self, record: SourceRecord) -> None:
        row = {
            "key": record.key,
            "vendor": record.vendor,
            "type": record.type,
            "url": record.url,
            "last_polled_at": _ts(record.last_polled_at),
            "last_success_at": _ts(record.last_success_at),
            "last_change_at": _ts(record.last_change_at),
            "error": record.error,
            "error_kind": record.error_kind,
            "error_since": _ts(record.error_since),
            "etag": record.etag,
            "last_modified": record.last_modified,
            "content_hash": record.content_hash,
            "final_url": record.final_url,
            "summary": json.dumps(record.summary) if record.summary is not None else None,
            "polls": record.polls,
            "failures": record.failures,
        }
        cols = ", ".join(row)
        sets = ", ".join(f"{k} = excluded.{k}" for k in row if k != "key")
        with self._wrap("save source"):
            # plain SQL: sqlite-utils' upsert introspects the table on every call (0.4 ms a poll)
            self.db.execute(
                f"INSERT INTO sources ({cols}) VALUES ({', '.join('?' * len(row))}) "
                f"ON CONFLICT (key) DO UPDATE SET {sets}",
                list(row.values()),
            )

    def touch_source(self, record: SourceRecord) -> None:
        """An unchanged document: one small UPDATE of the fetch state, the summary left as stored.

        For a source already saved with no error; otherwise (no row yet) the whole record is saved.
        """
        with self._wrap("save source"):
            cur = self.db.execute(
                "UPDATE sources SET last_polled_at = ?, last_success_at = ?, etag = ?, last_modified = ?, "
                "final_url = ?, polls = ?, failures = 0, error = NULL, error_kind = NULL, error_since = NULL "
                "WHERE key = ?",
                [
                    _ts(record.last_polled_at),
                    _ts(record.last_success_at),
                    record.etag,
                    record.last_modified,
                    record.final_url,
                    record.polls,
                    record.key,
                ],
            )
        if cur.rowcount == 0:
            self.save_source(record)

    def add_observation(
        self, source: str, vendor: str, at: datetime, kind: str, data: dict[str, Any]
    ) -> None:
        with self._wrap("save observation"):
            self.db["observations"].insert(
                {"source": source, "vendor": vendor, "at": _ts(at), "kind": kind, "data": json.dumps(data)}
            )

    # -- incidents ------------------------------------------------------------

    def open_incidents(self, vendor: str | None = None) -> list[Incident]:
        if vendor is None:
            rows = self.db.query("SELECT * FROM incidents WHERE state = 'open' ORDER BY opened_at, id")
        else:
            rows = self.db.query(
                "SELECT * FROM incidents WHERE state = 'open' AND vendor = ? ORDER BY opened_at, id", [vendor]
            )
        return self._incidents(rows)

    def incidents_by_keys(self, vendor: str, keys: Iterable[str]) -> list[Incident]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return []
        found: dict[int, None] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for (iid,) in self.db.execute(
                f"SELECT DISTINCT incident_id FROM incident_keys WHERE vendor = ? AND key IN ({marks})",
                [vendor, *chunk],
            ):
                found[iid] = None
        if not found:
            return []
        marks = ",".join("?" * len(found))
        return self._incidents(self.db.query(f"SELECT * FROM incidents WHERE id IN ({marks})", list(found)))

    def resolved_since(self, since: datetime, limit: int = 1000) -> list[Incident]:
        """Incidents resolved at or after ``since``, the latest resolved first: an indexed range."""
        return self._incidents(
            self.db.query(
                "SELECT * FROM incidents WHERE resolved_at >= ? ORDER BY resolved_at DESC, id DESC LIMIT ?",
                [_ts(since), limit],
            )
        )

    def incident(self, incident_id: int) -> Incident | None:
        got = self._incidents(self.db.query("SELECT * FROM incidents WHERE id = ?", [incident_id]))
        return got[0] if got else None

    def incidents(
        self, *, vendor: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Incident]:
        where, args = [], []
        if vendor:
            where.append("vendor = ?")
            args.append(vendor)
        if open_only:
            where.append("state = 'open'")
        sql = "SELECT * FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY COALESCE(started_at, opened_at) DESC, id DESC LIMIT ?"
        return self._incidents(self.db.query(sql, [*args, limit]))

    def save_incident(self, incident: Incident, events: list[IncidentEvent]) -> int:
        row = {
            "vendor": incident.vendor,
            "title": incident.title,
            "kind": incident.kind.value,
            "reason": incident.reason,
            "state": incident.state.value,
            "status": incident.status.value,
            "impact": incident.impact,
            "is_maintenance": int(incident.is_maintenance),
            "phase": incident.phase.value if incident.phase else None,
            "origin": incident.origin,
            "backfilled": int(incident.backfilled),
            "opened_at": _ts(incident.opened_at),
            "updated_at": _ts(incident.updated_at),
            "started_at": _ts(incident.started_at),
            "resolved_at": _ts(incident.resolved_at),
            "scheduled_for": _ts(incident.scheduled_for),
            "scheduled_until": _ts(incident.scheduled_until),
            "url": incident.url,
            "components": json.dumps(incident.components),
            "component_statuses": json.dumps({k: v.value for k, v in incident.component_statuses.items()}),
            "active_sources": json.dumps(sorted(incident.active_sources)),
            "seen_updates": json.dumps(sorted(incident.seen_updates)),
            "bodies": json.dumps(incident.bodies),
            "revision": incident.revision,
        }
        with self._wrap("save incident"), self._tx():
            if incident.vendor == SELF_VENDOR:
                self._bump_alert_state()
            if incident.id is None:
                incident.id = self.db["incidents"].insert(row).last_pk
            else:
                self.db["incidents"].update(incident.id, row)
            self.db["incident_keys"].insert_all(
                ({"vendor": incident.vendor, "key": k, "incident_id": incident.id} for k in incident.keys),
                pk=("vendor", "key"),
                replace=True,
            )
            for ev in events:
                self.db.execute(
                    "INSERT OR IGNORE INTO incident_events"
                    " (incident_id, at, type, text, status, source, dedupe) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [incident.id, _ts(ev.at), ev.type.value, ev.text, ev.status, ev.source, ev.dedupe],
                )
        return incident.id

    def events(self, incident_id: int) -> list[StoredEvent]:
        rows = self.db.query("SELECT * FROM incident_events WHERE incident_id = ? ORDER BY id", [incident_id])
        return [
            StoredEvent(
                id=r["id"],
                incident_id=r["incident_id"],
                event=IncidentEvent(
                    type=EventType(r["type"]),
                    at=_dt(r["at"]),
                    text=r["text"] or "",
                    status=r["status"],
                    source=r["source"],
                    dedupe=r["dedupe"],
                ),
            )
            for r in rows
        ]

    def close(self) -> None:
        try:
            if str(self.path) != ":memory:":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.conn.close()

    # -- shared alert state ---------------------------------------------------

    def alert_state_version(self) -> str | None:
        """Changes whenever the mutes or watcher's own incidents change (see ALERT_STATE_VERSION)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [ALERT_STATE_VERSION]).fetchone()
        return row[0] if row else None

    def _bump_alert_state(self) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
            [ALERT_STATE_VERSION],
        )

    # -- helpers --------------------------------------------------------------

    def _incidents(self, rows: Iterable[dict[str, Any]]) -> list[Incident]:
        out = [_incident(r) for r in rows]
        if not out:
            return out
        by_id = {i.id: i for i in out}
        marks = ",".join("?" * len(by_id))
        for iid, key in self.db.execute(
            f"SELECT incident_id, key FROM incident_keys WHERE incident_id IN ({marks})", list(by_id)
        ):
            by_id[iid].keys.add(key)
        return out

    def _wrap(self, what: str):
        return _Wrap(what, self.path)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, nestable (inner levels join the outer one)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.owner = False

    def __enter__(self):
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.owner = True
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.owner:
            return False
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.Error:
                # A COMMIT refused (full disk, I/O error) can leave the transaction open; kept open,
                # every later write would join it, hold the write lock, and be lost with it.
                if self.conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                raise
        # SQLite may have rolled back already (on SQLITE_FULL, SQLITE_IOERR…): a second ROLLBACK
        # would raise "no transaction is active" over the error that tells what went wrong.
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
        return False


class _Named:
    """A transaction whose database errors, from BEGIN to COMMIT, are StoreErrors naming it."""

    def __init__(self, wrap: _Wrap, tx: _Transaction):
        self.wrap, self.tx = wrap, tx

    def __enter__(self):
        with self.wrap:
            return self.tx.__enter__()

    def __exit__(self, exc_type, exc, tb):
        with self.wrap:  # COMMIT or ROLLBACK
            self.tx.__exit__(exc_type, exc, tb)
        return self.wrap.__exit__(exc_type, exc, tb)  # an error in the body


class _Wrap:
    def __init__(self, what: str, path: Path):
        self.what, self.path = what, path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise StoreError(f"cannot {self.what} in {self.path}: {exc}") from exc
        return False


def _source(r: dict[str, Any]) -> SourceRecord:
    return SourceRecord(
        key=r["key"],
        vendor=r["vendor"],
        type=r["type"],
        url=r["url"],
        last_polled_at=_dt(r["last_polled_at"]),
        last_success_at=_dt(r["last_success_at"]),
        last_change_at=_dt(r["last_change_at"]),
        error=r["error"],
        error_kind=r["error_kind"],
        error_since=_dt(r["error_since"]),
        etag=r["etag"],
        last_modified=r["last_modified"],
        content_hash=r["content_hash"],
        final_url=r["final_url"],
        summary=json.loads(r["summary"]) if r["summary"] else None,
        polls=r["polls"] or 0,
        failures=r["failures"] or 0,
    )


def _incident(r: dict[str, Any]) -> Incident:
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
        opened_at=_dt(r["opened_at"]),
        updated_at=_dt(r["updated_at"]),
        started_at=_dt(r["started_at"]),
        resolved_at=_dt(r["resolved_at"]),
        scheduled_for=_dt(r["scheduled_for"]),
        scheduled_until=_dt(r["scheduled_until"]),
        url=r["url"],
        components=json.loads(r["components"] or "[]"),
        component_statuses={
            k: ComponentStatus(v) for k, v in json.loads(r["component_statuses"] or "{}").items()
        },
        active_sources=set(json.loads(r["active_sources"] or "[]")),
        seen_updates=set(json.loads(r["seen_updates"] or "[]")),
        bodies=json.loads(r["bodies"] or "[]"),
        revision=r["revision"] or 0,
    )
