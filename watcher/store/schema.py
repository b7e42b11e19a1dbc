"""The one schema of both databases, and the migrations that follow it.

Written once, with type words in braces that each dialect fills in
(:mod:`watcher.store.dialect`): ``{ts}`` a point in time (``timestamptz``; ISO 8601 text
in UTC on SQLite), ``{id}`` an integer primary key given by the database, ``{bool}``,
``{key}`` text ordered byte by byte (``COLLATE "C"`` on PostgreSQL: SQLite's own order),
``{float}``, ``{bigint}``.

Version :data:`BASE_VERSION` is this schema. Databases written before it (SQLite files
at ``meta.schema_version`` 1–7, PostgreSQL schemas at 1–5) are brought to it once by
:mod:`watcher.store.legacy`; every change after it is one script appended to
:data:`MIGRATIONS`, for both databases. :func:`migrate` runs inside the dialect's
migration lock, so processes that start together on a new database migrate it once.
"""

from __future__ import annotations

import logging
from typing import Any

from watcher.store.base import StoreError
from watcher.store.dialect import Dialect

log = logging.getLogger("watcher.store")

BASE = """
CREATE TABLE meta (key {key} PRIMARY KEY, value text);

CREATE TABLE sources (
    key {key} NOT NULL,
    location {key} NOT NULL DEFAULT '',
    vendor {key},
    type text,
    url text,
    last_polled_at {ts},
    last_success_at {ts},
    last_change_at {ts},
    error text,
    error_kind text,
    error_since {ts},
    etag text,
    last_modified text,
    content_hash text,
    final_url text,
    summary text,
    polls {bigint} NOT NULL DEFAULT 0,
    failures {bigint} NOT NULL DEFAULT 0,
    PRIMARY KEY (key, location)
);
CREATE INDEX idx_sources_vendor ON sources (vendor);

CREATE TABLE observations (
    id {id},
    source text,
    vendor text,
    at {ts},
    kind text,
    data text,
    location text
);
CREATE INDEX idx_observations_vendor_at ON observations (vendor, at);
CREATE INDEX idx_observations_source_at ON observations (source, at);

CREATE TABLE incidents (
    id {id},
    vendor text,
    title text,
    kind text,
    reason text,
    state text,
    status text,
    impact text,
    is_maintenance {bool} NOT NULL DEFAULT false,
    phase text,
    origin text,
    backfilled {bool} NOT NULL DEFAULT false,
    opened_at {ts},
    updated_at {ts},
    started_at {ts},
    resolved_at {ts},
    scheduled_for {ts},
    scheduled_until {ts},
    url text,
    components text,
    component_statuses text,
    active_sources text,
    seen_updates text,
    bodies text,
    revision integer NOT NULL DEFAULT 0
);
CREATE INDEX idx_incidents_vendor_state ON incidents (vendor, state);
CREATE INDEX idx_incidents_state_opened_at ON incidents (state, opened_at);
CREATE INDEX idx_incidents_opened_at ON incidents (opened_at);
CREATE INDEX idx_incidents_vendor_state_opened ON incidents (vendor, state, opened_at, id);
CREATE INDEX idx_incidents_started ON incidents ((COALESCE(started_at, opened_at)) DESC NULLS LAST, id DESC);
CREATE INDEX idx_incidents_vendor_started
    ON incidents (vendor, (COALESCE(started_at, opened_at)) DESC NULLS LAST, id DESC);
CREATE INDEX idx_incidents_resolved_at ON incidents (resolved_at);

CREATE TABLE incident_keys (
    vendor text NOT NULL,
    key text NOT NULL,
    incident_id {bigint} NOT NULL REFERENCES incidents (id),
    PRIMARY KEY (vendor, key)
);
CREATE INDEX idx_incident_keys_incident_id ON incident_keys (incident_id);

CREATE TABLE incident_events (
    id {id},
    incident_id {bigint} NOT NULL REFERENCES incidents (id),
    at {ts},
    type text,
    text text,
    status text,
    source text,
    dedupe text
);
CREATE INDEX idx_incident_events_incident_id_id ON incident_events (incident_id, id);
CREATE UNIQUE INDEX idx_incident_events_dedupe ON incident_events (incident_id, dedupe) WHERE dedupe IS NOT NULL;

CREATE TABLE notifications (
    id {id},
    incident_id {bigint},
    action text,
    channel text,
    target text,
    route text,
    alert text,
    state text,
    attempts integer NOT NULL DEFAULT 0,
    not_before {ts},
    created_at {ts},
    claimed_at {ts},
    delivered_at {ts},
    last_error text,
    first_error_at {ts},
    fallback_of {bigint},
    fallback_sent {bool} NOT NULL DEFAULT false,
    held {bool} NOT NULL DEFAULT false,
    ref text
);
CREATE INDEX idx_notifications_state_not_before ON notifications (state, not_before);
CREATE INDEX idx_notifications_incident_channel_target ON notifications (incident_id, channel, target, state, id);

CREATE TABLE slack_threads (
    incident_id {bigint}, channel text, ts text, created_at {ts}, PRIMARY KEY (incident_id, channel)
);
CREATE TABLE email_threads (
    incident_id {bigint}, address text, root_id text, seq integer, PRIMARY KEY (incident_id, address)
);
CREATE TABLE acks (
    id {id},
    incident_id {bigint},
    by text,
    at {ts},
    reason text,
    via text,
    cleared_at {ts}
);
CREATE INDEX idx_acks_incident_id ON acks (incident_id);
CREATE TABLE ack_link_uses (key {key} PRIMARY KEY, incident_id {bigint}, by text, at {ts});
CREATE TABLE mutes (
    id {id},
    vendor text,
    until {ts},
    reason text,
    by text,
    created_at {ts},
    ended_at {ts}
);
CREATE TABLE alert_state (
    incident_id {bigint} PRIMARY KEY,
    first_alert_at {ts},
    last_reminder_at {ts},
    escalation_level integer,
    escalated_at {ts}
);
CREATE TABLE audit (id {id}, at {ts}, who text, what text, detail text);

CREATE TABLE probe_results (
    id {id},
    vendor text,
    kind text,
    model text,
    at {ts},
    ok {bool},
    status integer,
    error_class text,
    error text,
    ttfb_s {float},
    ttft_s {float},
    total_s {float},
    tokens_in {bigint},
    tokens_out {bigint},
    tokens_per_s {float},
    canary text,
    passed {bool},
    detail text,
    answer text,
    cost {float},
    network_ok {bool},
    location text
);
CREATE INDEX idx_probe_results_vendor_at ON probe_results (vendor, at);
CREATE INDEX idx_probe_results_location_vendor_at ON probe_results (location, vendor, at);
CREATE TABLE detector_state (stream {key} PRIMARY KEY, state text, updated_at {ts});
CREATE TABLE budget_state (vendor {key} PRIMARY KEY, state text, updated_at {ts});

CREATE TABLE subscriptions (
    id {id},
    channel {key} NOT NULL,
    vendor {key} NOT NULL,
    kinds text NOT NULL,
    created_by text,
    created_at {ts}
);
CREATE UNIQUE INDEX idx_subscriptions_channel_vendor ON subscriptions (channel, vendor);
CREATE INDEX idx_subscriptions_vendor ON subscriptions (vendor);

CREATE TABLE instances (
    name {key} PRIMARY KEY,
    location text,
    host text,
    pid integer,
    started_at {ts},
    last_heartbeat {ts},
    is_leader {bool} NOT NULL DEFAULT false
);
CREATE TABLE leader (
    one {bool} PRIMARY KEY DEFAULT true CHECK (one),
    epoch {bigint} NOT NULL DEFAULT 0,
    holder text,
    since {ts}
);
INSERT INTO leader (one) VALUES (true);
"""
"""Every table of :data:`BASE_VERSION`, on a new database of either kind."""

