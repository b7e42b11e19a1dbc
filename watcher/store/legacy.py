"""How databases written before the one schema reach it, kept as they shipped: never edit them.

Before :data:`~watcher.store.schema.BASE_VERSION` each store had its own history: SQLite
files counted to 7 in ``meta.schema_version`` (through sqlite-utils), PostgreSQL schemas
to 5 in ``schema_version``. An old database is first brought to the end of its own
history by its own steps, then to the one schema: on PostgreSQL version 5 already is it;
a SQLite file gains what only PostgreSQL had (each source's fetch state per location, the
cluster's tables). All of it runs in the migration transaction: a failure leaves the
file as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlite_utils

from watcher.store.schema import VERSION_TABLE, run_script, table_ddl

SQLITE_LAST = 7
"""The last version of the SQLite store's own history."""
POSTGRES_LAST = 5
"""The last version of the PostgreSQL store's own history (it is the one schema's first)."""


# -- SQLite, versions 1 to 7 -----------------------------------------------------------------------


def _migration_1(db: sqlite_utils.Database) -> None:
    db.table("sources").create(
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
    db.table("observations").create(
        {"id": int, "source": str, "vendor": str, "at": str, "kind": str, "data": str}, pk="id"
    )
    db.table("observations").create_index(["vendor", "at"])
    db.table("observations").create_index(["source", "at"])
    db.table("incidents").create(
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
    db.table("incidents").create_index(["vendor", "state"])
    db.table("incidents").create_index(["state", "opened_at"])
    db.table("incidents").create_index(["opened_at"])
    db.table("incident_keys").create(
        {"vendor": str, "key": str, "incident_id": int},
        pk=("vendor", "key"),
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("incident_keys").create_index(["incident_id"])
    db.table("incident_events").create(
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
    db.table("incident_events").create_index(["incident_id", "id"])
    db.execute(
        "CREATE UNIQUE INDEX idx_incident_events_dedupe ON incident_events(incident_id, dedupe) "
        "WHERE dedupe IS NOT NULL"
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    db.table("notifications").create(
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
    db.table("notifications").create_index(["state", "not_before"])
    db.table("notifications").create_index(["incident_id", "channel", "target", "state", "id"])
    db.table("slack_threads").create(
        {"incident_id": int, "channel": str, "ts": str, "created_at": str}, pk=("incident_id", "channel")
    )
    db.table("email_threads").create(
        {"incident_id": int, "address": str, "root_id": str, "seq": int}, pk=("incident_id", "address")
    )
    db.table("acks").create(
        {"id": int, "incident_id": int, "by": str, "at": str, "reason": str, "via": str, "cleared_at": str},
        pk="id",
    )
    db.table("acks").create_index(["incident_id"])
    db.table("mutes").create(
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
    db.table("alert_state").create(
        {
            "incident_id": int,
            "first_alert_at": str,
            "last_reminder_at": str,
            "escalation_level": int,
            "escalated_at": str,
        },
        pk="incident_id",
    )
    db.table("audit").create({"id": int, "at": str, "who": str, "what": str, "detail": str}, pk="id")


def _migration_3(db: sqlite_utils.Database) -> None:
    db.table("probe_results").create(
        {
            "id": int,
            "vendor": str,
            "kind": str,
            "model": str,
            "at": str,
            "ok": int,
            "status": int,
            "error_class": str,
            "error": str,
            "ttfb_s": float,
            "ttft_s": float,
            "total_s": float,
            "tokens_in": int,
            "tokens_out": int,
            "tokens_per_s": float,
            "canary": str,
            "passed": int,
            "detail": str,
            "answer": str,
            "cost": float,
            "network_ok": int,
        },
        pk="id",
    )
    db.table("probe_results").create_index(["vendor", "at"])
    db.table("detector_state").create({"stream": str, "state": str, "updated_at": str}, pk="stream")
    db.table("budget_state").create({"vendor": str, "state": str, "updated_at": str}, pk="vendor")


def _migration_4(db: sqlite_utils.Database) -> None:
    db.table("subscriptions").create(
        {
            "id": int,
            "channel": str,
            "vendor": str,
            "kinds": str,
            "created_by": str,
            "created_at": str,
        },
        pk="id",
        not_null={"channel", "vendor", "kinds"},
    )
    db.table("subscriptions").create_index(["channel", "vendor"], unique=True)
    db.table("subscriptions").create_index(["vendor"])


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


def _migration_5(db: sqlite_utils.Database) -> None:
    """Acknowledge links act once: each use is recorded under the link's own key."""
    db.table("ack_link_uses").create({"key": str, "incident_id": int, "by": str, "at": str}, pk="key")


SQLITE_MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
]

_SQLITE_TO_BASE = """
ALTER TABLE sources RENAME TO sources_legacy;
{sources};
INSERT INTO sources (key, location, vendor, type, url, last_polled_at, last_success_at, last_change_at, error,
    error_kind, error_since, etag, last_modified, content_hash, final_url, summary, polls, failures)
    SELECT key, '', vendor, type, url, last_polled_at, last_success_at, last_change_at, error, error_kind,
    error_since, etag, last_modified, content_hash, final_url, summary, COALESCE(polls, 0), COALESCE(failures, 0)
    FROM sources_legacy;
DROP TABLE sources_legacy;
CREATE INDEX idx_sources_vendor ON sources (vendor);
ALTER TABLE observations ADD COLUMN location text;
ALTER TABLE probe_results ADD COLUMN location text;
CREATE INDEX idx_probe_results_location_vendor_at ON probe_results (location, vendor, at);
{instances};
{leader};
INSERT INTO leader (one) VALUES (true);
{version};
DELETE FROM meta WHERE key = 'schema_version'
"""


def upgrade_sqlite(dialect: Any, conn: Any, version: int) -> None:
    """A SQLite file at ``version`` (1–7) to the one schema, in the caller's transaction."""
    factory, conn.row_factory = conn.row_factory, None  # sqlite-utils reads rows as tuples
    try:
        db = sqlite_utils.Database(conn)
        for n in range(version, SQLITE_LAST):
            SQLITE_MIGRATIONS[n](db)
    finally:
        conn.row_factory = factory
    script = _SQLITE_TO_BASE.replace("{sources}", table_ddl("sources"))
    script = script.replace("{instances}", table_ddl("instances")).replace("{leader}", table_ddl("leader"))
    run_script(dialect, conn, script.replace("{version}", VERSION_TABLE))


# -- PostgreSQL, versions 2 to 5 (version 1 was the first part of BASE) ------------------------------

_V2 = """
-- Several instances poll the same sources: each keeps its own fetch state (validators,
-- content hash, last error), so one instance's poll never makes another skip a change.
ALTER TABLE sources ADD COLUMN location text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sources DROP CONSTRAINT sources_pkey;
ALTER TABLE sources ADD PRIMARY KEY (key, location);
CREATE INDEX idx_probe_results_location_vendor_at ON probe_results (location, vendor, at);
"""

_V3 = """
-- Acknowledge links act once: each use is recorded under the link's own key.
CREATE TABLE ack_link_uses (
    key text COLLATE "C" PRIMARY KEY,
    incident_id bigint,
    by text,
    at timestamptz
);
"""

_V4 = """
-- A vendor's open incidents in one index range, already in order (issue 18): each merge reads
-- them, and its cost must not grow with the number of vendors watched.
CREATE INDEX idx_incidents_vendor_state_opened ON incidents (vendor, state, opened_at, id);
"""

_V5 = """
-- The newest incidents and the recently resolved ones read through an index, not a sort of every
-- incident ever stored (issue 18: a year of history must not slow the board).
CREATE INDEX idx_incidents_started ON incidents ((COALESCE(started_at, opened_at)) DESC NULLS LAST, id DESC);
CREATE INDEX idx_incidents_vendor_started
    ON incidents (vendor, (COALESCE(started_at, opened_at)) DESC NULLS LAST, id DESC);
CREATE INDEX idx_incidents_resolved_at ON incidents (resolved_at);
"""

POSTGRES_MIGRATIONS = [_V2, _V3, _V4, _V5]
"""Versions 2 to 5 of the PostgreSQL store's own history."""


def upgrade_postgres(conn: Any, version: int) -> None:
    """A PostgreSQL schema at ``version`` (1–5) to the one schema, in the caller's transaction."""
    for n in range(version, POSTGRES_LAST):
        conn.execute(POSTGRES_MIGRATIONS[n - 1])


__all__ = ["POSTGRES_LAST", "SQLITE_LAST", "upgrade_postgres", "upgrade_sqlite"]