VERSION_TABLE = "CREATE TABLE schema_version (one {bool} PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)"

BASE_VERSION = 6
"""The first version of the one schema: SQLite files stopped at 7 and PostgreSQL schemas at 5
before it, each with its own history (:mod:`watcher.store.legacy`)."""

MIGRATIONS: list[str] = [
    # 7 (issue 18): /metrics counts the outbox by channel and state on every scrape; with this index it
    # reads the index alone (covering: attempts too), not every row of a year of notifications
    """
CREATE INDEX idx_notifications_channel_state ON notifications (channel, state, attempts);
""",
]
"""One script per version after :data:`BASE_VERSION`, for both databases; append, never edit one that
has shipped."""

SCHEMA_VERSION = BASE_VERSION + len(MIGRATIONS)

TIMESTAMPS = frozenset(
    ["last_polled_at", "last_success_at", "last_change_at", "error_since", "at", "opened_at", "updated_at", "started_at", "resolved_at", "scheduled_for", "scheduled_until", "not_before", "created_at", "claimed_at", "delivered_at", "first_error_at", "cleared_at", "until", "ended_at", "first_alert_at", "last_reminder_at", "escalated_at", "since", "last_heartbeat", "t"]
)
"""Columns (and the aliases queries give times) that hold a point in time: SQLite returns them
as text, which the SQLite dialect turns back into datetimes; PostgreSQL's driver does it itself."""


def table_ddl(name: str) -> str:
    """The ``CREATE TABLE`` statement of one table of :data:`BASE` (to rebuild it when upgrading)."""
    start = BASE.index(f"CREATE TABLE {name} (")
    return BASE[start : BASE.index(");\n", start) + 1]


def run_script(dialect: Dialect, conn: Any, script: str) -> None:
    """Each statement of a schema script, in the caller's transaction (DDL is transactional in both)."""
    for stmt in dialect.ddl(script).split(";\n"):
        if stmt.strip():
            conn.execute(stmt)


def set_version(conn: Any, dialect: Dialect, version: int) -> None:
    conn.execute(
        dialect.sql(
            "INSERT INTO schema_version (one, version) VALUES (true, %s) "
            "ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version"
        ),
        [version],
    )


def version_of(conn: Any, dialect: Dialect) -> int:
    if "schema_version" not in dialect.tables(conn):
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row["version"]) if row else 0


def migrate(dialect: Dialect, conn: Any) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; safe when several processes do it at once.

    One transaction under the dialect's migration lock: the version, then what is missing.
    Returns the version found before (0 for a new database).
    """
    with dialect.migration_lock(conn):
        legacy = dialect.legacy_version(conn)
        version = legacy if legacy is not None else version_of(conn, dialect)
        if legacy is None and version > SCHEMA_VERSION:
            raise StoreError(
                f"the database at {dialect.where} has schema version {version}, newer than this watcher "
                f"({SCHEMA_VERSION}): upgrade watcher or use another database"
            )
        found = version
        if legacy is not None:  # its own history's number: brought to BASE_VERSION by its own steps
            dialect.upgrade_legacy(conn, legacy)
            version = BASE_VERSION
        elif version == 0:
            run_script(dialect, conn, VERSION_TABLE + ";\n" + BASE)
            version = BASE_VERSION
        for n in range(version, SCHEMA_VERSION):
            run_script(dialect, conn, MIGRATIONS[n - BASE_VERSION])
        # a legacy number is of its own history: SQLite's last (7) is not this schema's 7
        if legacy is not None or found != SCHEMA_VERSION:
            set_version(conn, dialect, SCHEMA_VERSION)
            was = f"legacy version {found}" if legacy is not None else f"version {found}"
            log.info("database schema at %s: %s → version %d", dialect.where, was, SCHEMA_VERSION)
    return found
